package ledger

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// A hot account's counters are split over rows so that poster shards do not
// queue on one row. Shard s of a process writes residue s mod the account's
// shards; rows 0 … shards−1 are made with the account. A row that reaches
// Limits.HotRowRoll is rolled over: the residue moves to the row
// shards rows further on (r, r+S, r+2S, …), and the full row is left as it
// is. The account's balance is the sum of all its rows, and each row equals
// the sum of the postings that name it, so Verify holds throughout.

// hotResidue names one residue of one hot account.
type hotResidue struct {
	id      AccountID
	residue int
}

// hotRowRef names one counter row.
type hotRowRef struct {
	id  AccountID
	row int
}

// hotRow is the row shard writes of the hot account a.
func (l *Ledger) hotRow(a Account, shard int) int {
	r := shard % a.Shards
	l.cacheMu.RLock()
	defer l.cacheMu.RUnlock()
	if row, ok := l.hot[hotResidue{a.ID, r}]; ok {
		return row
	}
	return r
}

type querier interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}

// rememberHot caches accounts' metadata with the rows their residues have
// rolled over to, read with q (the pool or the batch's transaction).
func (l *Ledger) rememberHot(ctx context.Context, q querier, accts []Account) error {
	rolled, err := readRolled(ctx, q, accts)
	if err != nil {
		return err
	}
	l.remember(accts, rolled)
	return nil
}

// readRolled reads the rows the residues of the hot accounts among accts
// rolled over to: the last row of each residue beyond the first.
func readRolled(ctx context.Context, q querier, accts []Account) (map[hotResidue]int, error) {
	var ids []uuid.UUID
	shards := map[AccountID]int{}
	for _, a := range accts {
		if a.Shards > 1 {
			ids = append(ids, uuid.UUID(a.ID))
			shards[a.ID] = a.Shards
		}
	}
	rolled := map[hotResidue]int{}
	if len(ids) > 0 {
		rows, err := q.Query(ctx, `SELECT b.account_id, b.shard FROM ledger_balances b
			JOIN ledger_accounts a ON a.id = b.account_id
			WHERE b.account_id = ANY($1) AND b.shard >= a.shards`, ids)
		if err != nil {
			return nil, fmt.Errorf("read rolled-over counter rows: %w", err)
		}
		for rows.Next() {
			var (
				id  AccountID
				row int
			)
			if err := rows.Scan(&id, &row); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read rolled-over counter rows: %w", err)
			}
			k := hotResidue{id, row % shards[id]}
			rolled[k] = max(rolled[k], row)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read rolled-over counter rows: %w", err)
		}
	}
	return rolled, nil
}

// remember caches accounts' metadata (never their balances) and the rows
// hot residues rolled over to.
func (l *Ledger) remember(accts []Account, rolled map[hotResidue]int) {
	l.cacheMu.Lock()
	defer l.cacheMu.Unlock()
	for _, a := range accts {
		a.Balance = Balance{}
		l.byID[a.ID] = a
		l.byCode[[2]string{a.Code, a.Asset}] = a
	}
	for k, row := range rolled {
		if row > l.hot[k] {
			l.hot[k] = row
		}
	}
}

// rollHot moves the residues of full rows to their next row, creating it.
// A row another process rolled already exists (ON CONFLICT); if that one is
// full too, the next batch to write it finds out and rolls again. On error
// the residue stays on its row, which has room for thousands of batches
// more, and the next batch to write it tries again.
func (l *Ledger) rollHot(ctx context.Context, full []hotRowRef) {
	for _, f := range full {
		meta, ok := l.cachedByID(f.id)
		if !ok || meta.Shards < 2 {
			continue
		}
		next := f.row + meta.Shards
		_, err := l.db.Pool.Exec(ctx, `INSERT INTO ledger_balances (account_id, shard, normal, no_overdraft)
			VALUES ($1, $2, $3, false) ON CONFLICT (account_id, shard) DO NOTHING`, f.id, next, normalString(meta.Normal))
		if err != nil {
			l.log.Error("hot counter row is full and its successor could not be made; will try again", "account", meta.Code,
				"asset", meta.Asset, "row", f.row, "err", err)
			continue
		}
		l.cacheMu.Lock()
		k := hotResidue{f.id, f.row % meta.Shards}
		if cur, ok := l.hot[k]; !ok && f.row == k.residue || ok && cur == f.row {
			l.hot[k] = next
		}
		l.cacheMu.Unlock()
		l.log.Info("hot counter row rolled over", "account", meta.Code, "asset", meta.Asset, "full_row", f.row, "next_row", next)
	}
}

// maxHotRows is what ledger_accounts.shards allows (CHECK 1 to 256).
const maxHotRows = 256
