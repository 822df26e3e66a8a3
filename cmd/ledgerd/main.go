// Command ledgerd is the credits ledger server: it applies pending
// migrations, then serves the HTTP API and runs the poster and workers.
//
//	ledgerd           migrate and serve
//	ledgerd migrate   only migrate
//	ledgerd --help    list the environment variables
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"

	"github.com/creditledger/creditledger/api"
	"github.com/creditledger/creditledger/api/metrics"
	"github.com/creditledger/creditledger/api/portal"
	"github.com/creditledger/creditledger/apikey"
	"github.com/creditledger/creditledger/billing"
	"github.com/creditledger/creditledger/internal/balancebus"
	"github.com/creditledger/creditledger/internal/config"
	"github.com/creditledger/creditledger/internal/natsserver"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/internal/ratelog"
	"github.com/creditledger/creditledger/internal/secretbox"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/metering"
	schema "github.com/creditledger/creditledger/sql"
	"github.com/creditledger/creditledger/wallet"
	"github.com/creditledger/creditledger/webhook"
)

// defaultDatabaseURL is used when DATABASE_URL is unset: the database
// `make run` creates on the local PostgreSQL.
const defaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/ledger?sslmode=disable"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cmd := ""
	if len(args) > 0 {
		cmd = args[0]
	}
	switch cmd {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage())
		return 0
	case "", "serve", "migrate":
		if code, done := subcommandArgs(args, stdout, stderr); done {
			return code
		}
	default:
		fmt.Fprintf(stderr, "ledgerd: unknown command %q\n\n%s", cmd, usage())
		return 2
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		fmt.Fprintf(stderr, "ledgerd: %v\n", err)
		return 2
	}
	log := newLogger(cfg, stderr)
	if cfg.DatabaseURL == "" {
		cfg.DatabaseURL = defaultDatabaseURL
		log.Info("DATABASE_URL is unset; using the local default", "url", defaultDatabaseURL)
	}
	if err := serve(ctx, cfg, log, cmd == "migrate", stdout); err != nil {
		log.Error("ledgerd stopped", "err", err)
		return 1
	}
	return 0
}

func usage() string {
	return "Usage: ledgerd [migrate]\n\n" +
		"With no command ledgerd applies pending migrations and serves the API;\n" +
		"`ledgerd migrate` only applies migrations. SIGINT or SIGTERM drains\n" +
		"in-flight batches and exits.\n\nEnvironment:\n" + config.Usage()
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func serve(ctx context.Context, cfg config.Config, log *slog.Logger, migrateOnly bool, stdout io.Writer) error {
	log.Info("starting ledgerd", "config", cfg)
	var box *secretbox.Box // nil: webhook secrets are stored as issued
	if cfg.EncryptionKey != nil {
		var err error
		if box, err = secretbox.New(cfg.EncryptionKey); err != nil {
			return fmt.Errorf("LEDGER_ENCRYPTION_KEY: %w", err)
		}
	}
	pcfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	// Each poster shard holds one connection for its transaction; the rest
	// serve reads and idempotency look-ups.
	if want := int32(2*cfg.PosterShards + 8); pcfg.MaxConns < want {
		pcfg.MaxConns = want
	}
	db, err := pg.OpenConfig(ctx, pcfg)
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	defer db.Close()
	log.Info("database connected", "engine", db.Engine)

	n, err := (&schema.Migrator{Pool: db.Pool, Log: log}).Migrate(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	log.Info("migrations applied", "new", n)
	if migrateOnly {
		return nil
	}
	rememberState(log, cfg.DataDir, databaseURLFile, cfg.DatabaseURL)
	warnMaintenance(ctx, db, log)
	// The profiler's listener first: if its port is taken, nothing else has
	// started yet that would have to be stopped and drained.
	if cfg.PprofAddr != "" {
		stopPprof, err := servePprof(cfg.PprofAddr, log)
		if err != nil {
			return err
		}
		defer stopPprof()
	}

	natsURL := cfg.NATSURL
	if natsURL == "" {
		ns, err := natsserver.Start(ctx, natsserver.Options{
			Addr: cfg.EmbeddedNATSAddr, StoreDir: filepath.Join(cfg.DataDir, "nats"), Logger: log,
		})
		if err != nil {
			return fmt.Errorf("embedded nats: %w", err)
		}
		defer ns.Shutdown()
		natsURL = ns.ClientURL()
		log.Info("embedded NATS running", "url", natsURL)
	}
	nc, err := nats.Connect(natsURL, append([]nats.Option{nats.Name("ledgerd"), nats.MaxReconnects(-1)}, natsLogging(log)...)...)
	if err != nil {
		return fmt.Errorf("nats %s: %w", natsURL, err)
	}
	defer nc.Close()
	rememberState(log, cfg.DataDir, natsURLFile, natsURL)

	m := metrics.New()
	iso := pgx.Serializable
	if cfg.PGIsolation == "repeatable_read" {
		iso = pgx.RepeatableRead
	}
	// Balances from memory: the wallet stage fills the cache at each
	// commit and tells the other processes on this database over NATS.
	walletModule := wallet.Module()
	var balances *wallet.BalanceCache
	if cfg.BalanceCacheMaxAge > 0 {
		if strings.HasPrefix(balancebus.DefaultSubject, cfg.NATSSubjectPrefix+".") {
			return fmt.Errorf("LEDGER_NATS_SUBJECT_PREFIX %q would put the balance invalidations (%s) in the events stream", cfg.NATSSubjectPrefix, balancebus.DefaultSubject)
		}
		reads, err := newBalanceReads(m.Registry())
		if err != nil {
			return fmt.Errorf("balance cache metrics: %w", err)
		}
		bus := balancebus.New(nc, balancebus.DefaultSubject, log)
		defer func() { _ = bus.Close() }()
		balances = wallet.NewBalanceCache(wallet.BalanceCacheOptions{MaxAge: cfg.BalanceCacheMaxAge, Broadcaster: bus, Observer: reads})
		walletModule = balances.Module()
	}
	l, err := ledger.New(db, ledger.Options{
		Shards: cfg.PosterShards, MaxBatch: cfg.PosterMaxBatch, Linger: cfg.PosterLinger,
		Observer: m, Log: log, Tx: pg.TxOptions{IsoLevel: iso},
		// New orders them: metering and billing feed the wallet stage.
		Modules: []ledger.Module{metering.Module(), billing.Module(), walletModule},
	})
	if err != nil {
		return err
	}
	m.QueueDepth(l.QueueDepth)
	wallets := wallet.NewService(l)
	if balances != nil {
		if err := wallets.UseBalanceCache(balances); err != nil {
			drain(l, log)
			return err
		}
	}
	meters := metering.NewService(l, wallets, log)
	bills := billing.NewService(l, wallets, meters, log)
	bills.SetSeller(cfg.InvoiceSeller)
	meters.Observe(m)
	consumer, err := metering.NewConsumer(ctx, nc, meters, metering.ConsumerOptions{
		Stream: cfg.NATSStream, SubjectPrefix: cfg.NATSSubjectPrefix, Workers: cfg.NATSWorkers, Log: log,
		MaxDeliveries: cfg.NATSMaxDeliveries,
	})
	if err != nil {
		drain(l, log)
		return fmt.Errorf("usage events: %w", err)
	}
	m.Watch(metrics.Sources{DB: db, Consumer: consumer.Stats})

	// Side effects leave through the outbox: the relay fans them out to
	// webhook deliveries and credits immediate top-ups; the dispatcher sends
	// the deliveries.
	hooks := webhook.New(db, webhook.Options{AllowPrivate: cfg.WebhookAllowPrivate, Log: log, SecretBox: box})
	sealWebhookSecrets(ctx, hooks, box != nil, log)
	relay := ledger.NewRelay(db, log, hooks, wallets)
	relay.Relayed = hooks.Nudge

	keys := apikey.NewStore(db)
	if cfg.AdminKey == "" {
		if cfg.AdminKey, err = ensureAdminKey(ctx, keys, cfg.DataDir, log, stdout); err != nil {
			return fmt.Errorf("admin key: %w", err)
		}
	}
	if cfg.AdminKey != "" {
		created, err := keys.BootstrapAdmin(ctx, cfg.AdminKey)
		if err != nil {
			return fmt.Errorf("bootstrap admin key: %w", err)
		}
		if created {
			log.Info("LEDGER_ADMIN_KEY stored as the first admin key")
		} else if k, err := keys.Authenticate(ctx, cfg.AdminKey); err != nil || k.Scope != apikey.Admin {
			// The key table had keys already (another checkout or an older
			// key file used this database): the key the user was shown
			// will get 401. Say so where they look.
			log.Warn("LEDGER_ADMIN_KEY is not an admin key of this database: it is only installed into an empty key table. " +
				"Use an existing admin key, or make one with `bin/ledgerctl keys create --scope admin`")
		}
	}

	app := api.New(api.Config{
		DB: db, Log: log, Keys: keys, Metrics: m, BodyLimit: cfg.BodyLimitBytes,
		Ready: api.Readiness(
			api.Check{Name: "database", Func: db.Pool.Ping},
			api.Check{Name: "nats", Func: func(context.Context) error {
				if !nc.IsConnected() {
					return errors.New("not connected")
				}
				return nil
			}},
			// Connected is not consuming: a broker restarted on an empty
			// store answers, but has no stream until the consumer makes it
			// again.
			api.Check{Name: "usage events", Func: func(context.Context) error { return consumer.Healthy() }},
		),
		Routes:         slices.Concat(api.WalletRoutes(wallets), api.InvoiceRoutes(bills), api.PlanRoutes(bills), api.MeteringRoutes(meters), api.WebhookRoutes(hooks)),
		CustomerExists: wallets.CustomerExists,
		CORSOrigins:    cfg.CORSOrigins,
		Pages: []api.HTMLPages{portal.New(portal.Config{
			Keys: keys, Wallets: wallets, Bills: bills, Meters: meters, DB: db, Log: log})},
	})

	sweepCtx, stopSweeps := context.WithCancel(context.Background())
	// Every second each sweep fails the same way while the database is
	// away: one line per interval.
	var sweepLogs ratelog.Limiter
	sweeps := every(sweepCtx, time.Second, func(ctx context.Context) {
		if n, err := wallets.ExpireHolds(ctx, 1000); err != nil {
			sweepLogs.Log(log, slog.LevelWarn, "hold expiry sweep", "err", err)
		} else if n > 0 {
			log.Info("released expired holds", "holds", n)
		}
		if n, err := wallets.Sweep(ctx); err != nil {
			sweepLogs.Log(log, slog.LevelWarn, "grant expiry sweep", "err", err)
		} else if n > 0 {
			log.Info("expired or settled grants", "grants", n)
		}
		if n, err := bills.CloseDueCycles(ctx); err != nil {
			sweepLogs.Log(log, slog.LevelWarn, "billing cycle close", "err", err)
		} else if n > 0 {
			log.Info("closed billing cycles", "invoices", n)
		}
		if n, err := bills.CloseDuePeriods(ctx); err != nil {
			sweepLogs.Log(log, slog.LevelWarn, "subscription period close", "err", err)
		} else if n > 0 {
			log.Info("closed subscription periods", "invoices", n)
		}
	})
	// The runway reads a week of the journal: once a minute is soon enough
	// for an alert about days.
	runways := every(sweepCtx, time.Minute, func(ctx context.Context) {
		if n, err := wallets.SweepRunway(ctx, cfg.RunwayAlertDays); err != nil {
			sweepLogs.Log(log, slog.LevelWarn, "runway sweep", "err", err)
		} else if n > 0 {
			log.Info("runway alerts sent", "wallets", n)
		}
	})
	analyzing := make(chan struct{})
	go func() { defer close(analyzing); pg.KeepStatistics(sweepCtx, db, cfg.AnalyzeInterval, log) }()
	relaying := make(chan struct{})
	go func() { defer close(relaying); relay.Run(sweepCtx, 100*time.Millisecond) }()
	dispatching := make(chan struct{})
	go func() { defer close(dispatching); hooks.Run(sweepCtx) }()
	consuming := make(chan error, 1)
	go func() { consuming <- consumer.Run(sweepCtx) }()
	log.Info("consuming usage events", "stream", cfg.NATSStream, "subjects", cfg.NATSSubjectPrefix+".>")
	// Sweepers and the consumer stop before the poster drains, so nothing
	// is enqueued late; unacked events are redelivered after a restart.
	stopWorkers := func() {
		stopSweeps()
		<-sweeps
		<-runways
		<-analyzing
		<-relaying
		<-dispatching
		if err := <-consuming; err != nil {
			log.Warn("usage consumer", "err", err)
		}
	}

	errc := make(chan error, 1)
	go func() { errc <- app.Listen(cfg.HTTPAddr) }()
	log.Info("serving", "http", cfg.HTTPAddr)

	select {
	case err := <-errc:
		stopWorkers()
		drain(l, log)
		return fmt.Errorf("http: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing requests and draining the poster")
	if err := app.ShutdownWithTimeout(15 * time.Second); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	stopWorkers()
	drain(l, log)
	log.Info("stopped cleanly")
	return nil
}

// natsLogging says in the log when the connection to NATS breaks, comes
// back or closes for good, and what the server complained of: without it a
// broker restart was invisible.
func natsLogging(log *slog.Logger) []nats.Option {
	return []nats.Option{
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err == nil {
				return // closed on purpose, at shutdown
			}
			log.Warn("NATS connection lost; reconnecting", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("NATS connection back", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			if err := nc.LastError(); err != nil {
				log.Error("NATS connection closed", "err", err)
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Warn("NATS error", "subject", subject, "err", err)
		}),
	}
}

// sealWebhookSecrets encrypts the webhook secrets still stored in plaintext
// when ledgerd has an encryption key, and says once, at startup, when some
// endpoints' secrets cannot be read: their deliveries will fail (each
// attempt saying why) until the right key is set. Neither stops the
// server: the other endpoints work.
func sealWebhookSecrets(ctx context.Context, hooks *webhook.Service, haveKey bool, log *slog.Logger) {
	rep, err := hooks.SealSecrets(ctx)
	if err != nil {
		log.Warn("webhook secrets: could not encrypt them at rest; they stay readable, and the next start tries again", "err", err)
		return
	}
	if rep.Sealed > 0 {
		log.Info("webhook secrets encrypted at rest with LEDGER_ENCRYPTION_KEY", "secrets", rep.Sealed)
	}
	switch {
	case rep.Unreadable > 0 && !haveKey:
		log.Warn("webhook endpoints have encrypted secrets but LEDGER_ENCRYPTION_KEY is not set: "+
			"their deliveries fail until it is set to the key they were encrypted with", "endpoints", rep.Unreadable)
	case rep.Unreadable > 0:
		log.Warn("webhook endpoints have secrets that LEDGER_ENCRYPTION_KEY does not decrypt (encrypted with another key, or altered): "+
			"their deliveries fail until it is set to the key they were encrypted with", "endpoints", rep.Unreadable)
	}
}

// drain lets the poster commit what it has queued.
func drain(l *ledger.Ledger, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.Close(ctx); err != nil {
		log.Error("poster drain", "err", err)
	}
}

// every runs f each period until ctx ends; the returned channel closes when
// the last run has returned.
func every(ctx context.Context, period time.Duration, f func(context.Context)) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				f(ctx)
			}
		}
	}()
	return done
}

// warnMaintenance says so when PostgreSQL runs without autovacuum. The
// poster's batch queries ("= ANY($1)" over hundreds of wallets) need
// statistics to be planned as index scans, and its counter rows leave dead
// versions behind on every batch: without autovacuum (or a scheduled
// VACUUM ANALYZE) NATS ingest ran at a quarter of its speed in the load
// test (BENCHMARKS.md).
func warnMaintenance(ctx context.Context, db *pg.DB, log *slog.Logger) {
	if db.Engine != pg.Postgres {
		return
	}
	var on string
	if err := db.Pool.QueryRow(ctx, "SELECT current_setting('autovacuum')").Scan(&on); err != nil || on != "off" {
		return
	}
	log.Warn("PostgreSQL runs with autovacuum off: schedule VACUUM on this database, or counter rows bloat and batches slow down (ledgerd keeps the statistics itself: LEDGER_ANALYZE_INTERVAL)")
}

// servePprof serves Go's profiler on its own listener, never on the API's:
// profiles show request data and must not be reachable with an API key.
func servePprof(addr string, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pprof listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("pprof", "err", err)
		}
	}()
	log.Info("serving pprof", "addr", ln.Addr().String())
	return func() { _ = srv.Close() }, nil
}
