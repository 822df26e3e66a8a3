package portal_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/creditledger/creditledger/api"
	"github.com/creditledger/creditledger/api/portal"
	"github.com/creditledger/creditledger/apikey"
	"github.com/creditledger/creditledger/billing"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/internal/testdb"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/ledger/ledgertest"
	"github.com/creditledger/creditledger/metering"
	"github.com/creditledger/creditledger/wallet"
)

var dsn string

func TestMain(m *testing.M) {
	os.Exit(testdb.Main(m, &dsn, ledgertest.VerifyWith(metering.Checks()...)))
}

// chromium is where Debian's package puts the browser; `make test`
// installs it when missing (scripts/ensure-chromium.sh).
const chromium = "/usr/bin/chromium"

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

// site is ledgerd's app with the portal, listening on a real port.
type site struct {
	base    string
	keys    *apikey.Store
	wallets *wallet.Service
	meters  *metering.Service
	bills   *billing.Service
	clock   *clock
}

func newSite(t *testing.T) *site {
	t.Helper()
	testdb.Require(t, dsn)
	ctx := context.Background()
	db, err := pg.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	c := &clock{t: time.Now().UTC().Truncate(time.Second)}
	l, err := ledger.New(db, ledger.Options{Clock: c.Now, Modules: []ledger.Module{metering.Module(), billing.Module(), wallet.Module()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close(context.Background()) })
	s := &site{keys: apikey.NewStore(db), clock: c}
	s.wallets = wallet.NewService(l)
	s.meters = metering.NewService(l, s.wallets, nil)
	s.bills = billing.NewService(l, s.wallets, s.meters, nil)
	app := api.New(api.Config{DB: db, Keys: s.keys,
		Pages: []api.HTMLPages{portal.New(portal.Config{Keys: s.keys, Wallets: s.wallets, Bills: s.bills, Meters: s.meters, DB: db, Now: c.Now})}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { _ = app.Shutdown() })
	s.base = "http://" + ln.Addr().String()
	return s
}

// customer makes a customer with a CREDITS wallet, a grant of 500, and on
// each of days (days ago) a debit of 100 and a usage event; it returns
// the wallet and a portal token.
func (s *site) customer(t *testing.T, name string, days []int) (wallet.Wallet, string) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	s.clock.Set(now.AddDate(0, 0, -12))
	c, err := s.wallets.CreateCustomer(ctx, wallet.Customer{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.wallets.CreateWallet(ctx, wallet.NewWallet{CustomerID: c.ID, Asset: "CREDITS", OveragePolicy: wallet.PolicyBlock})
	if err != nil {
		t.Fatal(err)
	}
	exp := now.AddDate(0, 2, 0)
	if _, _, err := ledger.Unpack(s.wallets.AddGrant(ctx, "", w.ID, wallet.NewGrant{Amount: ledger.MustAmount("500"), Kind: wallet.Paid, ExpiresAt: &exp})); err != nil {
		t.Fatal(err)
	}
	for i, d := range days {
		at := now.AddDate(0, 0, -d)
		s.clock.Set(at)
		if _, _, err := ledger.Unpack(s.wallets.Debit(ctx, "", w.ID, wallet.NewDebit{Amount: ledger.MustAmount("100")})); err != nil {
			t.Fatal(err)
		}
		ev, _ := json.Marshal(map[string]any{"event_id": fmt.Sprintf("%s-%d", c.ID, i), "customer_id": c.ID, "event_name": "portal.tokens",
			"timestamp": at, "properties": map[string]any{"tokens": 1000 * (i + 1)}})
		res, err := s.meters.IngestEach(ctx, []json.RawMessage{ev}, metering.IngestOptions{Source: "http"})
		if err != nil || len(res) != 1 || res[0].Status != metering.EventAccepted {
			t.Fatalf("event: %+v %v", res, err)
		}
	}
	s.clock.Set(now)
	token, _, err := s.keys.Create(ctx, apikey.NewKey{Scope: apikey.Portal, CustomerID: c.ID, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return w, token
}

func TestPortal(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	if _, err := s.meters.CreateMeter(ctx, metering.Meter{Code: "tokens", EventName: "portal.tokens", Aggregation: metering.Sum, Property: "tokens"}); err != nil {
		t.Fatal(err)
	}
	wa, tokenA := s.customer(t, "Acme Robotics", []int{9, 6, 3})
	inv, _, err := ledger.Unpack(s.bills.CloseCycle(ctx, wa.ID))
	if err != nil || inv.Number == nil {
		t.Fatalf("close cycle: %+v %v", inv, err)
	}
	wb, tokenB := s.customer(t, "Bolt Logistics", []int{2})
	expired, _, err := s.keys.Create(ctx, apikey.NewKey{Scope: apikey.Portal, CustomerID: wa.CustomerID, TTL: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)

	t.Run("http", func(t *testing.T) {
		noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := noRedirect.Get(s.base + "/portal?token=" + tokenA)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/portal" {
			t.Fatalf("exchange: %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		ck := resp.Cookies()
		if len(ck) != 1 || ck[0].Name != portal.CookieName || !ck[0].HttpOnly || ck[0].SameSite != http.SameSiteStrictMode || ck[0].Secure {
			t.Fatalf("cookie %+v", ck)
		}
		for _, tc := range []struct {
			url, cookie string
			status      int
		}{
			{"/portal?token=" + expired, "", 401},
			{"/portal?token=lk_portal_nonsense", "", 401},
			{"/portal", "", 401},
			{"/portal", expired, 401},
			{"/portal/invoices/" + inv.ID.String(), tokenB, 404}, // another customer's invoice
			{"/portal/invoices/" + inv.ID.String(), tokenA, 200},
		} {
			req, _ := http.NewRequest("GET", s.base+tc.url, nil)
			if tc.cookie != "" {
				req.AddCookie(&http.Cookie{Name: portal.CookieName, Value: tc.cookie})
			}
			resp, err := noRedirect.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b := new(strings.Builder)
			_, _ = fmt.Fprint(b, resp.Header.Get("Content-Type"))
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if tc.status == 200 && !strings.Contains(string(body), *inv.Number) {
				t.Errorf("%s: the invoice's number is not on its page:\n%s", tc.url, body)
			}
			if resp.StatusCode != tc.status || !strings.HasPrefix(b.String(), "text/html") {
				t.Errorf("%s: %d %s, want %d HTML", tc.url, resp.StatusCode, b, tc.status)
			}
		}
	})

	t.Run("browser", func(t *testing.T) {
		if _, err := os.Stat(chromium); err != nil {
			t.Skipf("no browser at %s (make test installs Debian's chromium with apt): %v", chromium, err)
		}
		opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
			chromedp.Flag("disable-background-networking", true), chromedp.NoFirstRun, chromedp.WindowSize(1000, 900)}
		actx, cancel := chromedp.NewExecAllocator(ctx, opts...)
		defer cancel()
		browse := func(t *testing.T) context.Context {
			bctx, cancel := chromedp.NewContext(actx)
			t.Cleanup(cancel)
			tctx, cancel2 := context.WithTimeout(bctx, 60*time.Second)
			t.Cleanup(cancel2)
			return tctx
		}

		a := browse(t)
		do := func(ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
			t.Helper()
			if err := chromedp.Do(ctx, steps...); err != nil {
				t.Fatal(err)
			}
		}
		text := func(ctx context.Context, sel string) string {
			t.Helper()
			v, err := chromedp.Run(ctx, chromedp.Text(sel))
			if err != nil {
				t.Fatalf("%s: %v", sel, err)
			}
			return strings.TrimSpace(v)
		}
		count := func(ctx context.Context, sel string) int {
			t.Helper()
			n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('`+sel+`').length`))
			if err != nil {
				t.Fatalf("%s: %v", sel, err)
			}
			return n
		}
		do(a, chromedp.Navigate(s.base+"/portal?token="+tokenA), chromedp.WaitVisible("#customer-name"))
		location, err := chromedp.Run(a, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		if location != s.base+"/portal" {
			t.Errorf("address bar %q still has the token, or went elsewhere", location)
		}
		w := `[data-wallet="` + wa.ID.String() + `"] `
		name, available, held, burn := text(a, "#customer-name"), text(a, w+"[data-field=available]"), text(a, w+"[data-field=held]"), text(a, w+"[data-field=burn]")
		// 500 granted, 3 debits of 100; 200 burnt in the last 7 days.
		if name != "Acme Robotics" || available != "200" || held != "0" || burn != "28.57" {
			t.Errorf("name %q, available %q, held %q, burn %q", name, available, held, burn)
		}
		if n := count(a, `[data-meter="tokens"] svg.chart rect.point[data-day]`); n != 3 {
			t.Errorf("the chart has %d points, want one per day of usage: 3", n)
		}
		// 300 of 500 used: the 50% threshold fired.
		if alerts := text(a, "ul.alerts"); !strings.Contains(alerts, "50% of your CREDITS used") {
			t.Errorf("alerts: %q", alerts)
		}
		png, err := chromedp.Run(a, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		shot := filepath.Join(t.TempDir(), "portal.png")
		if err := os.WriteFile(shot, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", shot)
		if out := os.Getenv("PORTAL_SCREENSHOT"); out != "" {
			do(a, chromedp.EmulateViewport(420, 900))
			small, err := chromedp.Run(a, chromedp.FullScreenshot(100))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(out, small, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("screenshot for the README: %s (%d bytes)", out, len(small))
		}

		href, err := chromedp.Run(a, chromedp.Evaluate[string](`document.querySelector('a.invoice[data-invoice="`+inv.ID.String()+`"]').href`))
		if err != nil {
			t.Fatal(err)
		}
		// Evaluated rather than queried: chromedp's node queries can keep
		// the previous document's root across a navigation in one tab.
		do(a, chromedp.Navigate(href))
		number, err := chromedp.Run(a, chromedp.Evaluate[string](`document.querySelector('h1 + .muted strong').textContent`))
		if err != nil {
			t.Fatal(err)
		}
		if number != *inv.Number {
			t.Errorf("the invoice page shows number %q, want %q", number, *inv.Number)
		}

		b := browse(t)
		do(b, chromedp.Navigate(s.base+"/portal?token="+tokenB), chromedp.WaitVisible("#customer-name"))
		body := text(b, "body")
		if strings.Contains(body, "Acme") || strings.Contains(body, *inv.Number) || !strings.Contains(body, "Bolt Logistics") ||
			strings.Contains(body, wa.ID.String()) {
			t.Errorf("B's page shows A's data, or not B's:\n%s", body)
		}
		if n := count(b, `[data-wallet="`+wb.ID.String()+`"]`); n != 1 {
			t.Errorf("B's wallet shown %d times", n)
		}
		if n := count(b, `[data-meter="tokens"] svg.chart rect.point`); n != 1 {
			t.Errorf("B's chart has %d points, want 1", n)
		}

		c := browse(t)
		do(c, chromedp.Navigate(s.base+"/portal?token="+expired), chromedp.WaitVisible("#error-title"))
		if title := text(c, "#error-title"); title != "This link has expired" {
			t.Errorf("expired token: %q", title)
		}
	})
}
