package wallet

import (
	"context"
	"fmt"

	"github.com/creditledger/creditledger/ledger"
	"github.com/jackc/pgx/v5"
)

// Sweep expires grants past their expiry (remainder to breakage) and
// settles what holds left on voided or expired grants. It is idempotent.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	rows, err := s.db.Pool.Query(ctx, `SELECT g.id, g.wallet_id, w.customer_id, w.asset, g.status, bal.debits_posted::TEXT
		FROM grants g
		JOIN wallets w ON w.id = g.wallet_id
		JOIN ledger_balances bal ON bal.account_id = g.account_id AND bal.shard = 0
		WHERE (g.status = 'active' AND g.expires_at <= $1)
			OR (g.status <> 'active' AND bal.credits_posted - bal.debits_posted - bal.debits_pending > 0)
		ORDER BY g.expires_at
		LIMIT 1000`, s.now())
	if err != nil {
		return 0, fmt.Errorf("find grants to sweep: %w", err)
	}
	type due struct {
		grant          GrantID
		wallet         WalletID
		customer       string
		asset, status  string
		debitsSnapshot string
	}
	var list []due
	for rows.Next() {
		var d due
		if err := rows.Scan(&d.grant, &d.wallet, &d.customer, &d.asset, &d.status, &d.debitsSnapshot); err != nil {
			rows.Close()
			return 0, err
		}
		list = append(list, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	var pend []*ledger.Pending
	for _, d := range list {
		sys, err := s.System(ctx, d.asset)
		if err != nil {
			return 0, err
		}
		expire := d.status != string(GrantVoided)
		p, err := s.l.Enqueue(ctx, &closeGrantOp{
			base:    base{key: fmt.Sprintf("grant-sweep:%s:%s", d.grant, d.debitsSnapshot), walletID: d.wallet, customer: d.customer, sys: sys},
			grantID: d.grant, expire: expire, snapshot: d.debitsSnapshot,
		})
		if err != nil {
			return 0, err
		}
		pend = append(pend, p)
	}
	n, err := ledger.WaitPosted(ctx, pend)
	if err != nil {
		return n, fmt.Errorf("sweep grant: %w", err)
	}
	return n, nil
}

// ExpireHolds releases the wallets' holds whose expiry has passed, at most
// limit of them, each routed like every other op of its customer (Route),
// so a release is ordered with the customer's captures and debits. The key
// "hold-expiry:<id>" makes each release happen once however many sweepers
// run.
func (s *Service) ExpireHolds(ctx context.Context, limit int) (int, error) {
	rows, err := s.db.Pool.Query(ctx, `SELECT h.id, h.owner_id, w.customer_id FROM ledger_holds h
		JOIN wallets w ON w.id = h.owner_id
		WHERE h.status = 'pending' AND h.expires_at <= $1 ORDER BY h.expires_at LIMIT $2`, s.now(), limit)
	if err != nil {
		return 0, fmt.Errorf("find expired holds: %w", err)
	}
	type due struct {
		id       HoldID
		wallet   WalletID
		customer string
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (due, error) {
		var d due
		return d, r.Scan(&d.id, &d.wallet, &d.customer)
	})
	if err != nil {
		return 0, fmt.Errorf("find expired holds: %w", err)
	}
	pend := make([]*ledger.Pending, 0, len(list))
	for _, d := range list {
		p, err := s.l.Enqueue(ctx, &voidHoldOp{&ledger.VoidOp{IdempotencyKey: "hold-expiry:" + d.id.String(),
			Hold: d.id, Owner: d.wallet, Expired: true}, d.customer})
		if err != nil {
			return 0, err
		}
		pend = append(pend, p)
	}
	n, err := ledger.WaitPosted(ctx, pend)
	if err != nil {
		return n, fmt.Errorf("expire holds: %w", err)
	}
	return n, nil
}
