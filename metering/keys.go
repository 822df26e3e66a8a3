package metering

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/ledger"
)

// An applied event is its own idempotency record and its own audit row:
// the ledger keeps no entry per event. A usage op is summarized
// (ledger.Summarized): a batch's events of one wallet post into one journal
// entry, and each event row names it (events.entry_id) and carries what it
// was charged (its usage line, or its usage_records). The module finds a
// resent event by its id in events, the table's primary key being the
// unique key that decides a race between two batches.

const keyPrefix = "event:"

// Summarized: see above.
func (o *usageOp) Summarized() bool { return true }

// KeyConstraint is the events table's primary key.
func (module) KeyConstraint() string { return "events_pkey" }

// LookupKeys finds the events applied before among keys ("event:<id>"):
// one probe of the primary key per id, as the ledger's own lookup. An
// event keeps no result: a usage op's replay answers none (its callers
// only ask whether it was a duplicate).
func (module) LookupKeys(ctx context.Context, q ledger.Querier, keys []string) (map[string]ledger.StoredKey, error) {
	ids := make([]string, 0, len(keys))
	for _, k := range keys {
		if id, ok := strings.CutPrefix(k, keyPrefix); ok {
			ids = append(ids, id)
		}
	}
	rows, err := q.Query(ctx, lookupEventsSQL, ids)
	if err != nil {
		return nil, fmt.Errorf("look up events: %w", err)
	}
	defer rows.Close()
	out := map[string]ledger.StoredKey{}
	for rows.Next() {
		var (
			id    string
			entry uuid.UUID
			fp    []byte
			at    time.Time
		)
		if err := rows.Scan(&id, &entry, &fp, &at); err != nil {
			return nil, fmt.Errorf("scan event: %w", err)
		}
		out[keyPrefix+id] = ledger.StoredKey{Entry: ledger.EntryID(entry), Fingerprint: fp, CreatedAt: at}
	}
	return out, rows.Err()
}

// lookupEventsSQL: see LookupKeys (and the ledger's lookupKeysSQL for why
// LATERAL … OFFSET 0).
const lookupEventsSQL = `SELECT e.event_id, e.entry_id, e.fingerprint, e.received_at
		FROM unnest($1::TEXT[]) AS k(id)
		CROSS JOIN LATERAL (SELECT event_id, entry_id, fingerprint, received_at FROM events WHERE event_id = k.id OFFSET 0) AS e`

// Checks are metering's invariants, for ledger.Verify: the events' charges
// add up to the entries they went into, and every event names an entry.
func Checks() []ledger.Check {
	return []ledger.Check{
		{Name: "events' charges equal their entries' usage revenue", SQL: `
		WITH l AS (
			SELECT entry_id, asset, SUM(amount) AS charged FROM usage_lines
			WHERE asset IS NOT NULL AND asset <> '' GROUP BY entry_id, asset),
		r AS (
			SELECT p.entry_id, p.asset,
				SUM(CASE WHEN p.direction = 'credit' THEN p.amount ELSE -p.amount END) AS net
			FROM ledger_postings p
			JOIN ledger_entries e ON e.id = p.entry_id AND e.kind = '` + KindUsage + `'
			JOIN ledger_accounts a ON a.id = p.account_id AND a.code = 'revenue:usage'
			WHERE NOT p.pending
			GROUP BY p.entry_id, p.asset)
		SELECT COALESCE(l.entry_id, r.entry_id)::TEXT || ' ' || COALESCE(l.asset, r.asset),
			'events charged ' || COALESCE(l.charged, 0)::TEXT || ' but the entry credits revenue:usage ' || COALESCE(r.net, 0)::TEXT
		FROM l FULL OUTER JOIN r ON r.entry_id = l.entry_id AND r.asset = l.asset
		WHERE COALESCE(l.charged, 0) <> COALESCE(r.net, 0)`},
		{Name: "events name their entries", SQL: `
		SELECT v.event_id, 'entry ' || v.entry_id::TEXT || ' does not exist'
		FROM events v LEFT JOIN ledger_entries e ON e.id = v.entry_id
		WHERE e.id IS NULL`},
	}
}
