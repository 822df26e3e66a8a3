package metering

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shopspring/decimal"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/pricing"
	"github.com/creditledger/creditledger/wallet"
)

// MaxBatchEvents is the most events one ingest call takes.
const MaxBatchEvents = 1000

// Service is metering: meters, prices, ingest, usage.
type Service struct {
	l        *ledger.Ledger
	db       *pg.DB
	wallets  *wallet.Service
	log      *slog.Logger
	observer Observer
	charger  Charger
}

// Charger charges a usage event's price to a customer's wallet inside the
// batch: the wallet module's side of an event (wallet.Charger). Metering's
// own rules — which meters count an event, how its aggregate moves, which
// price applies and what the marginal charge is — are tested against
// another.
type Charger interface {
	ChargeUsage(b ledger.Batch, id wallet.WalletID, sys wallet.SystemAccounts, amount ledger.Amount, line wallet.UsageLine) (wallet.Charge, error)
}

// NewService returns metering on a ledger built with Module() and
// wallet.Module(), in that order.
func NewService(l *ledger.Ledger, wallets *wallet.Service, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{l: l, db: l.DB(), wallets: wallets, log: log, observer: NopObserver{}, charger: wallet.Charger{}}
}

// Observe sends ingestion's outcomes to o (metrics). Call it before the
// service is used.
func (s *Service) Observe(o Observer) { s.observer = o }

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

const meterSelect = `SELECT id, code, event_name, aggregation, property, filters, group_by, created_at FROM meters `

func queryMeters(ctx context.Context, q querier, where string, args ...any) ([]*Meter, error) {
	rows, err := q.Query(ctx, meterSelect+where+` ORDER BY created_at, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("read meters: %w", err)
	}
	defer rows.Close()
	var out []*Meter
	for rows.Next() {
		var (
			m                Meter
			agg              string
			prop             *string
			filters, groupBy []byte
		)
		if err := rows.Scan(&m.ID, &m.Code, &m.EventName, &agg, &prop, &filters, &groupBy, &m.CreatedAt); err != nil {
			return nil, fmt.Errorf("scan meter: %w", err)
		}
		m.Aggregation, m.CreatedAt = Aggregation(agg), m.CreatedAt.UTC()
		if prop != nil {
			m.Property = *prop
		}
		if err := decodeJSON(filters, &m.Filters); err != nil {
			return nil, err
		}
		if err := decodeJSON(groupBy, &m.GroupBy); err != nil {
			return nil, err
		}
		out = append(out, &m)
	}
	return out, rows.Err()
}

// CreateMeter stores a meter; ErrExists if its code is taken.
func (s *Service) CreateMeter(ctx context.Context, m Meter) (Meter, error) {
	if err := m.Validate(); err != nil {
		return Meter{}, err
	}
	m.ID, m.CreatedAt = uuid.New(), s.l.Now()
	var filters, groupBy *string
	if len(m.Filters) > 0 {
		b, _ := json.Marshal(m.Filters)
		f := string(b)
		filters = &f
	}
	if len(m.GroupBy) > 0 {
		b, _ := json.Marshal(m.GroupBy)
		g := string(b)
		groupBy = &g
	}
	var prop *string
	if m.Property != "" {
		prop = &m.Property
	}
	_, err := s.db.Pool.Exec(ctx, `INSERT INTO meters (id, code, event_name, aggregation, property, filters, group_by, created_at)
		VALUES ($1, $2, $3, $4, $5, $6::JSONB, $7::JSONB, $8)`, m.ID, m.Code, m.EventName, string(m.Aggregation), prop, filters, groupBy, m.CreatedAt)
	if isUnique(err) {
		return Meter{}, fault.Existsf("a meter with code %q exists already", m.Code)
	}
	if err != nil {
		return Meter{}, fmt.Errorf("create meter: %w", err)
	}
	return m, nil
}

// Meters lists every meter.
func (s *Service) Meters(ctx context.Context) ([]Meter, error) {
	ms, err := queryMeters(ctx, s.db.Pool, "")
	if err != nil {
		return nil, err
	}
	out := make([]Meter, len(ms))
	for i, m := range ms {
		out[i] = *m
	}
	return out, nil
}

func (s *Service) meterByCode(ctx context.Context, code string) (*Meter, error) {
	if !codePattern.MatchString(code) {
		// No meter has such a code, and PostgreSQL would refuse to look
		// for one holding a NUL.
		return nil, fault.NotFoundf("no meter %q", code)
	}
	ms, err := queryMeters(ctx, s.db.Pool, `WHERE code = $1`, code)
	if err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		return nil, fault.NotFoundf("no meter %q", code)
	}
	return ms[0], nil
}

// Price is a stored price.
type Price struct {
	ID        uuid.UUID `json:"id"`
	MeterID   MeterID   `json:"-"`
	MeterCode string    `json:"meter_code"`
	Asset     string    `json:"asset"`
	pricing.Price
	CreatedAt time.Time `json:"created_at"`
}

// MarshalJSON flattens the price model's fields next to the record's.
func (p Price) MarshalJSON() ([]byte, error) {
	model, err := json.Marshal(p.Price)
	if err != nil {
		return nil, err
	}
	head, err := json.Marshal(struct {
		ID        uuid.UUID `json:"id"`
		MeterCode string    `json:"meter_code"`
		Asset     string    `json:"asset"`
		CreatedAt time.Time `json:"created_at"`
	}{p.ID, p.MeterCode, p.Asset, p.CreatedAt})
	if err != nil {
		return nil, err
	}
	if len(model) <= 2 {
		return head, nil
	}
	return append(append(head[:len(head)-1], ','), model[1:]...), nil
}

// NewPrice is what CreatePrice needs.
type NewPrice struct {
	MeterCode string
	Asset     string
	Price     pricing.Price
}

func queryPrices(ctx context.Context, q querier, where string, args ...any) ([]Price, error) {
	rows, err := q.Query(ctx, `SELECT p.id, p.meter_id, m.code, p.asset, p.spec, p.created_at
		FROM prices p JOIN meters m ON m.id = p.meter_id `+where+` ORDER BY p.created_at, p.id`, args...)
	if err != nil {
		return nil, fmt.Errorf("read prices: %w", err)
	}
	defer rows.Close()
	var out []Price
	for rows.Next() {
		var (
			p    Price
			spec []byte
		)
		if err := rows.Scan(&p.ID, &p.MeterID, &p.MeterCode, &p.Asset, &spec, &p.CreatedAt); err != nil {
			return nil, fmt.Errorf("scan price: %w", err)
		}
		if err := json.Unmarshal(spec, &p.Price); err != nil {
			return nil, fmt.Errorf("price %s spec: %w", p.ID, err)
		}
		p.CreatedAt = p.CreatedAt.UTC()
		out = append(out, p)
	}
	return out, rows.Err()
}

// CreatePrice stores a price for a meter; ErrExists if the meter already
// has one for the asset and dimensions.
func (s *Service) CreatePrice(ctx context.Context, np NewPrice) (Price, error) {
	if err := np.Price.Validate(); err != nil {
		var v *pricing.ValidationError
		if errors.As(err, &v) {
			return Price{}, fault.Invalidf(v.Field, "%s", v.Detail)
		}
		return Price{}, err
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
	spec, err := json.Marshal(np.Price)
	if err != nil {
		return Price{}, err
	}
	p := Price{ID: uuid.New(), MeterID: m.ID, MeterCode: m.Code, Asset: np.Asset, Price: np.Price, CreatedAt: s.l.Now()}
	_, err = s.db.Pool.Exec(ctx, `INSERT INTO prices (id, meter_id, asset, spec, dimensions_key, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		p.ID, p.MeterID, p.Asset, string(spec), np.Price.DimensionKey(), p.CreatedAt)
	if isUnique(err) {
		return Price{}, fault.Existsf("meter %q already has a %s price for these dimensions", m.Code, np.Asset)
	}
	if err != nil {
		return Price{}, fmt.Errorf("create price: %w", err)
	}
	return p, nil
}

// Prices lists every price.
func (s *Service) Prices(ctx context.Context) ([]Price, error) {
	return queryPrices(ctx, s.db.Pool, "")
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

func isUnique(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// Window is the width of a usage series' buckets.
type Window string

const (
	Hour Window = "hour"
	Day  Window = "day"
)

// UsagePoint is one bucket of a usage series.
type UsagePoint struct {
	Start    time.Time       `json:"start"`
	Quantity decimal.Decimal `json:"quantity"`
	Amount   ledger.Amount   `json:"amount"`
}

// Usage is a customer's usage of one meter over a time range.
type Usage struct {
	Meter  string          `json:"meter"`
	From   time.Time       `json:"from"`
	To     time.Time       `json:"to"`
	Window Window          `json:"window"`
	Series []UsagePoint    `json:"series"`
	Total  decimal.Decimal `json:"total"`
	Amount ledger.Amount   `json:"amount"`
}

// Usage returns the meter's quantity and what it cost per window in
// [from, to). A bucket's quantity aggregates the events in it the meter's
// way: a count or sum adds, max takes the largest, unique_count counts
// distinct values, latest takes the last value. Amount adds what the events
// were charged (in every asset the meter is priced in).
func (s *Service) Usage(ctx context.Context, customerID, meterCode string, from, to time.Time, window Window) (Usage, error) {
	if window != Hour && window != Day {
		return Usage{}, fault.Invalidf("window", "must be hour or day")
	}
	if !to.After(from) {
		return Usage{}, fault.Invalidf("to", "must be after from")
	}
	if to.Sub(from) > 400*24*time.Hour {
		return Usage{}, fault.Invalidf("to", "at most 400 days after from")
	}
	if ok, err := wallet.CustomerExists(ctx, s.db, customerID); err != nil {
		return Usage{}, err
	} else if !ok {
		return Usage{}, fault.NotFoundf("no customer %q", customerID)
	}
	m, err := s.meterByCode(ctx, meterCode)
	if errors.Is(err, fault.NotFound) {
		return Usage{}, fault.Invalidf("meter", "no meter %q", meterCode)
	}
	if err != nil {
		return Usage{}, err
	}
	u := Usage{Meter: m.Code, From: from.UTC(), To: to.UTC(), Window: window, Series: []UsagePoint{}}
	// A meter priced in two assets has a record per asset for one event:
	// quantities are read off one of them (first), amounts off all.
	quantity := map[Aggregation]string{
		Count:       `SUM(CASE WHEN first THEN value END)`,
		Sum:         `SUM(CASE WHEN first THEN value END)`,
		Max:         `MAX(CASE WHEN first THEN value END)`,
		UniqueCount: `COUNT(DISTINCT CASE WHEN first THEN unique_value END)`,
		Latest:      `(array_agg(CASE WHEN first THEN value END ORDER BY first DESC, ts DESC))[1]`,
	}[m.Aggregation]
	records := `SELECT ts, value, unique_value, amount,
			asset = MIN(asset) OVER (PARTITION BY event_id) AS first,
			date_trunc($5, ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS bucket
		FROM usage_records
		WHERE customer_id = $1 AND meter_id = $2 AND ts >= $3 AND ts < $4`
	args := []any{customerID, m.ID, from, to, string(window)}
	rows, err := s.db.Pool.Query(ctx, `SELECT bucket, `+quantity+`, SUM(amount)
		FROM (`+records+`) r GROUP BY bucket ORDER BY bucket`, args...)
	if err != nil {
		return Usage{}, fmt.Errorf("usage: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			p UsagePoint
			q *decimal.Decimal
		)
		if err := rows.Scan(&p.Start, &q, &p.Amount); err != nil {
			return Usage{}, fmt.Errorf("scan usage: %w", err)
		}
		p.Start = p.Start.UTC()
		if q != nil {
			p.Quantity = *q
		}
		u.Series = append(u.Series, p)
		u.Amount = u.Amount.Add(p.Amount)
	}
	if err := rows.Err(); err != nil {
		return Usage{}, err
	}
	var total *decimal.Decimal
	if err := s.db.Pool.QueryRow(ctx, `SELECT `+quantity+` FROM (`+records+`) r`, args...).Scan(&total); err != nil {
		return Usage{}, fmt.Errorf("usage total: %w", err)
	}
	if total != nil {
		u.Total = *total
	}
	return u, nil
}
