package portal

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"mime"
	"path"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/creditledger/creditledger/wallet"
)

//go:embed templates/*.tmpl
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

var pages = template.Must(template.New("").ParseFS(templateFS, "templates/*.tmpl"))

// contentSecurity lets the page load only its own assets: no inline
// script, nothing from another origin, never framed.
const contentSecurity = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func setHeaders(c *fiber.Ctx) {
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
	c.Set(fiber.HeaderXFrameOptions, "DENY")
}

// render writes template name with data; rendered to a buffer first, so a
// template error is a clean 500, never half a page.
func (p *Portal) render(c *fiber.Ctx, status int, name string, data any) error {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, data); err != nil {
		p.cfg.Log.Error("portal template", "template", name, "err", err)
		c.Status(fiber.StatusInternalServerError)
		c.Type("txt", "utf-8")
		return c.SendString("Internal error")
	}
	setHeaders(c)
	c.Set(fiber.HeaderContentSecurityPolicy, contentSecurity)
	c.Type("html", "utf-8")
	return c.Status(status).Send(buf.Bytes())
}

// serveAsset serves an embedded style sheet or script.
func serveAsset(c *fiber.Ctx) error {
	name := path.Base(c.Params("name"))
	b, err := assetFS.ReadFile("assets/" + name)
	if err != nil {
		return c.Status(fiber.StatusNotFound).SendString("not found")
	}
	c.Set(fiber.HeaderContentType, mime.TypeByExtension(path.Ext(name)))
	c.Set(fiber.HeaderCacheControl, "public, max-age=3600")
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	return c.Send(b)
}

// describeAlert turns an outbox row into a line of the alerts list.
func describeAlert(topic, asset string, raw []byte, at time.Time) alertView {
	var d map[string]any
	_ = json.Unmarshal(raw, &d) // a payload the page cannot read still shows its title
	str := func(k string) string { s, _ := d[k].(string); return s }
	a := alertView{When: at.UTC().Format("2 Jan, 15:04"), Kind: "info"}
	switch topic {
	case wallet.TopicThresholdReached:
		a.Title = fmt.Sprintf("%v%% of your %s used", d["threshold"], asset)
		a.Detail = "Available: " + groupDigits(str("available"))
		a.Kind = "warn"
	case wallet.TopicDepleted:
		a.Title = "Your " + asset + " ran out"
		a.Kind = "bad"
	case wallet.TopicOverageStarted:
		a.Title = "Usage beyond your " + asset + " started"
		a.Detail = "It is billed on your next invoice."
		a.Kind = "bad"
	case wallet.TopicRunwayLow:
		a.Title = "Your " + asset + " will run out soon"
		a.Detail = fmt.Sprintf("At %s a day, within %v days", groupDigits(str("burn_rate_per_day")), d["alert_days"])
		a.Kind = "warn"
	default:
		a.Title = topic
	}
	return a
}
