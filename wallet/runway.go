package wallet

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/creditledger/creditledger/ledger"
)

// The runway: how fast a wallet burns its credits and when, at that pace,
// they run out. The burn rate is what the wallet's grants gave to debits,
// captures and usage charges over the last RunwayWindow, per day; expiry,
// voids and failed top-ups take credits away but are not use, so they do
// not count. It is read from the journal, never kept: a balance answer and
// the runway sweep compute it when asked, and the debit path is unchanged.

// RunwayWindow is the span the burn rate averages over.
const RunwayWindow = 7 * 24 * time.Hour

// DefaultRunwayAlertDays is when wallet.runway_low fires unless configured
// otherwise (LEDGER_RUNWAY_ALERT_DAYS).
const DefaultRunwayAlertDays = 3

// TopicRunwayLow is emitted once per reference (re-armed by a credit, as
// the thresholds are) when a wallet's credits would run out within the
// configured number of days at its burn rate.
const TopicRunwayLow = "wallet.runway_low"

// KindRunwayLow is the journal kind of the op that fires it: it posts
// nothing; its entry is the alert's audit trail.
const KindRunwayLow = "runway_low"

// notBurn are the entry kinds whose debits of a grant are not consumption.
var notBurn = []string{KindGrantExpiry, KindGrantVoid, KindTopupFailure}

// Runway is the burn rate and the moment the credits run out at it; both
// nil when the wallet burnt nothing over the window.
type Runway struct {
	BurnRatePerDay *ledger.Amount `json:"burn_rate_per_day"`
	DepletesAt     *time.Time     `json:"depletes_at"`
}

// RunwayOf is the pure rule: consumed over RunwayWindow, divided by its
// days, is the burn per day; available divided by it is how many days are
// left from now. A wallet with nothing available depletes now.
func RunwayOf(available, consumed ledger.Amount, now time.Time) Runway {
	if !consumed.IsPositive() {
		return Runway{}
	}
	days := decimal.NewFromInt(int64(RunwayWindow / (24 * time.Hour)))
	perDay, err := ledger.NewAmount(consumed.Decimal().DivRound(days, 12))
	if err != nil || !perDay.IsPositive() {
		return Runway{}
	}
	at := depletesAt(available, perDay, now)
	return Runway{BurnRatePerDay: &perDay, DepletesAt: &at}
}

// depletesAt is now + available / perDay days; now when nothing is left.
func depletesAt(available, perDay ledger.Amount, now time.Time) time.Time {
	if !available.IsPositive() || !perDay.IsPositive() {
		return now
	}
	return addDays(now, available.Decimal().Div(perDay.Decimal()))
}

// maxRunwayDays keeps a runway of a wallet that barely burns within what a
// time.Time prints as a year of four digits.
const maxRunwayDays = 2_900_000

// addDays is now + days (a fraction of a day in seconds), at most
// maxRunwayDays ahead.
func addDays(now time.Time, days decimal.Decimal) time.Time {
	if days.Cmp(decimal.NewFromInt(maxRunwayDays)) > 0 {
		days = decimal.NewFromInt(maxRunwayDays)
	}
	whole := days.Truncate(0)
	secs := days.Sub(whole).Mul(decimal.NewFromInt(86400)).Round(0).IntPart()
	return now.AddDate(0, 0, int(whole.IntPart())).Add(time.Duration(secs) * time.Second).UTC().Truncate(time.Second)
}

// RunwayLow reports whether a wallet with available credits, burning
// perDay, runs out within days: available < perDay × days (no division).
func RunwayLow(available ledger.Amount, perDay *ledger.Amount, days int) bool {
	if perDay == nil || !perDay.IsPositive() || days <= 0 {
		return false
	}
	return available.Decimal().Cmp(perDay.Decimal().Mul(decimal.NewFromInt(int64(days)))) < 0
}

// burnedSQL sums the consumption of a wallet's grants ($1) in (from, to]
// ($2, $3), through the postings' (account_id, created_at) index.
const burnedSQL = `SELECT COALESCE(SUM(p.amount), 0) FROM grants g
	JOIN ledger_postings p ON p.account_id = g.account_id AND p.created_at > $2 AND p.created_at <= $3
	JOIN ledger_entries e ON e.id = p.entry_id
	WHERE g.wallet_id = $1 AND p.direction = 'debit' AND NOT p.pending AND e.kind <> ALL($4)`

// burnedAt is what the wallet's grants gave to consumption over the
// RunwayWindow up to t.
func (s *Service) burnedAt(ctx context.Context, id WalletID, t time.Time) (ledger.Amount, error) {
	var burned ledger.Amount
	if err := s.db.Pool.QueryRow(ctx, burnedSQL, id, t.Add(-RunwayWindow), t, notBurn).Scan(&burned); err != nil {
		return ledger.Amount{}, fmt.Errorf("burn rate: %w", err)
	}
	return burned, nil
}

// runwayAt is the wallet's runway at t, with available as the balance says.
func (s *Service) runwayAt(ctx context.Context, id WalletID, available ledger.Amount, t time.Time) (Runway, error) {
	burned, err := s.burnedAt(ctx, id, t)
	if err != nil {
		return Runway{}, err
	}
	return RunwayOf(available, burned, t), nil
}

// RunwayLowEvent is the data of wallet.runway_low.
type RunwayLowEvent struct {
	WalletID       WalletID      `json:"wallet_id"`
	CustomerID     string        `json:"customer_id"`
	Asset          string        `json:"asset"`
	Available      ledger.Amount `json:"available"`
	BurnRatePerDay ledger.Amount `json:"burn_rate_per_day"`
	DepletesAt     time.Time     `json:"depletes_at"`
	AlertDays      int           `json:"alert_days"`
}

// runwayOp fires wallet.runway_low for one wallet if, with the balance the
// batch holds locked, the runway is still under days and has not fired
// for the current reference. The sweep found it low in a snapshot; the op
// decides, so two sweepers fire it once.
type runwayOp struct {
	base
	perDay ledger.Amount
	days   int
}

var _ op = (*runwayOp)(nil)

func (o *runwayOp) Kind() string { return KindRunwayLow }

func (o *runwayOp) Fingerprint() []byte {
	return ledger.Fingerprint(o.Kind(), struct {
		W    WalletID
		Burn ledger.Amount
		Days int
	}{o.walletID, o.perDay, o.days})
}

func (o *runwayOp) Declare(*ledger.Decl) {}

// runwayResult is the op's stored result: whether it fired.
type runwayResult struct {
	Fired bool `json:"fired"`
}

func (o *runwayOp) Apply(_ context.Context, b ledger.Batch) (any, error) {
	s, w, err := walletFor(b, o.walletID)
	if err != nil {
		return nil, err
	}
	avail := available(b, w)
	if w.react.RunwayLow || !RunwayLow(avail, &o.perDay, o.days) {
		return runwayResult{}, nil
	}
	if err := b.Emit(TopicRunwayLow, w.ID, RunwayLowEvent{
		WalletID: w.ID, CustomerID: w.CustomerID, Asset: w.Asset, Available: avail,
		BurnRatePerDay: o.perDay, DepletesAt: depletesAt(avail, o.perDay, b.Now()), AlertDays: o.days,
	}); err != nil {
		return nil, err
	}
	b.Describe(w.ID, fmt.Sprintf("runway under %d days", o.days), nil)
	s.setReactions(b, w, func(r *reactions) { r.RunwayLow = true })
	return runwayResult{Fired: true}, nil
}

// SweepRunway fires wallet.runway_low for the wallets whose runway is under
// days and that have not had it for their current reference: one query
// finds them (burn over the window from the journal, available from the
// live grants' counters), and an op per wallet decides in its batch. It
// answers how many fired.
func (s *Service) SweepRunway(ctx context.Context, days int) (int, error) {
	return s.sweepRunway(ctx, days, nil)
}

// sweepRunway is SweepRunway over one wallet when only is set (tests
// sharing a database must not fire each other's wallets' alerts).
func (s *Service) sweepRunway(ctx context.Context, days int, only *WalletID) (int, error) {
	if days <= 0 {
		return 0, nil
	}
	now := s.now()
	rows, err := s.db.Pool.Query(ctx, `SELECT w.id, w.customer_id, w.asset, b.burned, a.avail
		FROM (SELECT g.wallet_id, SUM(p.amount) AS burned FROM grants g
			JOIN ledger_postings p ON p.account_id = g.account_id AND p.created_at > $1 AND p.created_at <= $2
			JOIN ledger_entries e ON e.id = p.entry_id
			WHERE p.direction = 'debit' AND NOT p.pending AND e.kind <> ALL($3)
			GROUP BY g.wallet_id) b
		JOIN wallets w ON w.id = b.wallet_id
		CROSS JOIN LATERAL (SELECT COALESCE(SUM(bal.credits_posted - bal.debits_posted - bal.debits_pending), 0) AS avail
			FROM grants g JOIN ledger_balances bal ON bal.account_id = g.account_id AND bal.shard = 0
			WHERE g.wallet_id = w.id AND g.status = 'active' AND g.effective_at <= $2
				AND (g.expires_at IS NULL OR g.expires_at > $2)) a
		WHERE COALESCE(w.reactions->>'runway_low', '') <> 'true' AND ($4::UUID IS NULL OR w.id = $4)
		LIMIT 1000`, now.Add(-RunwayWindow), now, notBurn, only)
	if err != nil {
		return 0, fmt.Errorf("find low runways: %w", err)
	}
	type due struct {
		wallet          WalletID
		customer, asset string
		burned, avail   ledger.Amount
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (due, error) {
		var d due
		return d, r.Scan(&d.wallet, &d.customer, &d.asset, &d.burned, &d.avail)
	})
	if err != nil {
		return 0, fmt.Errorf("find low runways: %w", err)
	}
	fired := 0
	for _, d := range list {
		rw := RunwayOf(d.avail, d.burned, now)
		if !RunwayLow(d.avail, rw.BurnRatePerDay, days) {
			continue
		}
		sys, err := s.System(ctx, d.asset)
		if err != nil {
			return fired, err
		}
		// A fresh key per sweep: whether it fires is the op's to decide
		// from the reactions it holds locked (once per reference).
		res, err := submit[runwayResult](ctx, s, &runwayOp{
			base:   base{key: "runway-low:" + d.wallet.String() + ":" + uuid.NewString(), walletID: d.wallet, customer: d.customer, sys: sys},
			perDay: *rw.BurnRatePerDay, days: days,
		})
		if err != nil {
			return fired, fmt.Errorf("runway of wallet %s: %w", d.wallet, err)
		}
		if v, err := res.Value(); err == nil && v.Fired {
			fired++
		}
	}
	return fired, nil
}
