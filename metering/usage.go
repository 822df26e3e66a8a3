package metering

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/wallet"
	"github.com/shopspring/decimal"
)

// Window is the width of a usage series' buckets.
type Window string

const (
	Hour  Window = "hour"
	Day   Window = "day"
	Month Window = "month" // a calendar month, UTC
)

// End is the end of the bucket of w starting at start.
func (w Window) End(start time.Time) time.Time {
	switch w {
	case Hour:
		return start.Add(time.Hour)
	case Day:
		return start.AddDate(0, 0, 1)
	}
	return start.AddDate(0, 1, 0)
}

// UsagePoint is one bucket of a usage series.
type UsagePoint struct {
	Start    time.Time       `json:"start"`
	End      time.Time       `json:"end"`
	Quantity decimal.Decimal `json:"quantity"`
	Amount   ledger.Amount   `json:"amount"`
	// Amounts is Amount per asset: a meter priced in two assets charges
	// both, and their sum in Amount mixes units.
	Amounts map[string]ledger.Amount `json:"amounts"`
}

// UsageGroup is the usage of one value of the group_by property.
type UsageGroup struct {
	Value   string                   `json:"value"` // "" for events without the property
	Series  []UsagePoint             `json:"series"`
	Total   decimal.Decimal          `json:"total"`
	Amount  ledger.Amount            `json:"amount"`
	Amounts map[string]ledger.Amount `json:"amounts"`
}

// Usage is a customer's usage of one meter over a time range.
type Usage struct {
	Meter   string                   `json:"meter"`
	From    time.Time                `json:"from"`
	To      time.Time                `json:"to"`
	Window  Window                   `json:"window"`
	Series  []UsagePoint             `json:"series"`
	Total   decimal.Decimal          `json:"total"`
	Amount  ledger.Amount            `json:"amount"`
	Amounts map[string]ledger.Amount `json:"amounts"`
	// GroupBy and Groups are set when the query named a group_by property:
	// Series and Total stay the meter's whole usage.
	GroupBy string       `json:"group_by,omitempty"`
	Groups  []UsageGroup `json:"groups,omitempty"`
}

// UsageQuery says which usage a report covers.
type UsageQuery struct {
	Customer string
	// Meters are the meters' codes; none: every meter, archived ones too
	// (what they counted stays part of the period's usage).
	Meters []string
	// From and To bound the range [From, To); a zero one defaults to the
	// customer's current billing period's (see Period).
	From, To time.Time
	Window   Window // default Hour
	// GroupBy, if set, splits each meter's usage by that group-by
	// dimension. A meter named in Meters that does not group by it is
	// refused; with no Meters, only the meters grouping by it report.
	GroupBy string
}

// MaxUsageRange is the longest range a usage report covers.
const MaxUsageRange = 400 * 24 * time.Hour

// Usage returns the meter's quantity and what it cost per window in
// [from, to). It is UsageReport for one meter, kept for its callers.
func (s *Service) Usage(ctx context.Context, customerID, meterCode string, from, to time.Time, window Window) (Usage, error) {
	us, err := s.UsageReport(ctx, UsageQuery{Customer: customerID, Meters: []string{meterCode}, From: from, To: to, Window: window})
	if err != nil {
		return Usage{}, err
	}
	return us[0], nil
}

// UsageReport returns each meter's usage per window, in the order of
// q.Meters (or of the meters' codes). A bucket's quantity aggregates the
// events in it the meter's way: a count or sum adds, max takes the largest,
// unique_count counts distinct values, latest takes the last value; amount
// adds what the events were charged.
func (s *Service) UsageReport(ctx context.Context, q UsageQuery) ([]Usage, error) {
	if q.Window == "" {
		q.Window = Hour
	}
	if q.Window != Hour && q.Window != Day && q.Window != Month {
		return nil, fault.Invalidf("window", "must be hour, day or month")
	}
	if ok, err := wallet.CustomerExists(ctx, s.db, q.Customer); err != nil {
		return nil, err
	} else if !ok {
		return nil, fault.NotFoundf("no customer %q", q.Customer)
	}
	if q.From.IsZero() || q.To.IsZero() {
		start, end, err := s.Period(ctx, q.Customer, s.l.Now())
		if err != nil {
			return nil, err
		}
		if q.From.IsZero() {
			q.From = start
		}
		if q.To.IsZero() {
			q.To = end
		}
	}
	if !q.To.After(q.From) {
		return nil, fault.Invalidf("to", "must be after from")
	}
	if q.To.Sub(q.From) > MaxUsageRange {
		return nil, fault.Invalidf("to", "at most 400 days after from")
	}
	meters, err := s.reportMeters(ctx, q)
	if err != nil {
		return nil, err
	}
	out := make([]Usage, 0, len(meters))
	for _, m := range meters {
		u, err := s.meterUsage(ctx, q, m)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// reportMeters are the meters q reports on.
func (s *Service) reportMeters(ctx context.Context, q UsageQuery) ([]*Meter, error) {
	if len(q.Meters) == 0 {
		all, err := queryMeters(ctx, s.db.Pool, "")
		if err != nil {
			return nil, err
		}
		sort.Slice(all, func(i, j int) bool { return all[i].Code < all[j].Code })
		if q.GroupBy == "" {
			return all, nil
		}
		var ms []*Meter
		for _, m := range all {
			if slices.Contains(m.GroupBy, q.GroupBy) {
				ms = append(ms, m)
			}
		}
		if len(ms) == 0 {
			return nil, fault.Invalidf("group_by", "no meter groups by %q", q.GroupBy)
		}
		return ms, nil
	}
	var ms []*Meter
	for _, code := range q.Meters {
		if slices.ContainsFunc(ms, func(m *Meter) bool { return m.Code == code }) {
			continue // named twice: reported once
		}
		m, err := s.meterByCode(ctx, code)
		if errors.Is(err, fault.NotFound) {
			return nil, fault.Invalidf("meter", "no meter %q", code)
		}
		if err != nil {
			return nil, err
		}
		if q.GroupBy != "" && !slices.Contains(m.GroupBy, q.GroupBy) {
			return nil, fault.Invalidf("group_by", "meter %q does not group by %q (it groups by %s)",
				m.Code, q.GroupBy, groupByList(m.GroupBy))
		}
		ms = append(ms, m)
	}
	return ms, nil
}

func groupByList(gs []string) string {
	if len(gs) == 0 {
		return "nothing"
	}
	return strings.Join(gs, ", ")
}

// usageKey is a bucket (zero for totals) and a group value.
type usageKey struct {
	bucket time.Time
	group  string
}

// meterUsage reads one meter's usage: quantities per bucket and overall
// (and per group), each the meter's aggregate over its records, and the
// amounts per asset, which add.
func (s *Service) meterUsage(ctx context.Context, q UsageQuery, m *Meter) (Usage, error) {
	u := Usage{Meter: m.Code, From: q.From.UTC(), To: q.To.UTC(), Window: q.Window, Series: []UsagePoint{},
		Amounts: map[string]ledger.Amount{}, GroupBy: q.GroupBy}
	// A meter priced in two assets has a record per asset for one event:
	// quantities are read off one of them (first), amounts off all.
	quantity := map[Aggregation]string{
		Count:       `SUM(CASE WHEN first THEN value END)`,
		Sum:         `SUM(CASE WHEN first THEN value END)`,
		Max:         `MAX(CASE WHEN first THEN value END)`,
		UniqueCount: `COUNT(DISTINCT CASE WHEN first THEN unique_value END)`,
		Latest:      `(array_agg(CASE WHEN first THEN value END ORDER BY first DESC, ts DESC))[1]`,
	}[m.Aggregation]
	// The range and the meter pick rows of usage_records_customer_idx
	// (customer_id, meter_id, ts).
	records := `SELECT ts, value, unique_value, amount, asset,
			asset = MIN(asset) OVER (PARTITION BY event_id) AS first,
			date_trunc($5, ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS bucket,
			COALESCE(dims->>$6, '') AS grp
		FROM usage_lines
		WHERE customer_id = $1 AND meter_id = $2 AND ts >= $3 AND ts < $4`
	args := []any{q.Customer, m.ID, q.From, q.To, string(q.Window), q.GroupBy}

	// quantities runs the quantity aggregate grouped by bucket and/or group.
	quantities := func(byBucket, byGroup bool) (map[usageKey]decimal.Decimal, error) {
		bucket, grp, by := `NULL::TIMESTAMPTZ`, `''`, []string{}
		if byBucket {
			bucket = `bucket`
			by = append(by, `bucket`)
		}
		if byGroup {
			grp = `grp`
			by = append(by, `grp`)
		}
		sql := `SELECT ` + bucket + `, ` + grp + `, ` + quantity + ` FROM (` + records + `) r`
		if len(by) > 0 {
			sql += ` GROUP BY ` + strings.Join(by, ", ")
		}
		rows, err := s.db.Pool.Query(ctx, sql, args...)
		if err != nil {
			return nil, fmt.Errorf("usage of %s: %w", m.Code, err)
		}
		defer rows.Close()
		out := map[usageKey]decimal.Decimal{}
		for rows.Next() {
			var (
				b *time.Time
				k usageKey
				v *decimal.Decimal
			)
			if err := rows.Scan(&b, &k.group, &v); err != nil {
				return nil, fmt.Errorf("scan usage: %w", err)
			}
			if b != nil {
				k.bucket = b.UTC()
			}
			if v != nil {
				out[k] = *v
			} else {
				out[k] = decimal.Decimal{}
			}
		}
		return out, rows.Err()
	}

	// Amounts, at the finest grain: bucket, group and asset.
	type amountRow struct {
		key   usageKey
		asset string
		sum   ledger.Amount
	}
	var amounts []amountRow
	rows, err := s.db.Pool.Query(ctx, `SELECT bucket, grp, asset, SUM(amount) FROM (`+records+`) r
		GROUP BY bucket, grp, asset ORDER BY bucket, grp, asset`, args...)
	if err != nil {
		return Usage{}, fmt.Errorf("usage amounts of %s: %w", m.Code, err)
	}
	for rows.Next() {
		var r amountRow
		if err := rows.Scan(&r.key.bucket, &r.key.group, &r.asset, &r.sum); err != nil {
			rows.Close()
			return Usage{}, fmt.Errorf("scan usage amounts: %w", err)
		}
		r.key.bucket = r.key.bucket.UTC()
		amounts = append(amounts, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return Usage{}, err
	}

	perBucket, err := quantities(true, false)
	if err != nil {
		return Usage{}, err
	}
	total, err := quantities(false, false)
	if err != nil {
		return Usage{}, err
	}
	u.Total = total[usageKey{}]
	buckets := map[time.Time]*UsagePoint{}
	// Points are indexed once their slice stops growing (sortSeries).
	point := func(series *[]UsagePoint, b time.Time, qty decimal.Decimal) {
		*series = append(*series, UsagePoint{Start: b, End: q.Window.End(b), Quantity: qty, Amounts: map[string]ledger.Amount{}})
	}
	for k, v := range perBucket {
		point(&u.Series, k.bucket, v)
	}
	sortSeries(u.Series, buckets)
	for _, a := range amounts {
		p := buckets[a.key.bucket]
		p.Amount = p.Amount.Add(a.sum)
		u.Amount = u.Amount.Add(a.sum)
		if a.asset != "" { // a record of an unpriced meter
			p.Amounts[a.asset] = p.Amounts[a.asset].Add(a.sum)
			u.Amounts[a.asset] = u.Amounts[a.asset].Add(a.sum)
		}
	}
	if q.GroupBy == "" {
		return u, nil
	}

	perGroupBucket, err := quantities(true, true)
	if err != nil {
		return Usage{}, err
	}
	perGroup, err := quantities(false, true)
	if err != nil {
		return Usage{}, err
	}
	groups := map[string]*UsageGroup{}
	index := map[string]map[time.Time]*UsagePoint{}
	u.Groups = []UsageGroup{}
	for k, v := range perGroup {
		u.Groups = append(u.Groups, UsageGroup{Value: k.group, Series: []UsagePoint{}, Total: v, Amounts: map[string]ledger.Amount{}})
	}
	sort.Slice(u.Groups, func(i, j int) bool { return u.Groups[i].Value < u.Groups[j].Value })
	for i := range u.Groups {
		g := &u.Groups[i]
		groups[g.Value], index[g.Value] = g, map[time.Time]*UsagePoint{}
	}
	for k, v := range perGroupBucket {
		g := groups[k.group]
		point(&g.Series, k.bucket, v)
	}
	for _, g := range groups {
		sortSeries(g.Series, index[g.Value])
	}
	for _, a := range amounts {
		g := groups[a.key.group]
		p := index[a.key.group][a.key.bucket]
		p.Amount = p.Amount.Add(a.sum)
		g.Amount = g.Amount.Add(a.sum)
		if a.asset != "" {
			p.Amounts[a.asset] = p.Amounts[a.asset].Add(a.sum)
			g.Amounts[a.asset] = g.Amounts[a.asset].Add(a.sum)
		}
	}
	return u, nil
}

// sortSeries orders a series by bucket and points index at its points.
func sortSeries(series []UsagePoint, index map[time.Time]*UsagePoint) {
	sort.Slice(series, func(i, j int) bool { return series[i].Start.Before(series[j].Start) })
	for i := range series {
		index[series[i].Start] = &series[i]
	}
}

// Period is the customer's current billing period at now: its active
// subscription's current period; else the current monthly cycle of its
// oldest wallet (wallet.Cycle, the cycle its usage is aggregated and
// invoiced in); else the calendar month (UTC). It is the default range of
// a usage report, so "usage so far" means what the next invoice will bill.
//
// The subscription is read off billing's table directly: metering must not
// import billing, and a read of two columns does not need an interface.
func (s *Service) Period(ctx context.Context, customer string, now time.Time) (start, end time.Time, err error) {
	err = s.db.Pool.QueryRow(ctx, `SELECT current_period_start, current_period_end FROM subscriptions
		WHERE customer_id = $1 AND status = 'active'`, customer).Scan(&start, &end)
	if err == nil {
		return start.UTC(), end.UTC(), nil
	}
	if !isNoRows(err) {
		return time.Time{}, time.Time{}, fmt.Errorf("subscription period: %w", err)
	}
	var created time.Time
	err = s.db.Pool.QueryRow(ctx, `SELECT created_at FROM wallets WHERE customer_id = $1
		ORDER BY created_at, id LIMIT 1`, customer).Scan(&created)
	if err == nil {
		start, end = wallet.Cycle(created, now)
		return start, end, nil
	}
	if !isNoRows(err) {
		return time.Time{}, time.Time{}, fmt.Errorf("wallet cycle: %w", err)
	}
	now = now.UTC()
	start = time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	return start, start.AddDate(0, 1, 0), nil
}

func isNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }
