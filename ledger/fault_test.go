package ledger

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/internal/testdb"
	"github.com/google/uuid"
)

// unrecordedTransfer is a TransferOp whose refusals must not take its key,
// as a usage event's.
type unrecordedTransfer struct{ TransferOp }

func (*unrecordedTransfer) KeyOnlyIfApplied() bool { return true }

// TestPoisonOpIsRefusedAlone puts operations the database refuses (a NUL
// byte in a description: 22021; a NUL escape in metadata: 22P05; a NUL in
// the idempotency key itself) in one batch with innocent ones. Without the
// split every operation of the batch failed; now the innocent ones commit
// and each poison one gets its own rejection.
func TestPoisonOpIsRefusedAlone(t *testing.T) {
	ctx := context.Background()
	// One shard and a long linger: every op below lands in one batch.
	e := newEnv(t, Options{Shards: 1, MaxBatch: 64, Linger: 300 * time.Millisecond})
	owner := OwnerID(uuid.New())
	grant := e.openAccount(t, owner, "grant")
	fund := func(key string) *TransferOp {
		return &TransferOp{IdempotencyKey: key, Owner: owner,
			Postings: Postings(Transfer{Debit: e.funding.ID, Credit: grant.ID, Amount: MustAmount("1")})}
	}
	tag := owner.String()
	nulDescription := fund("nul-description-" + tag)
	nulDescription.Description = "bad\x00byte"
	nulMetadata := fund("nul-metadata-" + tag)
	nulMetadata.Metadata = []byte(`{"note":"bad\u0000escape"}`)
	nulKey := fund("nul-key\x00-" + tag)
	unrecorded := &unrecordedTransfer{*fund("unrecorded-" + tag)}
	unrecorded.Description = "bad\x00byte"
	poison := map[Op]bool{nulDescription: true, nulMetadata: true, nulKey: true, unrecorded: true}

	var ops []Op
	for i := range 40 {
		ops = append(ops, fund(fmt.Sprintf("innocent-%d-%s", i, tag)))
		switch i {
		case 3:
			ops = append(ops, nulDescription)
		case 17:
			ops = append(ops, nulMetadata)
		case 25:
			ops = append(ops, nulKey)
		case 38:
			ops = append(ops, unrecorded)
		}
	}
	pend := make([]*Pending, len(ops))
	for i, op := range ops {
		p, err := e.l.Enqueue(ctx, op)
		if err != nil {
			t.Fatal(err)
		}
		pend[i] = p
	}
	for i, p := range pend {
		out, err := p.Wait(ctx)
		op := ops[i]
		switch {
		case !poison[op]:
			if err != nil || out.Status != StatusPosted {
				t.Errorf("innocent op %s: %+v %v", op.Key(), out, err)
			}
		case op == nulDescription || op == nulMetadata:
			if err != nil || out.Status != StatusRejected || out.Rejection.Code != CodeInvalidData {
				t.Errorf("poison op %q: %+v %v, want a recorded %s rejection", op.Key(), out, err, CodeInvalidData)
			}
		default:
			// The key itself cannot be stored, or the op asked not to be
			// recorded: the rejection comes back as its error.
			var rej *Rejection
			if !errors.As(err, &rej) || rej.Code != CodeInvalidData {
				t.Errorf("poison op %q: %+v %v, want a %s rejection as its error", op.Key(), out, err, CodeInvalidData)
			}
		}
	}
	a, err := e.l.Account(ctx, grant.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Posted(Credit); !got.Equal(MustAmount("40")) {
		t.Fatalf("grant holds %s, want the 40 innocent fundings", got)
	}
	// The recorded refusal is the key's answer from now on.
	again, err := e.l.Submit(ctx, nulDescription)
	if err != nil || !again.Replayed || again.Rejection == nil || again.Rejection.Code != CodeInvalidData {
		t.Fatalf("retry of a refused op: %+v %v", again, err)
	}
	// The unrecorded one did not take its key: corrected, it applies.
	fixed := &unrecordedTransfer{*fund("unrecorded-" + tag)}
	if out, err := e.l.Submit(ctx, fixed); err != nil || out.Status != StatusPosted || out.Replayed {
		t.Fatalf("corrected resend of an unrecorded refusal: %+v %v", out, err)
	}
	e.observer.mu.Lock()
	refused := len(e.observer.refused)
	e.observer.mu.Unlock()
	if refused != 4 {
		t.Errorf("observer saw %d refused ops, want 4", refused)
	}
	mustVerify(t, e.db)
}

// TestHotRowRollsOver lowers the roll-over mark so that a hot account's row
// reaches it after a few transfers: batches then write the residue's next
// row, the full one is left as it is, the balance is the sum of all rows,
// and a second process (a new Ledger) starts on the rolled row.
func TestHotRowRollsOver(t *testing.T) {
	ctx := context.Background()
	limits := Limits{HotRowRoll: MustAmount("100"), HotBatchDelta: MustAmount("60")}
	e := newEnv(t, Options{Shards: 1, Limits: limits})
	owner := OwnerID(uuid.New())
	grant := e.openAccount(t, owner, "grant")
	transfer := func(l *Ledger, i int) {
		t.Helper()
		out, err := l.Submit(ctx, &TransferOp{IdempotencyKey: fmt.Sprintf("roll-%d-%s", i, owner), Owner: owner,
			Postings: Postings(Transfer{Debit: e.funding.ID, Credit: grant.ID, Amount: MustAmount("30")})})
		if err != nil || out.Status != StatusPosted {
			t.Fatalf("transfer %d: %+v %v", i, out, err)
		}
	}
	for i := range 4 { // 120 on funding's row 0: past the mark after the 4th
		transfer(e.l, i)
	}
	shards := e.funding.Shards
	if got := e.l.hotRow(e.funding, 0); got != shards {
		t.Fatalf("after the row reached the mark, shard 0 writes row %d, want %d", got, shards)
	}
	transfer(e.l, 4)
	rows := balanceRows(t, e.db, e.funding.ID)
	if !rows[0].Equal(MustAmount("120")) || !rows[shards].Equal(MustAmount("30")) {
		t.Fatalf("funding rows = %v, want row 0 = 120 (left full) and row %d = 30", rows, shards)
	}
	a, err := e.l.Account(ctx, e.funding.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !a.DebitsPosted.Equal(MustAmount("150")) {
		t.Fatalf("funding debits = %s, want 150 summed over its rows", a.DebitsPosted)
	}
	// Another process learns of the rolled row when it first meets the
	// account.
	other := mustNew(t, e.db, Options{Shards: 1, Limits: limits})
	defer other.Close(ctx)
	if _, err := other.EnsureAccount(ctx, AccountSpec{Code: "funding:paid", Asset: e.asset, Normal: Debit, Hot: true}); err != nil {
		t.Fatal(err)
	}
	if got := other.hotRow(e.funding, 0); got != shards {
		t.Fatalf("a new process writes row %d, want the rolled row %d", got, shards)
	}
	transfer(other, 5)
	if rows := balanceRows(t, e.db, e.funding.ID); !rows[shards].Equal(MustAmount("60")) || !rows[0].Equal(MustAmount("120")) {
		t.Fatalf("funding rows = %v after the second process wrote", rows)
	}
	mustVerify(t, e.db)
}

// balanceRows maps a hot account's rows to their debits_posted.
func balanceRows(t testing.TB, db *pg.DB, id AccountID) map[int]Amount {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), `SELECT shard, debits_posted FROM ledger_balances WHERE account_id = $1`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int]Amount{}
	for rows.Next() {
		var (
			shard int
			amt   Amount
		)
		if err := rows.Scan(&shard, &amt); err != nil {
			t.Fatal(err)
		}
		out[shard] = amt
	}
	return out
}

// TestCounterLimits: an operation that would take a wallet's counter, or a
// batch's change of a hot row, to its limit is refused alone with
// limit_exceeded; the others apply.
func TestCounterLimits(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, Options{Shards: 1, Limits: Limits{Counter: MustAmount("1000"), HotRowRoll: MustAmount("900"), HotBatchDelta: MustAmount("100")}})
	owner := OwnerID(uuid.New())
	grant := e.openAccount(t, owner, "grant")
	send := func(key, amount string) Outcome {
		t.Helper()
		out, err := e.l.Submit(ctx, &TransferOp{IdempotencyKey: key + owner.String(), Owner: owner,
			Postings: Postings(Transfer{Debit: e.funding.ID, Credit: grant.ID, Amount: MustAmount(amount)})})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if out := send("too-much-at-once", "100"); out.Rejection == nil || out.Rejection.Code != CodeLimitExceeded ||
		!strings.Contains(out.Rejection.Detail, "per batch") {
		t.Fatalf("a batch change of a hot row at its limit: %+v", out)
	}
	for i := range 10 {
		if out := send(fmt.Sprintf("fill-%d", i), "99.5"); out.Status != StatusPosted {
			t.Fatalf("fill %d: %+v", i, out)
		}
	}
	if out := send("over-the-counter", "5"); out.Rejection == nil || out.Rejection.Code != CodeLimitExceeded ||
		!strings.Contains(out.Rejection.Detail, "credits_posted") {
		t.Fatalf("a wallet counter at its limit: %+v", out)
	}
	if out := send("still-fits", "4.999"); out.Status != StatusPosted {
		t.Fatalf("just under the limit: %+v", out)
	}
	mustVerify(t, e.db)
}

func TestNewRefusesBrokenOptions(t *testing.T) {
	testdb.Require(t, dsn)
	db, err := pg.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, opts := range []Options{
		{MaxBatch: MaxBatchOps + 1},
		{Limits: Limits{Counter: MustAmount("100"), HotRowRoll: MustAmount("90"), HotBatchDelta: MustAmount("20")}},
	} {
		if l, err := New(db, opts); err == nil {
			l.Close(context.Background())
			t.Errorf("New(%+v) accepted options that break an invariant", opts)
		}
	}
}

func TestCheckOpAmount(t *testing.T) {
	for _, tc := range []struct {
		amount string
		ok     bool
	}{
		{"1000000000000000", true},
		{"-1000000000000000", true},
		{"999999999999999.999999999999", true},
		{"1000000000000000.000000000001", false},
		{"33333333333333333333333332000000", false},
	} {
		a, err := ParseAmount(tc.amount)
		if err != nil {
			// Beyond NUMERIC(38,12) altogether: refused even earlier.
			if tc.ok {
				t.Errorf("%s: %v", tc.amount, err)
			}
			continue
		}
		if err := CheckOpAmount(a); (err == nil) != tc.ok {
			t.Errorf("CheckOpAmount(%s) = %v, want ok %v", tc.amount, err, tc.ok)
		}
	}
}

// TestUnknownFaultIsSplitToo: an error nobody classified (here a simulated
// bug: a trigger, in this test's database only, raising XX000 for one
// description) fails only the operation that reaches it; the innocent ones
// of its batch commit. When every operation fails, the split stops at its
// budget instead of costing a transaction per operation.
func TestUnknownFaultIsSplitToo(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, Options{Shards: 1, MaxBatch: 64, Linger: 300 * time.Millisecond})
	owner := OwnerID(uuid.New())
	grant := e.openAccount(t, owner, "grant")
	boom := "boom-" + owner.String()
	fn := "boom_" + strings.ReplaceAll(owner.String(), "-", "")
	for _, q := range []string{
		`CREATE FUNCTION ` + fn + `() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
			IF NEW.description = '` + boom + `' THEN RAISE EXCEPTION 'simulated bug' USING ERRCODE = 'XX000'; END IF;
			RETURN NEW; END $$`,
		`CREATE TRIGGER ` + fn + ` BEFORE INSERT ON ledger_entries FOR EACH ROW EXECUTE FUNCTION ` + fn + `()`,
	} {
		if _, err := e.db.Pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_, _ = e.db.Pool.Exec(ctx, `DROP TRIGGER `+fn+` ON ledger_entries`)
		_, _ = e.db.Pool.Exec(ctx, `DROP FUNCTION `+fn+`()`)
	})
	run := func(n int, bad func(i int) bool) (posted, failed int) {
		pend := make([]*Pending, n)
		for i := range n {
			op := &TransferOp{IdempotencyKey: fmt.Sprintf("unknown-%d-%d-%s", n, i, owner), Owner: owner,
				Postings: Postings(Transfer{Debit: e.funding.ID, Credit: grant.ID, Amount: MustAmount("1")})}
			if bad(i) {
				op.Description = boom
			}
			p, err := e.l.Enqueue(ctx, op)
			if err != nil {
				t.Fatal(err)
			}
			pend[i] = p
		}
		for i, p := range pend {
			out, err := p.Wait(ctx)
			switch {
			case err == nil && out.Status == StatusPosted && !bad(i):
				posted++
			case err != nil && pg.KindOf(err) == fault.Internal && bad(i):
				failed++
			default:
				t.Errorf("op %d (bad %v): %+v %v", i, bad(i), out, err)
			}
		}
		return posted, failed
	}
	if posted, failed := run(40, func(i int) bool { return i == 29 }); posted != 39 || failed != 1 {
		t.Fatalf("one bug among 40: %d posted, %d failed; want 39 and 1", posted, failed)
	}
	e.observer.mu.Lock()
	e.observer.failed = 0
	e.observer.mu.Unlock()
	if _, failed := run(64, func(int) bool { return true }); failed != 64 {
		t.Fatalf("%d of 64 failed, want all", failed)
	}
	e.observer.mu.Lock()
	defer e.observer.mu.Unlock()
	if e.observer.failed > 16 {
		t.Fatalf("a batch failing whole cost %d failed transactions; the split budget should stop it well before 64", e.observer.failed)
	}
}
