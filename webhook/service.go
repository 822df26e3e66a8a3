// Package webhook sends the ledger's public events to the app's HTTP
// endpoints: endpoint registration, Standard Webhooks signing, the fan-out of
// committed outbox messages into deliveries, and the dispatcher that sends
// them at least once with retries, a delivery log and manual resends.
//
// The flow: a ledger batch writes an outbox row in the transaction of the
// change that caused it; the ledger.Relay hands it to Service.HandleOutbox,
// which inserts one delivery per subscribed endpoint in the relay's
// transaction (so fan-out happens exactly once); the dispatcher (Run) claims
// due deliveries, sends them outside any transaction and records each
// attempt.
package webhook

import (
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/internal/ratelog"
	"github.com/creditledger/creditledger/internal/secretbox"
)

// The public event types, the outbox topics that become webhooks. Other
// topics stay internal.
const (
	EventThresholdReached = "wallet.threshold_reached"
	EventDepleted         = "wallet.depleted"
	EventOverageStarted   = "wallet.overage_started"
	EventTopupRequested   = "topup.requested"
	EventTopupSucceeded   = "topup.succeeded"
	EventTopupFailed      = "topup.failed"
	EventGrantExpired     = "grant.expired"
	EventHoldExpired      = "hold.expired"
	EventInvoiceCreated   = "invoice.created"
	EventInvoicePaid      = "invoice.paid"
	EventInvoiceVoided    = "invoice.voided"
	// A subscription's life: started, a new period (with its included
	// credits), ended.
	EventSubscriptionCreated  = "subscription.created"
	EventSubscriptionRenewed  = "subscription.renewed"
	EventSubscriptionCanceled = "subscription.canceled"
	// The credits run out within LEDGER_RUNWAY_ALERT_DAYS at the burn rate
	// of the last 7 days; once per reference, as the thresholds.
	EventRunwayLow = "wallet.runway_low"
)

// EventTypes returns the public event types, in documentation order. The
// slice is the caller's.
func EventTypes() []string {
	return []string{
		EventThresholdReached, EventDepleted, EventOverageStarted, EventRunwayLow,
		EventTopupRequested, EventTopupSucceeded, EventTopupFailed,
		EventGrantExpired, EventHoldExpired, EventInvoiceCreated,
		EventInvoicePaid, EventInvoiceVoided,
		EventSubscriptionCreated, EventSubscriptionRenewed, EventSubscriptionCanceled,
	}
}

// IsEventType reports whether t is a public event type.
func IsEventType(t string) bool { return slices.Contains(EventTypes(), t) }

// Delivery statuses.
const (
	StatusPending   = "pending"
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
)

// CodeEndpointInactive is the code of the fault.Conflict that refuses a
// resend to an endpoint that is disabled or deleted: nothing would send it.
// Every other error is of the fault vocabulary too: fault.NotFound for an
// endpoint or delivery that does not exist, fault.Invalid naming the field
// of a request that is wrong.
const CodeEndpointInactive = "endpoint_inactive"

// DefaultSchedule is the wait before each retry of a failed delivery,
// about 27.6 hours in all, each varied by ±20%: eight attempts, then the
// delivery is failed. The first retries come soon for a blip; the later ones
// ride out a day-long outage.
func DefaultSchedule() []time.Duration {
	return []time.Duration{
		5 * time.Second, 5 * time.Minute, 30 * time.Minute,
		2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour,
	}
}

// Defaults of Options.
const (
	DefaultTimeout      = 10 * time.Second
	DefaultDisableAfter = 5 * 24 * time.Hour
	DefaultPollInterval = time.Second
	DefaultConcurrency  = 16
)

// UserAgent is sent with every delivery.
const UserAgent = "creditledger-webhooks/1.0"

// Options tune a Service. The zero value is the production defaults.
type Options struct {
	// AllowPrivate lets endpoints resolve to loopback, private, link-local
	// and other internal addresses (LEDGER_WEBHOOK_ALLOW_PRIVATE), for
	// development and tests. Off, they are refused at creation and, whatever
	// the DNS says later, at connection time.
	AllowPrivate bool
	// Timeout bounds one attempt, from dialing to the response status. A
	// delivery not answered 2xx within it has failed. Default 10s.
	Timeout time.Duration
	// Schedule is the wait before each retry (see DefaultSchedule); each is
	// varied by ±20% so that endpoints recovering from an outage are not hit
	// by every delivery at once. len(Schedule)+1 attempts, then failed.
	Schedule []time.Duration
	// DisableAfter disables an endpoint whose attempts have all failed for
	// this long. Default 5 days.
	DisableAfter time.Duration
	// PollInterval is how often an idle dispatcher looks for due deliveries.
	// Default 1s.
	PollInterval time.Duration
	// Concurrency is how many endpoints one dispatcher sends to at once;
	// each endpoint's deliveries go one at a time. Default 16.
	Concurrency int
	Log         *slog.Logger     // default: discard
	Now         func() time.Time // default: time.Now; every timestamp the service writes comes from it
	// HTTPClient replaces the client deliveries are sent with. The default
	// client refuses internal addresses as it dials (unless AllowPrivate),
	// ignores proxy settings and does not follow redirects; a replacement
	// must do all that itself.
	HTTPClient *http.Client
	// SecretBox, if set (LEDGER_ENCRYPTION_KEY), encrypts the endpoints'
	// signing secrets at rest: every secret written is sealed with the
	// endpoint id as additional data, and SealSecrets seals those written
	// before. Without it secrets are stored as issued, and an endpoint whose
	// secret is sealed cannot be sent to (each attempt fails, saying why).
	SecretBox *secretbox.Box
}

// Service registers endpoints, fans out events and dispatches deliveries.
// It is safe for concurrent use, and several Services (in several
// processes) may dispatch from one database.
type Service struct {
	db     *pg.DB
	opts   Options
	log    *slog.Logger
	logs   ratelog.Limiter // for failures that repeat while the database is away
	now    func() time.Time
	client *http.Client
	guard  *guard
	// wake nudges Run when a resend made a delivery due now.
	wake chan struct{}
}

// perEndpoint is how many due deliveries of one endpoint a dispatcher claims
// at once; they are sent one after the other under one endpoint lease.
const perEndpoint = 10

// New returns a Service on db.
func New(db *pg.DB, opts Options) *Service {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if len(opts.Schedule) == 0 {
		opts.Schedule = DefaultSchedule()
	}
	opts.Schedule = slices.Clone(opts.Schedule)
	if opts.DisableAfter <= 0 {
		opts.DisableAfter = DefaultDisableAfter
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	s := &Service{db: db, opts: opts, log: opts.Log, now: opts.Now, client: opts.HTTPClient,
		guard: &guard{allowPrivate: opts.AllowPrivate}, wake: make(chan struct{}, 1)}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.client == nil {
		s.client = s.guard.client()
	}
	return s
}

// lease is how long a claim keeps an endpoint and its claimed deliveries
// from other dispatchers: long enough to send the whole claimed batch, one
// timeout each, and record the outcomes. A dispatcher that dies holds them
// no longer than this.
func (s *Service) lease() time.Duration {
	return s.opts.Timeout*(perEndpoint+1) + 30*time.Second
}
