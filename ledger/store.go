package ledger

import (
	"bytes"
	"context"
	"fmt"
	"sort"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// The batch's SQL. Before any op applies: which keys were applied before,
// and the accounts its ops declared, locked FOR UPDATE in one order (holds:
// hold.go). After every op applied: a handful of multi-row statements, one
// per table, all sent in one round trip (a pipeline). Every statement
// touches many rows at once (ANY($1), unnest of arrays), so a batch costs
// a fixed number of round trips whatever its size; unnest with several arrays and UPDATE … FROM are valid on
// PostgreSQL and CockroachDB alike.

func (l *Ledger) flush(ctx context.Context, b *batch) error {
	// The statements go in one pipeline (pgx.Batch): one round trip for
	// the batch's writes instead of one per table. Each keeps its own
	// error, and the first that fails is the flush's (the server skips the
	// rest of the pipeline once one fails: the transaction is aborted).
	// Holds are written by hold.go on their own; the outbox follows them,
	// in the order the statements always ran.
	q := &pgx.Batch{}
	l.queueAccounts(q, b)
	l.queueBalances(q, b)
	l.queueEntries(q, b)
	l.queuePostings(q, b)
	if len(b.holds) > 0 {
		if err := sendQueued(ctx, b.tx, q); err != nil {
			return err
		}
		if err := l.writeHolds(ctx, b); err != nil {
			return err
		}
		q = &pgx.Batch{}
	}
	l.queueOutbox(q, b)
	return sendQueued(ctx, b.tx, q)
}

// sendQueued runs q's statements in one round trip.
func sendQueued(ctx context.Context, tx pgx.Tx, q *pgx.Batch) error {
	if q.Len() == 0 {
		return nil
	}
	return tx.SendBatch(ctx, q).Close()
}

// queueExec queues a statement whose failure is reported as what: err.
func queueExec(q *pgx.Batch, what, sql string, args ...any) *pgx.QueuedQuery {
	qq := q.Queue(sql, args...)
	qq.Fn = func(br pgx.BatchResults) error {
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	return qq
}

// The array parameters below are the types internal/pg writes without
// reflection ([]uuid.UUID, []*uuid.UUID, []string, []*string, [][]byte) and
// amounts as a NUMERIC[] literal (numericArray); nullable values point
// into the batch's own rows instead of copying each one.

// ownerRef is the owner's id, or nil (NULL) for none, without a copy.
func ownerRef(o *OwnerID) *uuid.UUID {
	if o.IsZero() {
		return nil
	}
	return (*uuid.UUID)(o)
}

// textOrNull is stored text (JSON), or nil (NULL) when empty.
func textOrNull(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// nullableOwner and nullableText are ownerRef and textOrNull as copies,
// for callers passing []*uuid.UUID and []*string.
func nullableOwner(o OwnerID) *uuid.UUID {
	if o.IsZero() {
		return nil
	}
	u := uuid.UUID(o)
	return &u
}

func nullableText(b []byte) *string {
	if len(b) == 0 {
		return nil
	}
	s := string(b)
	return &s
}

func (l *Ledger) queueAccounts(q *pgx.Batch, b *batch) {
	if len(b.newAccts) == 0 {
		return
	}
	n := len(b.newAccts)
	var (
		ids    = make([]uuid.UUID, n)
		codes  = make([]string, n)
		assets = make([]string, n)
		owners = make([]*uuid.UUID, n)
		norms  = make([]string, n)
		nood   = make([]bool, n)
		metas  = make([][]byte, n)
		dp     = make([]Amount, n)
		cp     = make([]Amount, n)
		dpe    = make([]Amount, n)
		cpe    = make([]Amount, n)
	)
	for i, a := range b.newAccts {
		ids[i], codes[i], assets[i], owners[i] = uuid.UUID(a.ID), a.Code, a.Asset, ownerRef(&a.Owner)
		norms[i], nood[i], metas[i] = normalString(a.Normal), a.NoOverdraft, textOrNull(a.Metadata)
		dp[i], cp[i], dpe[i], cpe[i] = a.DebitsPosted, a.CreditsPosted, a.DebitsPending, a.CreditsPending
	}
	queueExec(q, "insert accounts", `INSERT INTO ledger_accounts (id, code, asset, owner_id, normal, no_overdraft, shards, metadata, created_at)
		SELECT u.id, u.code, u.asset, u.owner_id, u.normal, u.no_overdraft, 1, u.metadata::JSONB, $8
		FROM unnest($1::UUID[], $2::TEXT[], $3::TEXT[], $4::UUID[], $5::TEXT[], $6::BOOL[], $7::TEXT[])
			AS u(id, code, asset, owner_id, normal, no_overdraft, metadata)`,
		ids, codes, assets, owners, norms, nood, metas, b.now)
	queueExec(q, "insert balances", `INSERT INTO ledger_balances (account_id, shard, normal, no_overdraft, debits_posted, credits_posted, debits_pending, credits_pending)
		SELECT u.id, 0, u.normal, u.no_overdraft, u.dp, u.cp, u.dpe, u.cpe
		FROM unnest($1::UUID[], $2::TEXT[], $3::BOOL[], $4::NUMERIC[], $5::NUMERIC[], $6::NUMERIC[], $7::NUMERIC[])
			AS u(id, normal, no_overdraft, dp, cp, dpe, cpe)`,
		ids, norms, nood, numericArray(dp), numericArray(cp), numericArray(dpe), numericArray(cpe))
}

type balanceRow struct {
	id    AccountID
	shard int
	delta Balance
	hot   bool // not locked up front (see lockAccounts)
}

func (l *Ledger) queueBalances(q *pgx.Batch, b *batch) {
	var rows []balanceRow
	for _, a := range b.accounts {
		if !a.touched || a.created {
			continue
		}
		d := a.Balance.sub(a.loaded)
		if d == (Balance{}) || (d.DebitsPosted.IsZero() && d.CreditsPosted.IsZero() && d.DebitsPending.IsZero() && d.CreditsPending.IsZero()) {
			continue
		}
		rows = append(rows, balanceRow{id: a.ID, shard: a.row, delta: d, hot: a.hot})
	}
	for _, a := range b.accounts {
		for row, d := range a.other {
			if !(d.DebitsPosted.IsZero() && d.CreditsPosted.IsZero() && d.DebitsPending.IsZero() && d.CreditsPending.IsZero()) {
				rows = append(rows, balanceRow{id: a.ID, shard: row, delta: d, hot: true})
			}
		}
	}
	if len(rows) == 0 {
		return
	}
	// Same order in every batch, so two batches that share a hot shard row
	// (two processes) queue instead of deadlocking.
	sort.Slice(rows, func(i, j int) bool {
		c := bytes.Compare(rows[i].id[:], rows[j].id[:])
		return c < 0 || c == 0 && rows[i].shard < rows[j].shard
	})
	n := len(rows)
	ids, shards := make([]uuid.UUID, n), make([]int32, n)
	dp, cp, dpe, cpe := make([]Amount, n), make([]Amount, n), make([]Amount, n), make([]Amount, n)
	var hotIDs []uuid.UUID
	var hotShards []int32
	for i, r := range rows {
		ids[i], shards[i] = uuid.UUID(r.id), int32(r.shard)
		dp[i], cp[i], dpe[i], cpe[i] = r.delta.DebitsPosted, r.delta.CreditsPosted, r.delta.DebitsPending, r.delta.CreditsPending
		if r.hot {
			hotIDs, hotShards = append(hotIDs, ids[i]), append(hotShards, shards[i])
		}
	}
	// The other rows were locked (in id order) before the ops ran. Hot rows
	// are locked here, in one order, when there are several: two batches of
	// two processes sharing two hot rows would otherwise deadlock and wait
	// deadlock_timeout. A single hot row (a debit's or a usage batch's
	// revenue) cannot close a cycle: a batch waiting for it has taken only
	// its pre-flush locks, which the holder already passed (lockAccounts
	// serialized them), and every lock the holder takes after it (keys,
	// wallet rows, new aggregates) another batch takes only after its own
	// hot rows. So the UPDATE below locks it, one round trip fewer: +12%
	// debits/s in BenchmarkDebit.
	if len(hotIDs) > 1 {
		queueExec(q, "lock balance rows", lockHotRowsSQL, hotIDs, hotShards)
	}
	hot := make([]bool, n)
	for i, r := range rows {
		hot[i] = r.hot
	}
	// The UPDATE reports, in the same round trip, how many rows it found
	// and which hot rows it took to the roll-over mark (see amount.go).
	q.Queue(updateBalancesSQL, ids, shards, numericArray(dp), numericArray(cp), numericArray(dpe), numericArray(cpe), hot, b.ledger.limits.HotRowRoll).Fn = func(br pgx.BatchResults) error {
		var (
			found    int
			fullIDs  []uuid.UUID
			fullRows []int32
		)
		if err := br.QueryRow().Scan(&found, &fullIDs, &fullRows); err != nil {
			return fmt.Errorf("update balances: %w", err)
		}
		if found != n {
			return fmt.Errorf("update balances: %d of %d rows found", found, n)
		}
		for i, id := range fullIDs {
			b.fullHot = append(b.fullHot, hotRowRef{id: AccountID(id), row: int(fullRows[i])})
		}
		return nil
	}
}

func (l *Ledger) queueEntries(q *pgx.Batch, b *batch) {
	n := len(b.entries)
	if n == 0 {
		return
	}
	var (
		ids     = make([]uuid.UUID, n)
		keys    = make([]string, n)
		fps     = make([][]byte, n)
		kinds   = make([]string, n)
		status  = make([]string, n)
		codes   = make([]*string, n)
		details = make([]*string, n)
		owners  = make([]*uuid.UUID, n)
		descs   = make([]*string, n)
		metas   = make([][]byte, n)
		results = make([][]byte, n)
	)
	for i := range b.entries {
		e := &b.entries[i]
		ids[i], keys[i], fps[i], kinds[i], status[i] = uuid.UUID(e.id), e.key, e.fingerprint, e.kind, string(e.status)
		if e.rejection != nil {
			codes[i], details[i] = &e.rejection.Code, &e.rejection.Detail
		}
		owners[i] = ownerRef(&e.owner)
		if e.description != "" {
			descs[i] = &e.description
		}
		metas[i], results[i] = textOrNull(e.metadata), textOrNull(e.result)
	}
	if fps == nil {
		fps = [][]byte{}
	}
	queueExec(q, "insert entries", `INSERT INTO ledger_entries (id, idempotency_key, fingerprint, kind, status, reject_code, reject_detail, owner_id, description, metadata, result, created_at)
		SELECT u.id, u.k, u.fp, u.kind, u.status, u.code, u.detail, u.owner_id, u.descr, u.meta::JSONB, u.res, $12
		FROM unnest($1::UUID[], $2::TEXT[], $3::BYTEA[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::TEXT[], $8::UUID[], $9::TEXT[], $10::TEXT[], $11::TEXT[])
			AS u(id, k, fp, kind, status, code, detail, owner_id, descr, meta, res)`,
		ids, keys, fps, kinds, status, codes, details, owners, descs, metas, results, b.now)
}

func (l *Ledger) queuePostings(q *pgx.Batch, b *batch) {
	n := len(b.postings)
	if n == 0 {
		return
	}
	var (
		entries = make([]uuid.UUID, n)
		seqs    = make([]int32, n)
		accts   = make([]uuid.UUID, n)
		shards  = make([]int32, n)
		assets  = make([]string, n)
		dirs    = make([]string, n)
		pending = make([]bool, n)
		amounts = make([]Amount, n)
		holds   = make([]*uuid.UUID, n)
	)
	for i, p := range b.postings {
		entries[i], seqs[i], accts[i], shards[i] = uuid.UUID(p.entry), int32(p.seq), uuid.UUID(p.account), int32(p.shard)
		assets[i], dirs[i], pending[i], amounts[i] = p.asset, p.side.String(), p.pending, p.amount
		holds[i] = (*uuid.UUID)(p.hold)
	}
	queueExec(q, "insert postings", `INSERT INTO ledger_postings (entry_id, seq, account_id, shard, asset, direction, pending, amount, hold_id, created_at)
		SELECT u.e, u.s, u.a, u.sh, u.asset, u.dir, u.p, u.amt, u.h, $10
		FROM unnest($1::UUID[], $2::INT[], $3::UUID[], $4::INT[], $5::TEXT[], $6::TEXT[], $7::BOOL[], $8::NUMERIC[], $9::UUID[])
			AS u(e, s, a, sh, asset, dir, p, amt, h)`,
		entries, seqs, accts, shards, assets, dirs, pending, numericArray(amounts), holds, b.now)
}

func (l *Ledger) queueOutbox(q *pgx.Batch, b *batch) {
	n := len(b.outbox)
	if n == 0 {
		return
	}
	ids, entries := make([]uuid.UUID, n), make([]uuid.UUID, n)
	topics, payloads := make([]string, n), make([][]byte, n)
	owners := make([]*uuid.UUID, n)
	for i := range b.outbox {
		o := &b.outbox[i]
		ids[i], entries[i], topics[i], payloads[i], owners[i] = o.id, uuid.UUID(o.entry), o.topic, o.payload, ownerRef(&o.owner)
		if payloads[i] == nil {
			payloads[i] = []byte{} // '' as before, never NULL
		}
	}
	queueExec(q, "insert outbox", `INSERT INTO outbox (id, topic, owner_id, entry_id, payload, created_at, available_at)
		SELECT u.id, u.t, u.o, u.e, u.p::JSONB, $6, $6
		FROM unnest($1::UUID[], $2::TEXT[], $3::UUID[], $4::UUID[], $5::TEXT[]) AS u(id, t, o, e, p)`,
		ids, topics, owners, entries, payloads, b.now)
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
	rows, err := b.tx.Query(ctx, lockAccountsSQL, owners, ids)
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

// lockAccountsSQL loads and locks the accounts a batch declared (by owner or
// id), their balance rows in id order. Every table is reached from the
// arrays through a LATERAL subquery on one key (OFFSET 0 keeps the planner
// from flattening it into a join it could hash): an index probe per key is
// the only plan, with or without statistics (see "Plans that never go
// stale" in ARCHITECTURE.md). The balance rows are locked inside their
// subquery, so in the nested loop's order: the keys', sorted by id.
const lockAccountsSQL = `SELECT a.id, a.code, a.asset, a.owner_id, a.normal, a.no_overdraft, a.shards, a.metadata, a.created_at,
			bal.debits_posted, bal.credits_posted, bal.debits_pending, bal.credits_pending
		FROM (SELECT DISTINCT x.id FROM (
				SELECT u.id FROM unnest($2::UUID[]) AS u(id)
				UNION ALL
				SELECT o.id FROM unnest($1::UUID[]) AS w(owner)
					CROSS JOIN LATERAL (SELECT id FROM ledger_accounts WHERE owner_id = w.owner OFFSET 0) AS o
			) AS x ORDER BY x.id) AS k
		CROSS JOIN LATERAL (SELECT * FROM ledger_accounts WHERE id = k.id AND shards = 1 OFFSET 0) AS a
		CROSS JOIN LATERAL (SELECT debits_posted, credits_posted, debits_pending, credits_pending FROM ledger_balances
			WHERE account_id = a.id AND shard = 0 OFFSET 0 FOR UPDATE) AS bal
		ORDER BY k.id`

// lockHotRowsSQL locks a batch's hot balance rows in the arrays' order
// (sorted by id and shard): each row is probed and locked in a LATERAL
// subquery, so no plan but the primary key's index is possible (see
// lockAccountsSQL).
const lockHotRowsSQL = `SELECT 1 FROM unnest($1::UUID[], $2::INT[]) AS u(id, shard)
		CROSS JOIN LATERAL (SELECT 1 FROM ledger_balances WHERE account_id = u.id AND shard = u.shard OFFSET 0 FOR UPDATE) AS bal`

// updateBalancesSQL adds a batch's deltas to its balance rows. An UPDATE
// cannot be driven by a LATERAL subquery: on a table without statistics
// PostgreSQL may hash the whole table here, which is why ledgerd analyzes
// the hot tables itself when autovacuum is off (KeepStatistics).
const updateBalancesSQL = `WITH u AS (
			UPDATE ledger_balances AS bal SET
				debits_posted = bal.debits_posted + u.dp,
				credits_posted = bal.credits_posted + u.cp,
				debits_pending = bal.debits_pending + u.dpe,
				credits_pending = bal.credits_pending + u.cpe
			FROM unnest($1::UUID[], $2::INT[], $3::NUMERIC[], $4::NUMERIC[], $5::NUMERIC[], $6::NUMERIC[], $7::BOOL[])
				AS u(id, shard, dp, cp, dpe, cpe, hot)
			WHERE bal.account_id = u.id AND bal.shard = u.shard
			RETURNING bal.account_id, bal.shard,
				u.hot AND GREATEST(bal.debits_posted, bal.credits_posted, bal.debits_pending, bal.credits_pending) >= $8 AS at_mark)
		SELECT count(*), COALESCE(array_agg(account_id) FILTER (WHERE at_mark), '{}'), COALESCE(array_agg(shard) FILTER (WHERE at_mark), '{}')
		FROM u`
