package metering

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/wallet"
	"github.com/shopspring/decimal"
)

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
