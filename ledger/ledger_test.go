package ledger

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/internal/testdb"
	"github.com/google/uuid"
)

var dsn string

// After the package's tests, the whole journal they wrote must verify.
func TestMain(m *testing.M) {
	os.Exit(testdb.Main(m, &dsn, func(ctx context.Context, url string) error {
		db, err := pg.Open(ctx, url)
		if err != nil {
			return err
		}
		defer db.Close()
		r, err := Verify(ctx, db)
		if err != nil {
			return err
		}
		if !r.OK() {
			r.Write(os.Stderr)
			return errors.New("ledger invariants violated")
		}
		return nil
	}))
}

// env is one ledger on the package's database with the system accounts the
// tests use.
type env struct {
	db       *pg.DB
	l        *Ledger
	funding  Account // hot, debit-normal, may go negative
	revenue  Account // hot, credit-normal
	asset    string
	observer *countingObserver
}

type countingObserver struct {
	mu      sync.Mutex
	batches []int
	retries int
	refused []string
	failed  int
}

func (o *countingObserver) BatchCommitted(_, ops int, _ time.Duration, retries int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.batches = append(o.batches, ops)
	o.retries += retries
}
func (o *countingObserver) BatchFailed(int, int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.failed++
}
func (o *countingObserver) OpRefused(_ int, code string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.refused = append(o.refused, code)
}

// mustNew is New for tests.
func mustNew(t testing.TB, db *pg.DB, opts Options) *Ledger {
	t.Helper()
	l, err := New(db, opts)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func newEnv(t testing.TB, opts Options) *env {
	t.Helper()
	testdb.Require(t, dsn)
	ctx := context.Background()
	db, err := pg.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	obs := &countingObserver{}
	opts.Observer = obs
	l, err := New(db, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close(context.Background()) })
	// Each test gets its own asset so tests in one database stay apart.
	asset := "T" + uuid.NewString()[:8]
	funding, err := l.EnsureAccount(ctx, AccountSpec{Code: "funding:paid", Asset: asset, Normal: Debit, Hot: true})
	if err != nil {
		t.Fatal(err)
	}
	revenue, err := l.EnsureAccount(ctx, AccountSpec{Code: "revenue:usage", Asset: asset, Normal: Credit, Hot: true})
	if err != nil {
		t.Fatal(err)
	}
	return &env{db: db, l: l, funding: funding, revenue: revenue, asset: asset, observer: obs}
}

func (e *env) openAccount(t testing.TB, owner OwnerID, code string) Account {
	t.Helper()
	out, err := e.l.Submit(context.Background(), &CreateAccountOp{
		IdempotencyKey: "open:" + owner.String() + ":" + code,
		Spec:           AccountSpec{ID: NewAccountID(), Code: code + ":" + owner.String(), Asset: e.asset, Owner: owner, Normal: Credit, NoOverdraft: true},
	})
	if err != nil || out.Rejection != nil {
		t.Fatalf("open account: %v %v", err, out.Rejection)
	}
	accts := mustAccounts(t, e.l, owner)
	for _, a := range accts {
		if a.Code == code+":"+owner.String() {
			return a
		}
	}
	t.Fatalf("account %s not found", code)
	return Account{}
}

func mustAccounts(t testing.TB, l *Ledger, owner OwnerID) []Account {
	t.Helper()
	as, err := l.AccountsOf(context.Background(), owner)
	if err != nil {
		t.Fatal(err)
	}
	return as
}

func mustVerify(t testing.TB, db *pg.DB) {
	t.Helper()
	r, err := Verify(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() {
		for _, v := range r.Violations {
			t.Errorf("verify: %s", v)
		}
	}
}

func TestTransferIdempotencyAndOverdraft(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, Options{Shards: 2})
	owner := OwnerID(uuid.New())
	grant := e.openAccount(t, owner, "grant")

	fund := &TransferOp{IdempotencyKey: "fund-" + owner.String(), Owner: owner,
		Postings: Postings(Transfer{Debit: e.funding.ID, Credit: grant.ID, Amount: MustAmount("10")})}
	first, err := e.l.Submit(ctx, fund)
	if err != nil || first.Status != StatusPosted || first.Replayed {
		t.Fatalf("fund: %+v %v", first, err)
	}
	again, err := e.l.Submit(ctx, fund)
	if err != nil || !again.Replayed || again.EntryID != first.EntryID || string(again.Result) != string(first.Result) {
		t.Fatalf("replay: %+v %v, first %+v", again, err, first)
	}
	changed := *fund
	changed.Postings = Postings(Transfer{Debit: e.funding.ID, Credit: grant.ID, Amount: MustAmount("11")})
	if _, err := e.l.Submit(ctx, &changed); !errors.Is(err, ErrIdempotencyConflict) {
		t.Fatalf("different payload under one key: err = %v, want ErrIdempotencyConflict", err)
	}

	spend := func(key, amt string) Outcome {
		out, err := e.l.Submit(ctx, &TransferOp{IdempotencyKey: key, Owner: owner,
			Postings: Postings(Transfer{Debit: grant.ID, Credit: e.revenue.ID, Amount: MustAmount(amt)})})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if out := spend("spend-1-"+owner.String(), "10.000000000001"); out.Rejection == nil || out.Rejection.Code != CodeOverdraft {
		t.Fatalf("overdraft: %+v", out)
	}
	// TigerBeetle's rule: the rejected key stays rejected, even once it could pass.
	if out := spend("spend-1-"+owner.String(), "10.000000000001"); !out.Replayed || out.Rejection == nil {
		t.Fatalf("rejected key replay: %+v", out)
	}
	if out := spend("spend-2-"+owner.String(), "9.999999999999"); out.Status != StatusPosted {
		t.Fatalf("spend: %+v", out)
	}
	a, err := e.l.Account(ctx, grant.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Available(); !got.Equal(MustAmount("0.000000000001")) {
		t.Fatalf("available = %s, want 0.000000000001", got)
	}
	mustVerify(t, e.db)
}

func TestUnbalancedAndUndeclaredAreErrorsNotRecords(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, Options{Shards: 1})
	owner := OwnerID(uuid.New())
	grant := e.openAccount(t, owner, "grant")
	op := &TransferOp{IdempotencyKey: "unbalanced-" + owner.String(), Owner: owner, Postings: []Posting{
		{Account: e.funding.ID, Side: Debit, Amount: MustAmount("5")},
		{Account: grant.ID, Side: Credit, Amount: MustAmount("4")},
	}}
	if _, err := e.l.Submit(ctx, op); !errors.Is(err, ErrUnbalanced) {
		t.Fatalf("err = %v, want ErrUnbalanced", err)
	}
	stranger := NewAccountID()
	op2 := &TransferOp{IdempotencyKey: "undeclared-" + owner.String(), Owner: owner,
		Postings: Postings(Transfer{Debit: e.funding.ID, Credit: stranger, Amount: MustAmount("1")})}
	if _, err := e.l.Submit(ctx, op2); !errors.Is(err, ErrNotLocked) {
		t.Fatalf("err = %v, want ErrNotLocked", err)
	}
	// Neither was recorded: the keys are still free.
	var n int
	if err := e.db.Pool.QueryRow(ctx, `SELECT COUNT(*) FROM ledger_entries WHERE idempotency_key = ANY($1)`,
		[]string{op.Key(), op2.Key()}).Scan(&n); err != nil || n != 0 {
		t.Fatalf("recorded %d entries (err %v), want 0", n, err)
	}
	mustVerify(t, e.db)
}

func TestHoldLifecycle(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, Options{Shards: 2})
	owner := OwnerID(uuid.New())
	a := e.openAccount(t, owner, "a")
	b := e.openAccount(t, owner, "b")
	for i, acc := range []Account{a, b} {
		if out, err := e.l.Submit(ctx, &TransferOp{IdempotencyKey: fmt.Sprintf("fund-%d-%s", i, owner), Owner: owner,
			Postings: Postings(Transfer{Debit: e.funding.ID, Credit: acc.ID, Amount: MustAmount("6")})}); err != nil || out.Rejection != nil {
			t.Fatal(err, out.Rejection)
		}
	}
	hold := func(key string, legs ...HoldLeg) Outcome {
		out, err := e.l.Submit(ctx, &HoldOp{IdempotencyKey: key + owner.String(), ID: NewHoldID(), Owner: owner, Legs: legs})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	leg := func(acc Account, amt string) HoldLeg {
		return HoldLeg{Debit: acc.ID, Credit: e.revenue.ID, Amount: MustAmount(amt)}
	}
	// 6 + 4 across two accounts; capture 7: a gives 6, b gives 1, 3 released.
	h1 := hold("h1", leg(a, "6"), leg(b, "4"))
	if h1.Status != StatusPosted {
		t.Fatalf("hold: %+v", h1)
	}
	if out := hold("h2", leg(b, "2.5")); out.Rejection == nil {
		t.Fatalf("b has 2 available; a hold of 2.5 must be refused: %+v", out)
	}
	var placed Hold
	mustJSON(t, h1.Result, &placed)
	seven := MustAmount("7")
	out, err := e.l.Submit(ctx, &CaptureOp{IdempotencyKey: "cap" + owner.String(), Hold: placed.ID, Owner: owner, Amount: &seven})
	if err != nil || out.Rejection != nil {
		t.Fatalf("capture: %v %+v", err, out.Rejection)
	}
	if out, _ := e.l.Submit(ctx, &VoidOp{IdempotencyKey: "void" + owner.String(), Hold: placed.ID, Owner: owner}); out.Rejection == nil || out.Rejection.Code != CodeHoldClosed {
		t.Fatalf("void after capture: %+v", out)
	}
	wantAvail := map[AccountID]string{a.ID: "0", b.ID: "5"}
	for id, want := range wantAvail {
		acc, err := e.l.Account(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !acc.Available().Equal(MustAmount(want)) || !acc.DebitsPending.IsZero() {
			t.Errorf("%s: available %s pending %s, want %s and 0", acc.Code, acc.Available(), acc.DebitsPending, want)
		}
	}
	// Expired holds cannot be captured; the sweeper's void releases them.
	past := time.Now().Add(-time.Second)
	hid := NewHoldID()
	if out, err := e.l.Submit(ctx, &HoldOp{IdempotencyKey: "h3" + owner.String(), ID: hid, Owner: owner, Legs: []HoldLeg{leg(b, "5")}, ExpiresAt: &past}); err != nil || out.Rejection != nil {
		t.Fatal(err, out.Rejection)
	}
	if out, _ := e.l.Submit(ctx, &CaptureOp{IdempotencyKey: "cap3" + owner.String(), Hold: hid, Owner: owner}); out.Rejection == nil {
		t.Fatalf("capture of an expired hold must be refused")
	}
	// The sweeper releases it once; a second sweep finds nothing to do.
	for i, want := range []int{1, 0} {
		n, err := e.l.ExpireHolds(ctx, time.Now(), 100)
		if err != nil || n != want {
			t.Fatalf("sweep %d released %d (err %v), want %d", i, n, err, want)
		}
	}
	h, err := e.l.HoldByID(ctx, hid)
	if err != nil || h.Status != HoldExpired {
		t.Fatalf("hold = %+v, %v; want expired", h, err)
	}
	if acc, _ := e.l.Account(ctx, b.ID); !acc.DebitsPending.IsZero() || !acc.Available().Equal(MustAmount("5")) {
		t.Fatalf("after expiry b has pending %s, available %s; want 0 and 5", acc.DebitsPending, acc.Available())
	}
	var events int
	if err := e.db.Pool.QueryRow(ctx, `SELECT COUNT(*) FROM outbox WHERE topic = $1 AND payload->>'id' = $2`, TopicHoldExpired, hid.String()).Scan(&events); err != nil || events != 1 {
		t.Fatalf("%d hold.expired outbox rows (err %v), want 1", events, err)
	}
	mustVerify(t, e.db)
}

func TestPosterBatchesAndDrains(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, Options{Shards: 1, MaxBatch: 100, Linger: 5 * time.Millisecond})
	owner := OwnerID(uuid.New())
	grant := e.openAccount(t, owner, "grant")
	const n = 1000
	pend := make([]*Pending, n)
	for i := range pend {
		p, err := e.l.Enqueue(ctx, &TransferOp{IdempotencyKey: fmt.Sprintf("b-%d-%s", i, owner), Owner: owner,
			Postings: Postings(Transfer{Debit: e.funding.ID, Credit: grant.ID, Amount: MustAmount("0.000003")})})
		if err != nil {
			t.Fatal(err)
		}
		pend[i] = p
	}
	// Close drains: every queued op is applied before Close returns.
	if err := e.l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for i, p := range pend {
		select {
		case <-p.Done():
		default:
			t.Fatalf("op %d not done after Close", i)
		}
		if out, err := p.Result(); err != nil || out.Status != StatusPosted {
			t.Fatalf("op %d: %+v %v", i, out, err)
		}
	}
	if _, err := e.l.Enqueue(ctx, &TransferOp{IdempotencyKey: "late", Owner: owner}); !errors.Is(err, ErrClosed) {
		t.Fatalf("enqueue after close: %v", err)
	}
	acc, err := e.l.Account(ctx, grant.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !acc.Available().Equal(MustAmount("0.003")) {
		t.Fatalf("1000 × 0.000003 = %s, want exactly 0.003", acc.Available())
	}
	e.observer.mu.Lock()
	defer e.observer.mu.Unlock()
	maxBatch := 0
	for _, b := range e.observer.batches {
		maxBatch = max(maxBatch, b)
	}
	if maxBatch < 2 || maxBatch > 100 {
		t.Fatalf("largest batch %d; want several ops per batch and at most MaxBatch (batches: %v)", maxBatch, e.observer.batches)
	}
	t.Logf("%d ops in %d batches, largest %d", n+1, len(e.observer.batches), maxBatch)
	mustVerify(t, e.db)
}

// Fifty concurrent submissions of one key, split over two ledgers on the same
// database (two processes), produce one entry: one caller sees it applied,
// the others a replay of it.
func TestOneKeyConcurrentlyFromTwoProcesses(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, Options{Shards: 2})
	other := mustNew(t, e.db, Options{Shards: 3})
	defer other.Close(ctx)
	owner := OwnerID(uuid.New())
	grant := e.openAccount(t, owner, "grant")
	if _, err := other.EnsureAccount(ctx, AccountSpec{Code: "funding:paid", Asset: e.asset, Normal: Debit}); err != nil {
		t.Fatal(err) // exists: fills the second process's cache
	}
	op := func() Op {
		return &TransferOp{IdempotencyKey: "same-" + owner.String(), Owner: owner,
			Postings: Postings(Transfer{Debit: e.funding.ID, Credit: grant.ID, Amount: MustAmount("7")})}
	}
	const n = 50
	outs := make([]Outcome, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			l := e.l
			if i%2 == 1 {
				l = other
			}
			outs[i], errs[i] = l.Submit(ctx, op())
		}(i)
	}
	wg.Wait()
	applied := 0
	for i := range outs {
		if errs[i] != nil {
			t.Fatalf("submit %d: %v", i, errs[i])
		}
		if !outs[i].Replayed {
			applied++
		}
		if outs[i].EntryID != outs[0].EntryID {
			t.Fatalf("submit %d got entry %s, submit 0 got %s", i, outs[i].EntryID, outs[0].EntryID)
		}
	}
	if applied != 1 {
		t.Fatalf("%d submissions applied, want exactly 1", applied)
	}
	acc, err := e.l.Account(ctx, grant.ID)
	if err != nil || !acc.Available().Equal(MustAmount("7")) {
		t.Fatalf("balance %s (err %v), want 7", acc.Available(), err)
	}
	mustVerify(t, e.db)
}

// A hold reserves pending amounts on the hot account row of the shard that
// placed it. Released from another shard — another process, or after a
// restart with another shard count — it must come off that same row, or the
// row's pending counter would go negative.
func TestHoldReleasedFromAnotherShard(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, Options{Shards: 1})
	other := mustNew(t, e.db, Options{Shards: 3})
	defer other.Close(ctx)
	owner := OwnerID(uuid.New())
	grant := e.openAccount(t, owner, "grant")
	if _, err := other.EnsureAccount(ctx, AccountSpec{Code: "revenue:usage", Asset: e.asset, Normal: Credit}); err != nil {
		t.Fatal(err)
	}
	if out, err := e.l.Submit(ctx, &TransferOp{IdempotencyKey: "f-" + owner.String(), Owner: owner,
		Postings: Postings(Transfer{Debit: e.funding.ID, Credit: grant.ID, Amount: MustAmount("9")})}); err != nil || out.Rejection != nil {
		t.Fatal(err, out.Rejection)
	}
	// A route that lands on a shard other than 0 of the second ledger.
	route := ""
	for i := 0; route == ""; i++ {
		if r := fmt.Sprint("route-", i); ShardOf(r)%3 != 0 {
			route = r
		}
	}
	for i, release := range []func(HoldID) Op{
		func(id HoldID) Op {
			return &VoidOp{IdempotencyKey: "v-" + id.String(), Hold: id, Owner: owner, Route: route}
		},
		func(id HoldID) Op {
			return &CaptureOp{IdempotencyKey: "c-" + id.String(), Hold: id, Owner: owner, Route: route, Amount: ptr(MustAmount("1"))}
		},
	} {
		id := NewHoldID()
		if out, err := e.l.Submit(ctx, &HoldOp{IdempotencyKey: "h-" + id.String(), ID: id, Owner: owner,
			Legs: []HoldLeg{{Debit: grant.ID, Credit: e.revenue.ID, Amount: MustAmount("4")}}}); err != nil || out.Rejection != nil {
			t.Fatal(err, out.Rejection)
		}
		if out, err := other.Submit(ctx, release(id)); err != nil || out.Rejection != nil {
			t.Fatalf("release %d from another shard: %v %v", i, err, out.Rejection)
		}
	}
	rev, err := e.l.Account(ctx, e.revenue.ID)
	if err != nil || !rev.CreditsPending.IsZero() {
		t.Fatalf("revenue pending %s (err %v), want 0", rev.CreditsPending, err)
	}
	mustVerify(t, e.db)
}

func ptr[T any](v T) *T { return &v }

// Two processes whose shards write the same hot counter rows, concurrently:
// batches touching one hot row (funding -> grant) lock it in their UPDATE,
// batches touching two (grant -> revenue and funding -> revenue in one op)
// lock them first in one order. Every transfer lands exactly once, nothing
// fails, no counter is lost and the journal verifies.
func TestHotRowsSharedByTwoProcesses(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, Options{Shards: 1, MaxBatch: 16, Tx: pg.TxOptions{IsoLevel: "repeatable read"}})
	other := mustNew(t, e.db, Options{Shards: 1, MaxBatch: 16, Tx: pg.TxOptions{IsoLevel: "repeatable read"}})
	defer other.Close(ctx)
	for _, code := range []string{"funding:paid", "revenue:usage"} {
		if _, err := other.EnsureAccount(ctx, AccountSpec{Code: code, Asset: e.asset, Normal: Debit}); err != nil {
			t.Fatal(err) // exists: fills the second process's cache
		}
	}
	const owners, each = 16, 20
	grants := make([]Account, owners)
	ids := make([]OwnerID, owners)
	for i := range grants {
		ids[i] = OwnerID(uuid.New())
		grants[i] = e.openAccount(t, ids[i], "grant")
	}
	var wg sync.WaitGroup
	errs := make(chan error, owners*each)
	for i := range owners {
		l := e.l
		if i%2 == 1 {
			l = other
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				var p []Posting
				if j%2 == 0 { // one hot row: funding
					p = Postings(Transfer{Debit: e.funding.ID, Credit: grants[i].ID, Amount: MustAmount("3")})
				} else { // two hot rows: funding and revenue
					p = Postings(Transfer{Debit: e.funding.ID, Credit: grants[i].ID, Amount: MustAmount("3")},
						Transfer{Debit: grants[i].ID, Credit: e.revenue.ID, Amount: MustAmount("1")})
				}
				out, err := l.Submit(ctx, &TransferOp{IdempotencyKey: fmt.Sprintf("hot-%d-%d-%s", i, j, e.asset), Owner: ids[i], Postings: p})
				if err == nil && out.Rejection != nil {
					err = out.Rejection
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i, g := range grants {
		acc, err := e.l.Account(ctx, g.ID)
		if err != nil || !acc.Available().Equal(MustAmount("50")) { // 20 × 3 − 10 × 1
			t.Fatalf("grant %d: %s (err %v), want 50", i, acc.Available(), err)
		}
	}
	rev, err := e.l.Account(ctx, e.revenue.ID)
	if err != nil || !rev.Posted(Credit).Equal(MustAmount(fmt.Sprint(owners*each/2))) {
		t.Fatalf("revenue %s (err %v), want %d", rev.Posted(Credit), err, owners*each/2)
	}
	mustVerify(t, e.db)
}
