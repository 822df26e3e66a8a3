// Package api is the HTTP face of the ledger: a Fiber app with request ids,
// access logs, metrics, problem+json errors, health endpoints and the
// authenticated /v1 group, onto which resources are mounted as Routes.
//
// Handlers stay thin: decode, call the domain package (wallet, metering,
// webhook, apikey), encode. Errors go back as they are: a *problem.Error,
// or an error of the fault vocabulary, which problem.From answers with its
// problem; anything else becomes a 500 whose cause is logged, never sent.
package api

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/creditledger/creditledger/api/auth"
	"github.com/creditledger/creditledger/api/metrics"
	"github.com/creditledger/creditledger/apikey"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/internal/ratelog"
)

// DefaultBodyLimit fits a full events batch (1,000 events) with room to spare.
const DefaultBodyLimit = 5 << 20

// Config is what New needs. Only DB, or Keys, is required.
type Config struct {
	DB      *pg.DB
	Log     *slog.Logger     // default: discard
	Keys    *apikey.Store    // default: apikey.NewStore(DB)
	Metrics *metrics.Metrics // default: metrics.New()
	// Ready reports whether the service can do its work (database, NATS);
	// GET /readyz answers 503 while it returns an error. Build it with
	// Readiness so the response can name the failed dependency. Default:
	// ping DB.
	Ready     func(ctx context.Context) error
	BodyLimit int // bytes, default DefaultBodyLimit; larger bodies get 413

	// Routes are the /v1 resources. Each says which scopes may call it; see
	// Route. The API-key and whoami routes are built in.
	Routes []Route

	// CustomerExists, if set, is asked before a key bound to a customer (a
	// portal token, or an ingest key with customer_id) is made, so keys
	// are bound only to customers that exist (404 on the portal-token
	// route, 422 on customer_id of POST /v1/api-keys).
	CustomerExists func(ctx context.Context, id string) (bool, error)

	// CORSOrigins may call /v1 from a browser (LEDGER_CORS_ORIGINS; see
	// cors.go). None: no CORS headers.
	CORSOrigins []string
	// Pages are mounted outside /v1, before it (the customer portal:
	// api/portal).
	Pages []HTMLPages
}

// HTMLPages is a set of routes outside /v1 that answer HTML, not the API.
type HTMLPages interface{ Mount(fiber.Router) }

// Route is one endpoint under /v1, and its row in the scope table: the
// scopes that may call it besides admin. A route that names none is admin
// only, so forgetting to declare scopes fails closed. Read and Portal are
// accepted only on GET routes, and a route that allows Portal must call
// auth.RequireCustomer with the owner of what it returns.
//
//	api.GET("/wallets/:id", h.wallet).Allow(apikey.Read, apikey.Portal)
//	api.POST("/events", h.ingest).Allow(apikey.Ingest)
//	api.POST("/wallets", h.createWallet) // admin only
type Route struct {
	Method   string
	Path     string // under /v1, in Fiber syntax: "/wallets/:id"
	Scopes   []apikey.Scope
	Handlers []fiber.Handler // run in order after the scope check
	// Media are the body media types it takes besides application/json.
	Media []string
}

// Allow returns r letting keys of scopes call it too.
func (r Route) Allow(scopes ...apikey.Scope) Route {
	r.Scopes = append(r.Scopes[:len(r.Scopes):len(r.Scopes)], scopes...)
	return r
}

// Accepting returns r taking bodies of these media types too.
func (r Route) Accepting(types ...string) Route {
	r.Media = append(r.Media[:len(r.Media):len(r.Media)], types...)
	return r
}

// GET declares a GET route (HEAD is answered too).
func GET(path string, h ...fiber.Handler) Route { return Route{fiber.MethodGet, path, nil, h, nil} }

// POST declares a POST route.
func POST(path string, h ...fiber.Handler) Route { return Route{fiber.MethodPost, path, nil, h, nil} }

// PUT declares a PUT route.
func PUT(path string, h ...fiber.Handler) Route { return Route{fiber.MethodPut, path, nil, h, nil} }

// PATCH declares a PATCH route.
func PATCH(path string, h ...fiber.Handler) Route { return Route{fiber.MethodPatch, path, nil, h, nil} }

// DELETE declares a DELETE route.
func DELETE(path string, h ...fiber.Handler) Route {
	return Route{fiber.MethodDelete, path, nil, h, nil}
}

type server struct {
	log     *slog.Logger
	logs    ratelog.Limiter // for failures that repeat during an outage
	keys    *apikey.Store
	metrics *metrics.Metrics
	ready   func(context.Context) error
	limit   int
	// customerExists guards portal tokens; nil skips the check.
	customerExists func(context.Context, string) (bool, error)
}

// New builds the app. It panics on a malformed route table, which is a
// programming error to be found at startup, as http.ServeMux does.
func New(cfg Config) *fiber.App {
	s := &server{log: cfg.Log, keys: cfg.Keys, metrics: cfg.Metrics, ready: cfg.Ready, limit: cfg.BodyLimit,
		customerExists: cfg.CustomerExists}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.keys == nil {
		if cfg.DB == nil {
			panic("api.New: Config needs Keys or DB")
		}
		s.keys = apikey.NewStore(cfg.DB)
	}
	if s.metrics == nil {
		s.metrics = metrics.New()
	}
	if s.ready == nil {
		s.ready = func(context.Context) error { return nil }
		if cfg.DB != nil {
			s.ready = Readiness(Check{Name: "database", Func: cfg.DB.Pool.Ping})
		}
	}
	if s.limit <= 0 {
		s.limit = DefaultBodyLimit
	}

	app := fiber.New(fiber.Config{
		AppName:               "ledgerd",
		DisableStartupMessage: true,
		BodyLimit:             s.limit,
		ErrorHandler:          s.handleError,
		// Strings from the request (params, headers) are copies rather than
		// views of a buffer fasthttp reuses: a handler that keeps one (in a
		// map, a goroutine, an error) cannot see it change under it.
		Immutable: true,
		// Handlers get decoded path parameters ("a%20b" → "a b"). Ids
		// therefore cannot contain "/".
		UnescapePath:  true,
		CaseSensitive: true,
		ReadTimeout:   30 * time.Second,
		WriteTimeout:  60 * time.Second,
		IdleTimeout:   2 * time.Minute,
	})
	app.Use(s.requestID, s.observe, s.recover)

	app.Get("/healthz", matched, s.healthz)
	app.Get("/readyz", matched, s.readyz)
	app.Get("/metrics", matched, s.metrics.Handler())
	app.Get("/openapi.json", matched, serveOpenAPI)

	for _, p := range cfg.Pages {
		p.Mount(app)
	}
	if h := corsHandler(cfg.CORSOrigins); h != nil {
		app.Use("/v1", h) // before the key check: a preflight carries no key
	}
	v1 := app.Group("/v1", auth.Authenticate(s.keys))
	register(v1, append(s.routes(), cfg.Routes...))
	return app
}

// register mounts routes, each behind its scope check and requireJSON.
func register(v1 fiber.Router, routes []Route) {
	seen := map[string]bool{}
	for _, r := range routes {
		where := r.Method + " /v1" + r.Path
		switch r.Method {
		case fiber.MethodGet, fiber.MethodPost, fiber.MethodPut, fiber.MethodPatch, fiber.MethodDelete:
		default:
			panic(fmt.Sprintf("api: %s: unsupported method", where))
		}
		if len(r.Path) == 0 || r.Path[0] != '/' {
			panic(fmt.Sprintf("api: %s: path must start with /", where))
		}
		if len(r.Handlers) == 0 {
			panic(fmt.Sprintf("api: %s: no handler", where))
		}
		if seen[where] {
			panic(fmt.Sprintf("api: %s: declared twice", where))
		}
		seen[where] = true
		for _, sc := range r.Scopes {
			if (sc == apikey.Read || sc == apikey.Portal) && r.Method != fiber.MethodGet {
				panic(fmt.Sprintf("api: %s: %s keys are read-only", where, sc))
			}
		}
		// The media type is checked after the key and its scope, so that a
		// 401 or 403 is what a caller without the right key hears.
		handlers := append([]fiber.Handler{matched, auth.Allow(r.Scopes...), requireMedia(r.Media)}, r.Handlers...)
		if r.Method == fiber.MethodGet {
			v1.Get(r.Path, handlers...) // and HEAD
		} else {
			v1.Add(r.Method, r.Path, handlers...)
		}
	}
}

// routes are the built-in /v1 routes.
func (s *server) routes() []Route {
	return []Route{
		GET("/whoami", s.whoami).Allow(apikey.Read, apikey.Portal),
		POST("/api-keys", s.createKey),
		GET("/api-keys", s.listKeys),
		DELETE("/api-keys/:id", s.revokeKey),
		POST("/customers/:id/portal-tokens", s.createPortalToken),
	}
}
