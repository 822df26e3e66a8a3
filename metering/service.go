package metering

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shopspring/decimal"

	"github.com/creditledger/creditledger/internal/text"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/pricing"
	"github.com/creditledger/creditledger/wallet"
)

// Errors.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
)

// MaxBatchEvents is the most events one ingest call takes.
const MaxBatchEvents = 1000

// Service is metering: meters, prices, ingest, usage.
type Service struct {
	l       *ledger.Ledger
	db      *ledger.DB
	wallets *wallet.Service
	log     *slog.Logger
}

// NewService returns metering on a ledger built with Module() and
// wallet.Module(), in that order.
func NewService(l *ledger.Ledger, wallets *wallet.Service, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{l: l, db: l.DB(), wallets: wallets, log: log}
}

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
		return Meter{}, fmt.Errorf("meter %q: %w", m.Code, ErrExists)
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
		return nil, fmt.Errorf("meter %q: %w", code, ErrNotFound)
	}
	ms, err := queryMeters(ctx, s.db.Pool, `WHERE code = $1`, code)
	if err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("meter %q: %w", code, ErrNotFound)
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
			return Price{}, &ValidationError{Field: v.Field, Detail: v.Detail}
		}
		return Price{}, err
	}
	if !assetPattern(np.Asset) {
		return Price{}, invalid("asset", "1 to 16 upper-case letters, digits or _, starting with a letter (e.g. CREDITS, USD)")
	}
	m, err := s.meterByCode(ctx, np.MeterCode)
	if errors.Is(err, ErrNotFound) {
		return Price{}, invalid("meter_code", "no meter %q", np.MeterCode)
	}
	if err != nil {
		return Price{}, err
	}
	for d := range np.Price.Dimensions {
		if !contains(m.GroupBy, d) {
			return Price{}, invalid("dimensions", "%q is not in the meter's group_by %v", d, m.GroupBy)
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
		return Price{}, fmt.Errorf("meter %q already has a %s price for these dimensions: %w", m.Code, np.Asset, ErrExists)
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

// IngestResult is what an ingest call did with its events.
type IngestResult struct {
	Accepted   int         `json:"accepted"`
	Duplicates int         `json:"duplicates"`
	Rejected   []Rejection `json:"rejected"`
}

// Ingest applies a batch of raw events, the same way for HTTP and NATS.
// Each event is accepted (applied now), a duplicate (applied before: its id
// is in the ledger), or rejected with a reason that is recorded. An error
// means the database could not be reached: nothing about the unfinished
// events is known, and the caller retries them all (duplicates are safe).
func (s *Service) Ingest(ctx context.Context, raws []json.RawMessage, source string) (IngestResult, error) {
	res := IngestResult{Rejected: []Rejection{}}
	received := s.l.Now()
	type item struct {
		op    *usageOp
		raw   json.RawMessage
		p     *ledger.Pending
		index int
	}
	var items []item
	var rejected []rejectionRow
	for i, raw := range raws {
		e, props, err := ParseEvent(raw, received)
		if err != nil {
			var rej *Rejection
			errors.As(err, &rej)
			rej.Index = &i
			res.Rejected = append(res.Rejected, *rej)
			rejected = append(rejected, rejectionRow{rej: *rej, raw: raw, customer: guessCustomer(raw)})
			continue
		}
		op := &usageOp{svc: s, event: e, props: props, source: source, received: received}
		p, err := s.l.Enqueue(ctx, op)
		if err != nil {
			return res, err
		}
		items = append(items, item{op: op, raw: raw, p: p, index: i})
	}
	var failed error
	for _, it := range items {
		out, err := it.p.Wait(ctx)
		var rej *Rejection
		switch {
		case err == nil && out.Replayed:
			res.Duplicates++
		case err == nil:
			res.Accepted++
		case errors.As(err, &rej):
			r := *rej
			r.Index = &it.index
			res.Rejected = append(res.Rejected, r)
			rej = &r
			rejected = append(rejected, rejectionRow{rej: *rej, raw: it.raw, customer: it.op.event.CustomerID})
		case errors.Is(err, ledger.ErrIdempotencyConflict):
			r := Rejection{Index: &it.index, EventID: it.op.event.EventID, Code: CodeConflictingEvent,
				Detail: "an event with this id and other content was applied before"}
			res.Rejected = append(res.Rejected, r)
			rejected = append(rejected, rejectionRow{rej: r, raw: it.raw, customer: it.op.event.CustomerID})
		default:
			failed = err
		}
	}
	if err := s.recordRejections(ctx, source, received, rejected); err != nil {
		return res, err
	}
	if failed != nil {
		return res, fmt.Errorf("ingest: %w", failed)
	}
	sort.SliceStable(res.Rejected, func(i, j int) bool { return *res.Rejected[i].Index < *res.Rejected[j].Index })
	return res, nil
}

// guessCustomer is guessID's twin for the customer, checked as it is.
func guessCustomer(raw []byte) string {
	var probe struct {
		CustomerID string `json:"customer_id"`
	}
	if json.Unmarshal(raw, &probe) == nil && text.Check("customer_id", probe.CustomerID, 128) == nil {
		return probe.CustomerID
	}
	return ""
}

type rejectionRow struct {
	rej      Rejection
	raw      []byte
	customer string
}

func (s *Service) recordRejections(ctx context.Context, source string, at time.Time, rows []rejectionRow) error {
	n := len(rows)
	if n == 0 {
		return nil
	}
	ids := make([]uuid.UUID, n)
	eventIDs, customers, raws := make([]*string, n), make([]*string, n), make([]string, n)
	codes, details := make([]string, n), make([]string, n)
	for i, r := range rows {
		ids[i], codes[i], details[i] = uuid.New(), r.rej.Code, r.rej.Detail
		if r.rej.EventID != "" {
			e := r.rej.EventID
			eventIDs[i] = &e
		}
		if r.customer != "" {
			c := r.customer
			customers[i] = &c
		}
		raw := string(r.raw)
		if len(raw) > MaxEventBytes {
			raw = raw[:MaxEventBytes]
		}
		// As received, but storable: a rejected event is often one whose
		// bytes PostgreSQL would refuse, and failing to record it would
		// fail the events recorded with it.
		raws[i] = strings.ReplaceAll(strings.ToValidUTF8(raw, "\uFFFD"), "\x00", "\uFFFD")
	}
	_, err := s.db.Pool.Exec(ctx, `INSERT INTO event_rejections (id, event_id, customer_id, source, code, detail, raw, received_at)
		SELECT u.id, u.e, u.c, $7, u.code, u.detail, u.raw, $8
		FROM unnest($1::UUID[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[]) AS u(id, e, c, code, detail, raw)`,
		ids, eventIDs, customers, codes, details, raws, source, at)
	if err != nil {
		return fmt.Errorf("record rejected events: %w", err)
	}
	s.log.Info("events rejected", "count", n, "source", source, "first_code", rows[0].rej.Code)
	return nil
}

// RecordedRejection is a rejected event as stored.
type RecordedRejection struct {
	ID         uuid.UUID `json:"id"`
	EventID    string    `json:"event_id,omitempty"`
	CustomerID string    `json:"customer_id,omitempty"`
	Source     string    `json:"source"`
	Code       string    `json:"code"`
	Detail     string    `json:"detail"`
	Raw        string    `json:"raw,omitempty"`
	ReceivedAt time.Time `json:"received_at"`
}

// Rejections lists rejected events, newest first. cursor is from the
// previous page ("" for the first); the returned cursor is "" on the last.
func (s *Service) Rejections(ctx context.Context, customerID, cursor string, limit int) ([]RecordedRejection, string, error) {
	if limit <= 0 || limit > 500 {
		limit = 50
	}
	if text.Check("customer_id", customerID, 128) != nil {
		return []RecordedRejection{}, "", nil // no rejection is recorded under such an id (guessCustomer)
	}
	args := []any{limit + 1}
	where := `WHERE true`
	if customerID != "" {
		args = append(args, customerID)
		where += fmt.Sprintf(` AND customer_id = $%d`, len(args))
	}
	if cursor != "" {
		raw, err := base64.RawURLEncoding.DecodeString(cursor)
		at, id, ok := strings.Cut(string(raw), "|")
		t, terr := time.Parse(time.RFC3339Nano, at)
		u, uerr := uuid.Parse(id)
		if err != nil || !ok || terr != nil || uerr != nil {
			return nil, "", invalid("cursor", "not a cursor from this list")
		}
		args = append(args, t, u)
		where += fmt.Sprintf(` AND (received_at, id) < ($%d, $%d)`, len(args)-1, len(args))
	}
	rows, err := s.db.Pool.Query(ctx, `SELECT id, event_id, customer_id, source, code, detail, raw, received_at
		FROM event_rejections `+where+` ORDER BY received_at DESC, id DESC LIMIT $1`, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list rejections: %w", err)
	}
	defer rows.Close()
	out := []RecordedRejection{}
	for rows.Next() {
		var (
			r             RecordedRejection
			ev, cust, raw *string
		)
		if err := rows.Scan(&r.ID, &ev, &cust, &r.Source, &r.Code, &r.Detail, &raw, &r.ReceivedAt); err != nil {
			return nil, "", err
		}
		for dst, src := range map[*string]*string{&r.EventID: ev, &r.CustomerID: cust, &r.Raw: raw} {
			if src != nil {
				*dst = *src
			}
		}
		r.ReceivedAt = r.ReceivedAt.UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		next = base64.RawURLEncoding.EncodeToString([]byte(last.ReceivedAt.Format(time.RFC3339Nano) + "|" + last.ID.String()))
	}
	return out, next, nil
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
		return Usage{}, invalid("window", "must be hour or day")
	}
	if !to.After(from) {
		return Usage{}, invalid("to", "must be after from")
	}
	if to.Sub(from) > 400*24*time.Hour {
		return Usage{}, invalid("to", "at most 400 days after from")
	}
	if ok, err := wallet.CustomerExists(ctx, s.db, customerID); err != nil {
		return Usage{}, err
	} else if !ok {
		return Usage{}, fmt.Errorf("customer %q: %w", customerID, ErrNotFound)
	}
	m, err := s.meterByCode(ctx, meterCode)
	if errors.Is(err, ErrNotFound) {
		return Usage{}, invalid("meter", "no meter %q", meterCode)
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
