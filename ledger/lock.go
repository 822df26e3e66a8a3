package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// The batch's reads before any op applies: which keys were applied before,
// and the holds and accounts its ops declared, locked FOR UPDATE in one
// order. Every statement touches many rows at once (ANY($1), unnest of
// arrays), so a batch costs a fixed number of round trips whatever its
// size; unnest with several arrays is valid on PostgreSQL and CockroachDB
// alike.

func (l *Ledger) cachedByID(id AccountID) (Account, bool) {
	l.cacheMu.RLock()
	defer l.cacheMu.RUnlock()
	a, ok := l.byID[id]
	return a, ok
}

func (l *Ledger) cachedByCode(code, asset string) (Account, bool) {
	l.cacheMu.RLock()
	defer l.cacheMu.RUnlock()
	a, ok := l.byCode[[2]string{code, asset}]
	return a, ok
}

func (l *Ledger) lookupKeys(ctx context.Context, ops []Op) (map[string]storedEntry, error) {
	keys := make([]string, 0, len(ops))
	for _, op := range ops {
		keys = append(keys, op.Key())
	}
	rows, err := l.db.Pool.Query(ctx, `SELECT idempotency_key, id, fingerprint, status, reject_code, reject_detail, result, created_at
		FROM ledger_entries WHERE idempotency_key = ANY($1)`, keys)
	if err != nil {
		return nil, fmt.Errorf("look up idempotency keys: %w", err)
	}
	defer rows.Close()
	out := map[string]storedEntry{}
	for rows.Next() {
		var (
			key          string
			s            storedEntry
			code, detail *string
			status       string
		)
		if err := rows.Scan(&key, &s.id, &s.fingerprint, &status, &code, &detail, &s.result, &s.createdAt); err != nil {
			return nil, fmt.Errorf("scan idempotency key: %w", err)
		}
		s.status = Status(status)
		if code != nil {
			s.rejection = &Rejection{Code: *code}
			if detail != nil {
				s.rejection.Detail = *detail
			}
		}
		s.createdAt = s.createdAt.UTC()
		out[key] = s
	}
	return out, rows.Err()
}

func (l *Ledger) lockHolds(ctx context.Context, b *batch) error {
	if len(b.holdIDs) == 0 {
		return nil
	}
	ids := make([]uuid.UUID, 0, len(b.holdIDs))
	for id := range b.holdIDs {
		ids = append(ids, uuid.UUID(id))
	}
	rows, err := b.tx.Query(ctx, `SELECT id, owner_id, entry_id, asset, amount, captured, status, legs, expires_at, created_at, closed_at, closed_by
		, metadata FROM ledger_holds WHERE id = ANY($1) ORDER BY id FOR UPDATE`, ids)
	if err != nil {
		return fmt.Errorf("lock holds: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		h, err := scanHold(rows)
		if err != nil {
			return err
		}
		b.holds[h.ID] = &holdState{Hold: h}
		if !h.Owner.IsZero() {
			b.owners[h.Owner] = struct{}{}
		}
		for _, leg := range h.Legs {
			b.declared[leg.Debit] = struct{}{}
			b.declared[leg.Credit] = struct{}{}
		}
	}
	return rows.Err()
}

const holdSelect = `SELECT id, owner_id, entry_id, asset, amount, captured, status, legs, expires_at, created_at, closed_at, closed_by, metadata FROM ledger_holds`

func scanHold(r rowScanner) (Hold, error) {
	var (
		h      Hold
		owner  *OwnerID
		status string
		legs   []byte
	)
	if err := r.Scan(&h.ID, &owner, &h.EntryID, &h.Asset, &h.Amount, &h.Captured, &status, &legs, &h.ExpiresAt, &h.CreatedAt, &h.ClosedAt, &h.ClosedBy, &h.Metadata); err != nil {
		return Hold{}, fmt.Errorf("scan hold: %w", err)
	}
	if owner != nil {
		h.Owner = *owner
	}
	h.Status = HoldStatus(status)
	if err := json.Unmarshal(legs, &h.Legs); err != nil {
		return Hold{}, fmt.Errorf("hold %s legs: %w", h.ID, err)
	}
	h.CreatedAt = h.CreatedAt.UTC()
	return h, nil
}

func (l *Ledger) lockAccounts(ctx context.Context, b *batch) error {
	owners := make([]uuid.UUID, 0, len(b.owners))
	for o := range b.owners {
		owners = append(owners, uuid.UUID(o))
	}
	var ids, unknown []uuid.UUID
	for id := range b.declared {
		if a, ok := l.cachedByID(id); ok && a.Shards > 1 {
			continue // hot: never locked up front, see flush
		}
		ids = append(ids, uuid.UUID(id))
	}
	if len(owners) == 0 && len(ids) == 0 {
		return nil
	}
	rows, err := b.tx.Query(ctx, `SELECT a.id, a.code, a.asset, a.owner_id, a.normal, a.no_overdraft, a.shards, a.metadata, a.created_at,
			bal.debits_posted, bal.credits_posted, bal.debits_pending, bal.credits_pending
		FROM ledger_accounts a JOIN ledger_balances bal ON bal.account_id = a.id AND bal.shard = 0
		WHERE (a.owner_id = ANY($1) OR a.id = ANY($2)) AND a.shards = 1
		ORDER BY a.id
		FOR UPDATE OF bal`, owners, ids)
	if err != nil {
		return fmt.Errorf("lock accounts: %w", err)
	}
	found := map[AccountID]bool{}
	for rows.Next() {
		acc, err := scanAccountWithBalance(rows)
		if err != nil {
			rows.Close()
			return fmt.Errorf("scan account: %w", err)
		}
		a := &acct{Account: acc, loaded: acc.Balance}
		b.accounts[a.ID] = a
		found[a.ID] = true
		if !a.Owner.IsZero() {
			b.byOwner[a.Owner] = append(b.byOwner[a.Owner], a)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("lock accounts: %w", err)
	}
	for _, list := range b.byOwner {
		sort.SliceStable(list, func(i, j int) bool { return list[i].CreatedAt.Before(list[j].CreatedAt) })
	}
	for _, id := range ids {
		if !found[AccountID(id)] {
			unknown = append(unknown, id)
		}
	}
	// Declared accounts not found unsharded are either hot ones this process
	// has not seen yet (cache them) or missing (ops will fail on them).
	if len(unknown) > 0 {
		rows, err := b.tx.Query(ctx, accountMetaSelect+` WHERE id = ANY($1)`, unknown)
		if err != nil {
			return fmt.Errorf("load hot accounts: %w", err)
		}
		metas, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Account, error) { return scanAccountMeta(r) })
		if err != nil {
			return fmt.Errorf("load hot accounts: %w", err)
		}
		if err := l.rememberHot(ctx, b.tx, metas); err != nil {
			return err
		}
	}
	return nil
}
