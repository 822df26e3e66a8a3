package billing

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/creditledger/creditledger/metering"
)

// book is a customer's prices over time as its subscriptions set them: for
// each phase, the plan's versions and the subscription's overrides.
type book struct {
	phases []bookPhase
}

type bookPhase struct {
	sub      uuid.UUID
	start    time.Time
	end      *time.Time
	interval Interval
	versions []VersionRef // with their ids, oldest first
	ids      []uuid.UUID
}

func (b *book) Scopes() []string {
	var out []string
	for _, p := range b.phases {
		out = append(out, metering.OverrideScope(p.sub))
		for _, id := range p.ids {
			out = append(out, metering.PlanScope(id))
		}
	}
	return out
}

// At: the phase holding t answers with its subscription's overrides, the
// plan version in force at t (the first one before them all), and the
// period of the phase holding t.
func (b *book) At(t time.Time) ([]string, time.Time, bool) {
	for _, p := range b.phases {
		if t.Before(p.start) || (p.end != nil && !t.Before(*p.end)) {
			continue
		}
		v := 0
		for i, ref := range p.versions {
			if !ref.EffectiveAt.After(t) {
				v = i
			}
		}
		start, _ := p.interval.period(p.start, t)
		return []string{metering.OverrideScope(p.sub), metering.PlanScope(p.ids[v])}, start, true
	}
	return nil, time.Time{}, false
}

// Books implements metering.Books: one query for the batch's customers
// that have or had a subscription, with every phase and its plan's
// versions.
func (s *Service) Books(ctx context.Context, tx pgx.Tx, customers []string) (map[string]metering.Book, error) {
	rows, err := tx.Query(ctx, `SELECT s.customer_id, s.id, ph.seq, ph.start_at, ph.end_at, p.billing_interval, v.id, v.version, v.effective_at
		FROM subscriptions s
		JOIN subscription_phases ph ON ph.subscription_id = s.id
		JOIN plans p ON p.code = ph.plan_code
		JOIN plan_versions v ON v.plan_code = ph.plan_code
		WHERE s.customer_id = ANY($1)
		ORDER BY s.customer_id, ph.start_at, s.id, ph.seq, v.version`, customers)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]metering.Book{}
	var (
		cur      *book
		curKey   [2]any
		customer string
	)
	for rows.Next() {
		var (
			sub, vid uuid.UUID
			seq, ver int
			start    time.Time
			end      *time.Time
			iv       Interval
			eff      time.Time
		)
		if err := rows.Scan(&customer, &sub, &seq, &start, &end, &iv, &vid, &ver, &eff); err != nil {
			return nil, err
		}
		bk, _ := out[customer].(*book)
		if bk == nil {
			bk = &book{}
			out[customer] = bk
		}
		if k := [2]any{sub, seq}; cur != bk || k != curKey {
			if end != nil {
				e := end.UTC()
				end = &e
			}
			bk.phases = append(bk.phases, bookPhase{sub: sub, start: start.UTC(), end: end, interval: iv})
			cur, curKey = bk, k
		}
		p := &bk.phases[len(bk.phases)-1]
		p.versions = append(p.versions, VersionRef{Version: ver, EffectiveAt: eff.UTC()})
		p.ids = append(p.ids, vid)
	}
	return out, rows.Err()
}
