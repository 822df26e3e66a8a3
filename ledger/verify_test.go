package ledger

import (
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// Verify must notice each kind of damage. Each case corrupts a fresh copy of
// the same small history and names the check that must fire.
func TestVerifyDetectsCorruption(t *testing.T) {
	cases := []struct {
		name, check, sql string
	}{
		{"counter drift", "counters equal the sum of postings",
			`UPDATE ledger_balances SET credits_posted = credits_posted + 1 WHERE account_id = $1`},
		{"posting amount changed", "postings balance per entry and asset",
			`UPDATE ledger_postings SET amount = amount + 0.000000000001 WHERE account_id = $1 AND NOT pending`},
		{"overdrawn no-overdraft account", "no-overdraft accounts are not negative",
			`UPDATE ledger_balances SET debits_posted = credits_posted + 5, no_overdraft = false WHERE account_id = $1`},
		{"hold without its pending postings", "holds match their pending postings",
			`DELETE FROM ledger_postings WHERE pending AND account_id = $1`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, Options{Shards: 1})
			owner := OwnerID(uuid.New())
			grant := e.openAccount(t, owner, "grant")
			for i, op := range []Op{
				&TransferOp{IdempotencyKey: "v1" + owner.String(), Owner: owner, Postings: Postings(Transfer{Debit: e.funding.ID, Credit: grant.ID, Amount: MustAmount("10")})},
				&TransferOp{IdempotencyKey: "v2" + owner.String(), Owner: owner, Postings: Postings(Transfer{Debit: grant.ID, Credit: e.revenue.ID, Amount: MustAmount("3")})},
				&HoldOp{IdempotencyKey: "v3" + owner.String(), ID: NewHoldID(), Owner: owner, Legs: []HoldLeg{{Debit: grant.ID, Credit: e.revenue.ID, Amount: MustAmount("2")}}},
			} {
				if out, err := e.l.Submit(ctx, op); err != nil || out.Rejection != nil {
					t.Fatalf("op %d: %v %v", i, err, out.Rejection)
				}
			}
			mustVerify(t, e.db)
			if _, err := e.db.Pool.Exec(ctx, tc.sql, grant.ID); err != nil {
				t.Fatal(err)
			}
			r, err := Verify(ctx, e.db)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, v := range r.Violations {
				if v.Check == tc.check {
					found = true
				}
			}
			if !found {
				t.Fatalf("check %q did not fire; violations: %v", tc.check, r.Violations)
			}
			var out strings.Builder
			r.Write(&out)
			if !strings.Contains(out.String(), "FAILED") || !strings.Contains(out.String(), tc.check) {
				t.Fatalf("report does not name the violation:\n%s", out.String())
			}
			// Undo, so the package database stays valid for the tests after.
			if _, err := e.db.Pool.Exec(ctx, `DELETE FROM ledger_postings WHERE account_id = $1`, grant.ID); err != nil {
				t.Fatal(err)
			}
			cleanupAccount(t, e, grant.ID)
		})
	}
}

// cleanupAccount removes an account's rows and every entry touching it,
// including the other legs on hot accounts, after a corruption test.
func cleanupAccount(t *testing.T, e *env, id AccountID) {
	t.Helper()
	ctx := context.Background()
	for _, q := range []string{
		`DELETE FROM ledger_holds WHERE owner_id = (SELECT owner_id FROM ledger_accounts WHERE id = $1)`,
		`DELETE FROM ledger_entries WHERE owner_id = (SELECT owner_id FROM ledger_accounts WHERE id = $1)`,
		`DELETE FROM ledger_balances WHERE account_id = $1`,
		`DELETE FROM ledger_accounts WHERE id = $1`,
	} {
		if _, err := e.db.Pool.Exec(ctx, q, id); err != nil {
			t.Fatal(err)
		}
	}
	// The hot accounts' legs of the deleted entries now have no entry: drop
	// them and recompute the hot counters from what remains.
	if _, err := e.db.Pool.Exec(ctx, `DELETE FROM ledger_postings p WHERE NOT EXISTS (SELECT 1 FROM ledger_entries e WHERE e.id = p.entry_id)`); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Pool.Exec(ctx, `UPDATE ledger_balances b SET
		debits_posted = COALESCE((SELECT SUM(amount) FROM ledger_postings p WHERE p.account_id = b.account_id AND p.shard = b.shard AND p.direction = 'debit' AND NOT p.pending), 0),
		credits_posted = COALESCE((SELECT SUM(amount) FROM ledger_postings p WHERE p.account_id = b.account_id AND p.shard = b.shard AND p.direction = 'credit' AND NOT p.pending), 0),
		debits_pending = COALESCE((SELECT SUM(amount) FROM ledger_postings p WHERE p.account_id = b.account_id AND p.shard = b.shard AND p.direction = 'debit' AND p.pending), 0),
		credits_pending = COALESCE((SELECT SUM(amount) FROM ledger_postings p WHERE p.account_id = b.account_id AND p.shard = b.shard AND p.direction = 'credit' AND p.pending), 0)
		WHERE b.account_id IN ($1, $2)`, e.funding.ID, e.revenue.ID); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, e.db)
}
