package ledger

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/creditledger/creditledger/internal/pg"
)

// Violation is one broken invariant.
type Violation struct {
	Check   string // which invariant
	Subject string // the entry, account or hold
	Detail  string
}

func (v Violation) String() string { return fmt.Sprintf("%s: %s: %s", v.Check, v.Subject, v.Detail) }

// Report is the verifier's finding.
type Report struct {
	Entries, Postings, Accounts, Holds int64
	Violations                         []Violation
}

// OK reports whether every invariant holds.
func (r Report) OK() bool { return len(r.Violations) == 0 }

// Write prints the report for humans.
func (r Report) Write(w io.Writer) {
	fmt.Fprintf(w, "checked %d entries, %d postings, %d accounts, %d holds\n", r.Entries, r.Postings, r.Accounts, r.Holds)
	if r.OK() {
		fmt.Fprintln(w, "OK: every invariant holds")
		return
	}
	fmt.Fprintf(w, "FAILED: %d violation(s)\n", len(r.Violations))
	for _, v := range r.Violations {
		fmt.Fprintf(w, "  - %s\n", v)
	}
}

// Check is an invariant of a module's rows, as Verify runs them: a query
// returning (subject, detail) rows for every violation.
type Check struct {
	Name string
	SQL  string
}

// checks are the invariants, each a query returning (subject, detail) rows
// for every violation. They read the whole journal; run them off-peak on a
// large ledger.
var checks = []struct {
	name string
	sql  string
}{
	{"postings balance per entry and asset", `
		SELECT entry_id::TEXT || ' ' || asset || CASE WHEN pending THEN ' (pending)' ELSE '' END,
			'debits minus credits = ' || SUM(CASE WHEN direction = 'debit' THEN amount ELSE -amount END)::TEXT
		FROM ledger_postings GROUP BY entry_id, asset, pending
		HAVING SUM(CASE WHEN direction = 'debit' THEN amount ELSE -amount END) <> 0`},
	{"entry shape", `
		SELECT e.id::TEXT, e.status || ' entry with ' || COUNT(p.entry_id)::TEXT || ' posting(s)'
		FROM ledger_entries e LEFT JOIN ledger_postings p ON p.entry_id = e.id
		GROUP BY e.id, e.status
		HAVING (e.status = 'rejected' AND COUNT(p.entry_id) > 0) OR COUNT(p.entry_id) = 1`},
	{"postings belong to entries", `
		SELECT p.entry_id::TEXT, 'posting without an entry'
		FROM ledger_postings p LEFT JOIN ledger_entries e ON e.id = p.entry_id
		WHERE e.id IS NULL`},
	{"counters equal the sum of postings", `
		WITH p AS (
			SELECT account_id, shard,
				SUM(CASE WHEN direction = 'debit' AND NOT pending THEN amount ELSE 0 END) AS dp,
				SUM(CASE WHEN direction = 'credit' AND NOT pending THEN amount ELSE 0 END) AS cp,
				SUM(CASE WHEN direction = 'debit' AND pending THEN amount ELSE 0 END) AS dpe,
				SUM(CASE WHEN direction = 'credit' AND pending THEN amount ELSE 0 END) AS cpe
			FROM ledger_postings GROUP BY account_id, shard)
		SELECT COALESCE(b.account_id, p.account_id)::TEXT || ' shard ' || COALESCE(b.shard, p.shard)::TEXT,
			'counters (dp ' || COALESCE(b.debits_posted, 0)::TEXT || ', cp ' || COALESCE(b.credits_posted, 0)::TEXT ||
			', dpe ' || COALESCE(b.debits_pending, 0)::TEXT || ', cpe ' || COALESCE(b.credits_pending, 0)::TEXT ||
			') but postings (dp ' || COALESCE(p.dp, 0)::TEXT || ', cp ' || COALESCE(p.cp, 0)::TEXT ||
			', dpe ' || COALESCE(p.dpe, 0)::TEXT || ', cpe ' || COALESCE(p.cpe, 0)::TEXT || ')'
		FROM ledger_balances b FULL OUTER JOIN p ON p.account_id = b.account_id AND p.shard = b.shard
		WHERE COALESCE(b.debits_posted, 0) <> COALESCE(p.dp, 0)
			OR COALESCE(b.credits_posted, 0) <> COALESCE(p.cp, 0)
			OR COALESCE(b.debits_pending, 0) <> COALESCE(p.dpe, 0)
			OR COALESCE(b.credits_pending, 0) <> COALESCE(p.cpe, 0)`},
	{"no-overdraft accounts are not negative", `
		SELECT b.account_id::TEXT || ' (' || a.code || ')',
			'available ' || (CASE WHEN b.normal = 'credit' THEN b.credits_posted - b.debits_posted - b.debits_pending
				ELSE b.debits_posted - b.credits_posted - b.credits_pending END)::TEXT
		FROM ledger_balances b JOIN ledger_accounts a ON a.id = b.account_id
		WHERE a.no_overdraft AND (
			(b.normal = 'credit' AND b.credits_posted - b.debits_posted - b.debits_pending < 0)
			OR (b.normal = 'debit' AND b.debits_posted - b.credits_posted - b.credits_pending < 0))`},
	{"balance rows match their account", `
		SELECT a.id::TEXT || ' (' || a.code || ')',
			'has ' || COUNT(b.account_id)::TEXT || ' balance row(s) for ' || a.shards::TEXT || ' shard(s)'
		FROM ledger_accounts a LEFT JOIN ledger_balances b
			ON b.account_id = a.id AND b.normal = a.normal AND b.no_overdraft = a.no_overdraft AND b.shard < a.shards
		GROUP BY a.id, a.code, a.shards
		HAVING COUNT(b.account_id) <> a.shards`},
	{"postings touch existing accounts", `
		SELECT p.account_id::TEXT, 'posting in entry ' || p.entry_id::TEXT || ' names an unknown account or asset'
		FROM ledger_postings p LEFT JOIN ledger_accounts a ON a.id = p.account_id AND a.asset = p.asset
		WHERE a.id IS NULL`},
	{"holds match their pending postings", `
		SELECT h.id::TEXT, h.status || ' hold of ' || h.amount::TEXT || ' has pending debits ' ||
			COALESCE(SUM(CASE WHEN p.direction = 'debit' THEN p.amount END), 0)::TEXT ||
			' and pending credits ' || COALESCE(SUM(CASE WHEN p.direction = 'credit' THEN p.amount END), 0)::TEXT
		FROM ledger_holds h LEFT JOIN ledger_postings p ON p.hold_id = h.id AND p.pending
		GROUP BY h.id, h.status, h.amount
		HAVING COALESCE(SUM(CASE WHEN p.direction = 'debit' THEN p.amount END), 0)
				<> CASE WHEN h.status = 'pending' THEN h.amount ELSE 0 END
			OR COALESCE(SUM(CASE WHEN p.direction = 'credit' THEN p.amount END), 0)
				<> CASE WHEN h.status = 'pending' THEN h.amount ELSE 0 END`},
	{"pending postings belong to holds", `
		SELECT p.entry_id::TEXT, 'pending posting without a hold'
		FROM ledger_postings p LEFT JOIN ledger_holds h ON h.id = p.hold_id
		WHERE p.pending AND h.id IS NULL`},
	{"captures within the hold", `
		SELECT id::TEXT, status || ' hold captured ' || captured::TEXT || ' of ' || amount::TEXT
		FROM ledger_holds
		WHERE captured < 0 OR captured > amount OR (status <> 'captured' AND captured <> 0)`},
}

// Verify checks every invariant of the journal:
//   - postings sum to zero per entry, asset and phase (posted, pending);
//   - posted entries have no single posting, rejected ones none at all;
//   - every counter row equals the sum of its postings;
//   - no no-overdraft account is below zero;
//   - every hold's pending postings net to its amount while pending and to
//     zero once closed.
//
// and then the modules' own checks given (e.g. metering's: its events'
// charges add up to the entries they were summarized into).
func Verify(ctx context.Context, db *pg.DB, more ...Check) (Report, error) {
	var r Report
	if err := db.Pool.QueryRow(ctx, `SELECT (SELECT COUNT(*) FROM ledger_entries), (SELECT COUNT(*) FROM ledger_postings),
		(SELECT COUNT(*) FROM ledger_accounts), (SELECT COUNT(*) FROM ledger_holds)`).
		Scan(&r.Entries, &r.Postings, &r.Accounts, &r.Holds); err != nil {
		return r, fmt.Errorf("verify: count: %w", err)
	}
	all := make([]Check, 0, len(checks)+len(more))
	for _, c := range checks {
		all = append(all, Check{Name: c.name, SQL: c.sql})
	}
	for _, c := range append(all, more...) {
		rows, err := db.Pool.Query(ctx, c.SQL)
		if err != nil {
			return r, fmt.Errorf("verify %q: %w", c.Name, err)
		}
		for rows.Next() {
			var subject, detail string
			if err := rows.Scan(&subject, &detail); err != nil {
				rows.Close()
				return r, fmt.Errorf("verify %q: %w", c.Name, err)
			}
			r.Violations = append(r.Violations, Violation{Check: c.Name, Subject: strings.TrimSpace(subject), Detail: detail})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return r, fmt.Errorf("verify %q: %w", c.Name, err)
		}
	}
	return r, nil
}
