package ledger

import (
	"context"
	"fmt"
	"time"
)

// ExpireHolds releases pending holds whose expiry has passed, at most limit
// of them, through the poster, routed by their owner. Layers above that
// route their owners' ops otherwise (wallets, by customer) sweep their own
// holds with a VoidOp of their own routing; this one serves ledgers used
// directly. Each release is ordered with the owner's other operations and
// idempotent under "hold-expiry:<id>". It returns how many it released. Running it twice, or from two processes, releases each
// hold once: the second attempt replays the first.
func (l *Ledger) ExpireHolds(ctx context.Context, now time.Time, limit int) (int, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := l.db.Pool.Query(ctx, `SELECT id, owner_id FROM ledger_holds
		WHERE status = 'pending' AND expires_at <= $1 ORDER BY expires_at LIMIT $2`, now, limit)
	if err != nil {
		return 0, fmt.Errorf("find expired holds: %w", err)
	}
	type due struct {
		id    HoldID
		owner *OwnerID
	}
	var list []due
	for rows.Next() {
		var d due
		if err := rows.Scan(&d.id, &d.owner); err != nil {
			rows.Close()
			return 0, err
		}
		list = append(list, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	pend := make([]*Pending, 0, len(list))
	for _, d := range list {
		op := &VoidOp{IdempotencyKey: "hold-expiry:" + d.id.String(), Hold: d.id, Expired: true}
		if d.owner != nil {
			op.Owner = *d.owner
		}
		p, err := l.Enqueue(ctx, op)
		if err != nil {
			return 0, err
		}
		pend = append(pend, p)
	}
	n, err := WaitPosted(ctx, pend)
	if err != nil {
		return n, fmt.Errorf("expire hold: %w", err)
	}
	return n, nil
}
