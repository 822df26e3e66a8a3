package metering

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/pricing"
)

// Price is a stored price: a price model for one meter, asset and set of
// dimensions, in force from EffectiveAt until the next price of its series
// takes over or it is archived.
type Price struct {
	ID        uuid.UUID `json:"id"`
	MeterID   MeterID   `json:"-"`
	MeterCode string    `json:"meter_code"`
	Asset     string    `json:"asset"`
	pricing.Price
	// Scope is the book the price belongs to: DefaultBook, a plan
	// version's or a subscription's (see PlanScope, OverrideScope).
	Scope       string     `json:"-"`
	EffectiveAt time.Time  `json:"effective_at"`
	ArchivedAt  *time.Time `json:"archived_at"`
	CreatedAt   time.Time  `json:"created_at"`

	idempotencyKey *string // the client's, if it sent one
	requestHash    []byte  // of the request that made it, with the key
}

// DefaultBook is the scope of the prices POST /prices makes: they price
// every customer without a subscription, and subscribed customers for the
// meters their plan does not price.
const DefaultBook = ""

// PlanScope is the scope of a plan version's prices.
func PlanScope(version uuid.UUID) string { return "plan:" + version.String() }

// OverrideScope is the scope of a subscription's price overrides.
func OverrideScope(subscription uuid.UUID) string { return "subscription:" + subscription.String() }

// Beginning is the effective time of a series' first price when none is
// given: it prices every event, as prices did before they had a time, so
// an event stamped a moment before its meter's first price is not left
// unpriced.
var Beginning = time.Unix(0, 0).UTC()

// MarshalJSON flattens the price model's fields next to the record's.
func (p Price) MarshalJSON() ([]byte, error) {
	model, err := json.Marshal(p.Price)
	if err != nil {
		return nil, err
	}
	head, err := json.Marshal(struct {
		ID          uuid.UUID  `json:"id"`
		MeterCode   string     `json:"meter_code"`
		Asset       string     `json:"asset"`
		EffectiveAt time.Time  `json:"effective_at"`
		ArchivedAt  *time.Time `json:"archived_at"`
		CreatedAt   time.Time  `json:"created_at"`
	}{p.ID, p.MeterCode, p.Asset, p.EffectiveAt, p.ArchivedAt, p.CreatedAt})
	if err != nil {
		return nil, err
	}
	if len(model) <= 2 {
		return head, nil
	}
	return append(append(head[:len(head)-1], ','), model[1:]...), nil
}

// series names the prices that take over from one another: same meter,
// asset, dimensions and book.
func (p Price) series() string {
	return p.MeterID.String() + "|" + p.Asset + "|" + p.Price.DimensionKey() + "|" + p.Scope
}

// NewPrice is what CreatePrice needs.
type NewPrice struct {
	MeterCode   string
	Asset       string
	Price       pricing.Price
	EffectiveAt *time.Time // default: now, or the Beginning for a series' first price
}

// PreparePrice validates np and resolves its meter, making the asset's
// system accounts, and returns the price to write (scope and effective
// time are the writer's). It writes no price: a plan writes its prices
// with its version, in one transaction.
func (s *Service) PreparePrice(ctx context.Context, np NewPrice) (Price, error) {
	if err := np.Price.Validate(); err != nil {
		return Price{}, err // fault.Invalid, naming the field
	}
	if !assetPattern(np.Asset) {
		return Price{}, fault.Invalidf("asset", "1 to 16 upper-case letters, digits or _, starting with a letter (e.g. CREDITS, USD)")
	}
	m, err := s.meterByCode(ctx, np.MeterCode)
	if errors.Is(err, fault.NotFound) {
		return Price{}, fault.Invalidf("meter_code", "no meter %q", np.MeterCode)
	}
	if err != nil {
		return Price{}, err
	}
	for d := range np.Price.Dimensions {
		if !contains(m.GroupBy, d) {
			return Price{}, fault.Invalidf("dimensions", "%q is not in the meter's group_by %v", d, m.GroupBy)
		}
	}
	// The asset's system accounts exist before the first event needs them.
	if _, err := s.wallets.System(ctx, np.Asset); err != nil {
		return Price{}, err
	}
	return Price{ID: uuid.New(), MeterID: m.ID, MeterCode: m.Code, Asset: np.Asset, Price: np.Price, CreatedAt: s.l.Now()}, nil
}

// WritePrices inserts prices in tx, each already prepared and given its
// scope and effective time. A second price of a series at the same
// effective time is fault.Exists.
func WritePrices(ctx context.Context, tx pgx.Tx, ps []Price) error {
	for _, p := range ps {
		spec, err := json.Marshal(p.Price)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO prices (id, meter_id, asset, spec, dimensions_key, scope, effective_at, created_at,
				idempotency_key, request_hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			p.ID, p.MeterID, p.Asset, string(spec), p.Price.DimensionKey(), p.Scope, p.EffectiveAt, p.CreatedAt,
			p.idempotencyKey, p.requestHash)
		if pg.IsUnique(err, "prices_idempotency_key") {
			return errKeyTaken
		}
		if pg.IsUnique(err, "") {
			return fault.Existsf("meter %q already has a %s price for these dimensions from %s", p.MeterCode, p.Asset,
				p.EffectiveAt.Format(time.RFC3339))
		}
		if err != nil {
			return fmt.Errorf("create price: %w", err)
		}
	}
	return nil
}

// CreatePrice adds a price to the default book. A price for a meter, asset
// and dimensions that already have one supersedes it from its effective
// time (default now); nothing already charged is re-rated. An effective
// time in the past is refused: events of that window already charged
// would keep the old price while late ones got the new.
//
// key is the client's Idempotency-Key ("" for none): a retry with it
// answers the price the first request made (replayed true), and the same
// key with another request is fault.Idempotency.
func (s *Service) CreatePrice(ctx context.Context, key string, np NewPrice) (Price, bool, error) {
	hash := ledger.Fingerprint("price", np)
	if key != "" {
		if p, ok, err := s.priceByKey(ctx, key, hash); ok || err != nil {
			return p, ok, err
		}
	}
	p, err := s.createPrice(ctx, key, hash, np)
	if errors.Is(err, errKeyTaken) {
		// The same key raced this request and won.
		p, _, err := s.priceByKey(ctx, key, hash)
		return p, true, err
	}
	return p, false, err
}

// errKeyTaken is an insert that met its idempotency key already taken.
var errKeyTaken = errors.New("idempotency key taken")

// priceByKey is the price made with key, if any; another request's is
// fault.Idempotency.
func (s *Service) priceByKey(ctx context.Context, key string, hash []byte) (Price, bool, error) {
	var (
		id   uuid.UUID
		made []byte
	)
	err := s.db.Pool.QueryRow(ctx, `SELECT id, request_hash FROM prices WHERE idempotency_key = $1`, key).Scan(&id, &made)
	if errors.Is(err, pgx.ErrNoRows) {
		return Price{}, false, nil
	}
	if err != nil {
		return Price{}, false, fmt.Errorf("find price by key: %w", err)
	}
	if !bytes.Equal(made, hash) {
		return Price{}, false, fault.New(fault.Idempotency, "this Idempotency-Key made another price; send a new key for a new request")
	}
	ps, err := queryPrices(ctx, s.db.Pool, &s.specs, `WHERE p.id = $1`, id)
	if err != nil || len(ps) == 0 {
		return Price{}, false, fmt.Errorf("read price %s: %w", id, err)
	}
	return ps[0], true, nil
}

func (s *Service) createPrice(ctx context.Context, key string, hash []byte, np NewPrice) (Price, error) {
	now := s.l.Now()
	if np.EffectiveAt != nil && np.EffectiveAt.Before(now) {
		return Price{}, fault.Invalidf("effective_at", "must not be in the past (now is %s): charges already made are never re-rated",
			now.Format(time.RFC3339))
	}
	p, err := s.PreparePrice(ctx, np)
	if err != nil {
		return Price{}, err
	}
	p.Scope = DefaultBook
	if key != "" {
		p.idempotencyKey, p.requestHash = &key, hash
	}
	err = s.db.RunTx(ctx, pg.TxOptions{}, func(ctx context.Context, tx pgx.Tx) error {
		p.EffectiveAt = now
		if np.EffectiveAt != nil {
			p.EffectiveAt = *np.EffectiveAt
		} else {
			var earlier bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM prices WHERE meter_id = $1 AND asset = $2
				AND dimensions_key = $3 AND scope = $4)`, p.MeterID, p.Asset, p.Price.DimensionKey(), p.Scope).Scan(&earlier); err != nil {
				return fmt.Errorf("find the price series: %w", err)
			}
			if !earlier {
				p.EffectiveAt = Beginning
			}
		}
		return WritePrices(ctx, tx, []Price{p})
	})
	if err != nil {
		return Price{}, err
	}
	return p, nil
}

// PriceFilter selects prices of the default book.
type PriceFilter struct {
	MeterCode string    // "" for all meters
	Asset     string    // "" for all assets
	At        time.Time // the instant the prices are in force at
}

// Prices lists the default book's prices in force at f.At.
func (s *Service) Prices(ctx context.Context, f PriceFilter) ([]Price, error) {
	ps, err := queryPrices(ctx, s.db.Pool, &s.specs, `WHERE p.scope = $1 AND ($2 = '' OR m.code = $2) AND ($3 = '' OR p.asset = $3)`,
		DefaultBook, f.MeterCode, f.Asset)
	if err != nil {
		return nil, err
	}
	return InForce(ps, f.At), nil
}

// ScopePrices lists every price of the given scopes, superseded and
// archived ones included (a plan shows its versions' prices with them).
func (s *Service) ScopePrices(ctx context.Context, scopes []string) ([]Price, error) {
	return queryPrices(ctx, s.db.Pool, &s.specs, `WHERE p.scope = ANY($1)`, scopes)
}

// ArchivePrice ends a default-book price now: events stamped from now on
// are no longer priced by it (nor by the price it superseded); charges
// already made stand. Archiving again answers the same price.
func (s *Service) ArchivePrice(ctx context.Context, id uuid.UUID) (Price, error) {
	ps, err := queryPrices(ctx, s.db.Pool, &s.specs, `WHERE p.id = $1`, id)
	if err != nil {
		return Price{}, err
	}
	if len(ps) == 0 {
		return Price{}, fault.NotFoundf("no price %s", id)
	}
	if ps[0].Scope != DefaultBook {
		return Price{}, fault.Conflictf("", "price %s belongs to a plan or a subscription: change it with a new plan version", id)
	}
	if ps[0].ArchivedAt != nil {
		return ps[0], nil
	}
	now := s.l.Now()
	if _, err := s.db.Pool.Exec(ctx, `UPDATE prices SET archived_at = $2 WHERE id = $1 AND archived_at IS NULL`, id, now); err != nil {
		return Price{}, fmt.Errorf("archive price: %w", err)
	}
	ps, err = queryPrices(ctx, s.db.Pool, &s.specs, `WHERE p.id = $1`, id)
	if err != nil {
		return Price{}, err
	}
	return ps[0], nil
}

// InForce keeps, of each series in ps, the price in force at t: the one
// with the latest effective time not after t, unless it was archived by
// then. A superseded price is never in force again, archived or not.
func InForce(ps []Price, t time.Time) []Price {
	latest := map[string]int{}
	var order []string
	for i, p := range ps {
		if p.EffectiveAt.After(t) {
			continue
		}
		k := p.series()
		j, ok := latest[k]
		if !ok {
			order = append(order, k)
		}
		if !ok || p.EffectiveAt.After(ps[j].EffectiveAt) {
			latest[k] = i
		}
	}
	out := []Price{}
	for _, k := range order {
		p := ps[latest[k]]
		if p.ArchivedAt != nil && !p.ArchivedAt.After(t) {
			continue
		}
		out = append(out, p)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func assetPattern(s string) bool {
	if len(s) < 1 || len(s) > 16 || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
