package wallet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/internal/testdb"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/ledger/ledgertest"
)

var dsn string

// After the package's tests, the whole journal they wrote must verify.
func TestMain(m *testing.M) { os.Exit(testdb.Main(m, &dsn, ledgertest.Verify)) }

// clock is a settable time source shared by the ledger and the service.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

type world struct {
	svc   *Service
	l     *ledger.Ledger
	db    *pg.DB
	clock *clock
}

func newWorld(t *testing.T) *world {
	testdb.Require(t, dsn)
	t.Helper()
	ctx := context.Background()
	db, err := pg.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	c := &clock{t: time.Now().UTC().Truncate(time.Second)}
	l, err := ledger.New(db, ledger.Options{Shards: 4, Modules: []ledger.Module{Module()}, Clock: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close(context.Background()) })
	return &world{svc: NewService(l), l: l, db: db, clock: c}
}

// wallet makes a customer and a wallet for one test.
func (w *world) wallet(t *testing.T, policy Policy, limit string) Wallet {
	t.Helper()
	ctx := context.Background()
	c, err := w.svc.CreateCustomer(ctx, Customer{Name: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	nw := NewWallet{CustomerID: c.ID, Asset: "CREDITS", OveragePolicy: policy}
	if limit != "" {
		a := ledger.MustAmount(limit)
		nw.OverageLimit = &a
	}
	wl, err := w.svc.CreateWallet(ctx, nw)
	if err != nil {
		t.Fatal(err)
	}
	return wl
}

func (w *world) grant(t *testing.T, id WalletID, amount string, prio int, eff, exp *time.Time) Grant {
	t.Helper()
	g, _, err := ledger.Unpack(w.svc.AddGrant(context.Background(), "", id, NewGrant{
		Amount: ledger.MustAmount(amount), Kind: Paid, Priority: &prio, EffectiveAt: eff, ExpiresAt: exp,
	}))
	if err != nil {
		t.Fatalf("grant %s: %v", amount, err)
	}
	// Time moves between grants, so "oldest first" has something to order by
	// (grants made in one batch share its instant and are ordered by id).
	w.clock.Advance(time.Millisecond)
	return g
}

func (w *world) debit(t *testing.T, id WalletID, amount string) (Debit, error) {
	t.Helper()
	d, _, err := ledger.Unpack(w.svc.Debit(context.Background(), "", id, NewDebit{Amount: ledger.MustAmount(amount)}))
	return d, err
}

func (w *world) remaining(t *testing.T, gs ...Grant) []string {
	t.Helper()
	out := make([]string, len(gs))
	for i, g := range gs {
		got, err := w.svc.GrantByID(context.Background(), g.ID)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = got.Remaining.String()
	}
	return out
}

func at(t time.Time) *time.Time { return &t }

// entries counts the wallet's posted entries of a kind that moved money.
func (w *world) entries(t *testing.T, id WalletID, kind string) int {
	t.Helper()
	var n int
	if err := w.db.Pool.QueryRow(context.Background(), `SELECT COUNT(DISTINCT e.id) FROM ledger_entries e
		JOIN ledger_postings p ON p.entry_id = e.id
		WHERE e.owner_id = $1 AND e.kind = $2 AND e.status = 'posted'`, id, kind).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestBurnDownOrder(t *testing.T) {
	w := newWorld(t)
	wl := w.wallet(t, PolicyBlock, "")
	now := w.clock.Now()
	// Created in this order; the order they burn in is in their names.
	g4 := w.grant(t, wl.ID, "10", 50, nil, nil)                           // prio 50, never expires, oldest
	g3 := w.grant(t, wl.ID, "10", 50, nil, at(now.Add(48*time.Hour)))     // prio 50, expires later
	g2 := w.grant(t, wl.ID, "10", 50, nil, at(now.Add(24*time.Hour)))     // prio 50, expires sooner
	g1 := w.grant(t, wl.ID, "10", 10, nil, nil)                           // lowest priority burns first
	g5 := w.grant(t, wl.ID, "10", 50, nil, nil)                           // prio 50, never expires, newer
	future := w.grant(t, wl.ID, "100", 0, at(now.Add(time.Hour)), nil)    // not yet effective: skipped
	soon := w.grant(t, wl.ID, "100", 0, nil, at(now.Add(10*time.Second))) // expires in 10s
	w.clock.Advance(10 * time.Second)                                     // ... now just expired: skipped

	steps := []struct {
		amount string
		want   []string // remaining of g1..g5
	}{
		{"4", []string{"6", "10", "10", "10", "10"}},
		{"7", []string{"0", "9", "10", "10", "10"}}, // spans g1 and g2
		{"19", []string{"0", "0", "0", "10", "10"}}, // g2 then g3
		{"15", []string{"0", "0", "0", "0", "5"}},   // oldest never-expiring first
	}
	for i, st := range steps {
		d, err := w.debit(t, wl.ID, st.amount)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if !d.Covered.Equal(ledger.MustAmount(st.amount)) || !d.Overage.IsZero() {
			t.Fatalf("step %d: covered %s overage %s", i, d.Covered, d.Overage)
		}
		if got := w.remaining(t, g1, g2, g3, g4, g5); fmt.Sprint(got) != fmt.Sprint(st.want) {
			t.Fatalf("step %d: remaining %v, want %v", i, got, st.want)
		}
	}
	if got := w.remaining(t, future, soon); fmt.Sprint(got) != "[100 100]" {
		t.Fatalf("not-yet-effective and expired grants were touched: %v", got)
	}
	// Only 5 is usable: 6 more is refused whole, nothing posted.
	if _, err := w.debit(t, wl.ID, "6"); !isRejection(err, CodeInsufficientCredits) {
		t.Fatalf("err = %v, want insufficient_credits", err)
	}
	if got := w.remaining(t, g5); got[0] != "5" {
		t.Fatalf("refused debit moved money: g5 = %s", got[0])
	}
	// Once effective, the future grant burns first (priority 0).
	w.clock.Advance(time.Hour)
	if _, err := w.debit(t, wl.ID, "1"); err != nil {
		t.Fatal(err)
	}
	if got := w.remaining(t, future, g5); fmt.Sprint(got) != "[99 5]" {
		t.Fatalf("remaining %v, want [99 5]", got)
	}
}

func isRejection(err error, code string) bool {
	var rej *ledger.Rejection
	return errors.As(err, &rej) && rej.Code == code
}

func TestOverage(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	wl := w.wallet(t, PolicyAllow, "5")
	w.grant(t, wl.ID, "10", 50, nil, nil)
	d, err := w.debit(t, wl.ID, "12")
	if err != nil {
		t.Fatal(err)
	}
	if d.Covered.String() != "10" || d.Overage.String() != "2" || d.Balance.Available.String() != "0" || d.Balance.Overage.String() != "2" {
		t.Fatalf("debit = %+v", d)
	}
	if _, err := w.debit(t, wl.ID, "3.000000000001"); !isRejection(err, CodeInsufficientCredits) {
		t.Fatalf("beyond the overage limit: %v", err)
	}
	if _, err := w.debit(t, wl.ID, "3"); err != nil {
		t.Fatalf("up to the limit: %v", err)
	}
	b, err := w.svc.Balance(ctx, wl.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b.Overage.String() != "5" || b.Consumed.String() != "10" || b.Granted.String() != "10" {
		t.Fatalf("balance = %+v", b)
	}
}

// The balance reads grants and the overage receivable in one statement
// when the wallet has grants, and the receivable alone when it has none;
// both must show the same overage and holds.
func TestBalanceOverageWithAndWithoutGrants(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	for _, tc := range []struct {
		name      string
		grant     string // "" for none
		debit     string
		hold      string
		available string
		overage   string
		held      string
	}{
		{"no grant", "", "4", "1", "0", "4", "1"},
		{"grant used up", "3", "7", "1", "0", "4", "1"},
		{"grant left", "10", "7", "1", "2", "0", "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wl := w.wallet(t, PolicyAllow, "")
			if tc.grant != "" {
				w.grant(t, wl.ID, tc.grant, 50, nil, nil)
			}
			if _, err := w.debit(t, wl.ID, tc.debit); err != nil {
				t.Fatal(err)
			}
			if _, _, err := ledger.Unpack(w.svc.PlaceHold(ctx, "", wl.ID, NewHold{Amount: ledger.MustAmount(tc.hold)})); err != nil {
				t.Fatal(err)
			}
			b, err := w.svc.Balance(ctx, wl.ID, nil)
			if err != nil {
				t.Fatal(err)
			}
			if b.Available.String() != tc.available || b.Overage.String() != tc.overage || b.Held.String() != tc.held {
				t.Fatalf("available %s overage %s held %s, want %s %s %s", b.Available, b.Overage, b.Held, tc.available, tc.overage, tc.held)
			}
		})
	}
}

func TestExpirySweeperAndVoid(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	wl := w.wallet(t, PolicyBlock, "")
	now := w.clock.Now()
	exp := w.grant(t, wl.ID, "10", 10, nil, at(now.Add(time.Hour)))
	keep := w.grant(t, wl.ID, "20", 50, nil, nil)
	if _, err := w.debit(t, wl.ID, "3"); err != nil { // from exp
		t.Fatal(err)
	}
	w.clock.Advance(time.Hour)
	// The package's tests share a database and the sweeper sweeps it all,
	// so what is checked is this wallet's journal.
	for i := 0; i < 2; i++ { // the second sweep changes nothing
		if _, err := w.svc.Sweep(ctx); err != nil {
			t.Fatalf("sweep %d: %v", i, err)
		}
		if n := w.entries(t, wl.ID, KindGrantExpiry); n != 1 {
			t.Fatalf("after sweep %d: %d expiry entries, want 1", i, n)
		}
	}
	g, err := w.svc.GrantByID(ctx, exp.ID)
	if err != nil {
		t.Fatal(err)
	}
	if g.Status != GrantExpired || g.Expired.String() != "7" || !g.Remaining.IsZero() {
		t.Fatalf("expired grant = %+v", g)
	}
	// One breakage posting of 7, and one grant.expired event.
	var breakage ledger.Amount
	if err := w.db.Pool.QueryRow(ctx, `SELECT SUM(p.amount) FROM ledger_postings p JOIN ledger_accounts a ON a.id = p.account_id
		JOIN ledger_entries e ON e.id = p.entry_id
		WHERE e.owner_id = $1 AND a.code = 'revenue:breakage'`, wl.ID).Scan(&breakage); err != nil || breakage.String() != "7" {
		t.Fatalf("breakage %s (err %v), want 7", breakage, err)
	}
	var events int
	if err := w.db.Pool.QueryRow(ctx, `SELECT COUNT(*) FROM outbox WHERE topic = $1 AND owner_id = $2`, TopicGrantExpired, wl.ID).Scan(&events); err != nil || events != 1 {
		t.Fatalf("%d grant.expired events (err %v), want 1", events, err)
	}

	// Void of a partly used grant reverses only what remains.
	if _, err := w.debit(t, wl.ID, "8"); err != nil {
		t.Fatal(err)
	}
	v, _, err := ledger.Unpack(w.svc.VoidGrant(ctx, "void-"+keep.ID.String(), keep.ID))
	if err != nil {
		t.Fatal(err)
	}
	if v.Status != GrantVoided || v.Voided.String() != "12" || !v.Remaining.IsZero() {
		t.Fatalf("voided grant = %+v", v)
	}
	if _, _, err := ledger.Unpack(w.svc.VoidGrant(ctx, "", keep.ID)); !isRejection(err, CodeGrantClosed) {
		t.Fatalf("second void: %v", err)
	}
	b, err := w.svc.Balance(ctx, wl.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Balance{Available: ledger.MustAmount("0"), Granted: ledger.MustAmount("30"), Consumed: ledger.MustAmount("11"),
		Expired: ledger.MustAmount("7"), Voided: ledger.MustAmount("12")}
	if !b.Available.Equal(want.Available) || !b.Granted.Equal(want.Granted) || !b.Consumed.Equal(want.Consumed) ||
		!b.Expired.Equal(want.Expired) || !b.Voided.Equal(want.Voided) || len(b.Grants) != 0 {
		t.Fatalf("balance = %+v", b)
	}
}

// A hold on a grant that expires keeps its reservation; once the hold is
// released, the sweeper posts the rest to breakage.
func TestExpiryWaitsForHolds(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	wl := w.wallet(t, PolicyBlock, "")
	g := w.grant(t, wl.ID, "10", 50, nil, at(w.clock.Now().Add(time.Minute)))
	secs := int64(3600)
	h, _, err := ledger.Unpack(w.svc.PlaceHold(ctx, "", wl.ID, NewHold{Amount: ledger.MustAmount("4"), ExpiresInSeconds: &secs}))
	if err != nil {
		t.Fatal(err)
	}
	w.clock.Advance(time.Minute)
	if _, err := w.svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := w.svc.GrantByID(ctx, g.ID)
	if got.Expired.String() != "6" || got.Remaining.String() != "4" {
		t.Fatalf("after expiry with a hold: %+v", got)
	}
	one := ledger.MustAmount("1")
	if _, _, err := ledger.Unpack(w.svc.CaptureHold(ctx, "", h.ID, &one)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // settles once; the next sweep finds nothing
		if _, err := w.svc.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
		if n := w.entries(t, wl.ID, KindGrantExpiry); n != 2 {
			t.Fatalf("after settling sweep %d: %d expiry entries, want 2", i, n)
		}
	}
	got, _ = w.svc.GrantByID(ctx, g.ID)
	if got.Expired.String() != "9" || !got.Remaining.IsZero() {
		t.Fatalf("after settling: %+v", got)
	}
}

func TestPointInTimeBalance(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	wl := w.wallet(t, PolicyAllow, "")
	type moment struct {
		at   time.Time
		want string // available held overage granted consumed expired voided
	}
	var moments []moment
	snap := func() {
		b, err := w.svc.Balance(ctx, wl.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		moments = append(moments, moment{w.clock.Now(), summary(b)})
		w.clock.Advance(time.Minute)
	}
	snap() // empty
	g1 := w.grant(t, wl.ID, "100", 50, nil, at(w.clock.Now().Add(10*time.Minute)))
	snap()
	w.grant(t, wl.ID, "50", 60, nil, nil)
	snap()
	if _, err := w.debit(t, wl.ID, "30"); err != nil {
		t.Fatal(err)
	}
	snap()
	h, _, err := ledger.Unpack(w.svc.PlaceHold(ctx, "", wl.ID, NewHold{Amount: ledger.MustAmount("20")}))
	if err != nil {
		t.Fatal(err)
	}
	snap()
	if _, _, err := ledger.Unpack(w.svc.CaptureHold(ctx, "", h.ID, nil)); err != nil {
		t.Fatal(err)
	}
	snap()
	w.clock.Advance(10 * time.Minute)
	if _, err := w.svc.Sweep(ctx); err != nil { // g1 expires with 50 left
		t.Fatal(err)
	}
	snap()
	if _, err := w.debit(t, wl.ID, "60"); err != nil { // 50 covered, 10 overage
		t.Fatal(err)
	}
	snap()
	_ = g1
	// Every moment, asked again from the journal, answers what it said then.
	for i, m := range moments {
		b, err := w.svc.Balance(ctx, wl.ID, &m.at)
		if err != nil {
			t.Fatal(err)
		}
		if got := summary(b); got != m.want {
			t.Errorf("moment %d at %s:\n got %s\nwant %s", i, m.at.Format(time.TimeOnly), got, m.want)
		}
	}
	if last := moments[len(moments)-1].want; last != "avail 0 held 0 overage 10 granted 150 consumed 100 expired 50 voided 0" {
		t.Errorf("final balance %s", last)
	}
}

func summary(b Balance) string {
	return fmt.Sprintf("avail %s held %s overage %s granted %s consumed %s expired %s voided %s",
		b.Available, b.Held, b.Overage, b.Granted, b.Consumed, b.Expired, b.Voided)
}

func TestHolds(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	wl := w.wallet(t, PolicyBlock, "")
	w.grant(t, wl.ID, "10", 50, nil, nil)
	if _, _, err := ledger.Unpack(w.svc.PlaceHold(ctx, "", wl.ID, NewHold{Amount: ledger.MustAmount("10.5")})); !isRejection(err, CodeInsufficientCredits) {
		t.Fatalf("uncoverable hold: %v", err)
	}
	h, _, err := ledger.Unpack(w.svc.PlaceHold(ctx, "", wl.ID, NewHold{Amount: ledger.MustAmount("6"), Metadata: []byte(`{"request":"r1"}`)}))
	if err != nil || h.Status != HoldHeld {
		t.Fatalf("hold: %+v %v", h, err)
	}
	// Held credits are not available to debits.
	if _, err := w.debit(t, wl.ID, "4.1"); !isRejection(err, CodeInsufficientCredits) {
		t.Fatalf("debit into held credits: %v", err)
	}
	two := ledger.MustAmount("2.5")
	c, _, err := ledger.Unpack(w.svc.CaptureHold(ctx, "", h.ID, &two))
	if err != nil || c.Status != HoldCaptured || c.Captured.String() != "2.5" || string(c.Metadata) == "" {
		t.Fatalf("capture: %+v %v", c, err)
	}
	if _, _, err := ledger.Unpack(w.svc.VoidHold(ctx, "", h.ID)); !isRejection(err, CodeHoldClosed) {
		t.Fatalf("void after capture: %v", err)
	}
	h2, _, err := ledger.Unpack(w.svc.PlaceHold(ctx, "", wl.ID, NewHold{Amount: ledger.MustAmount("7.5")}))
	if err != nil {
		t.Fatal(err)
	}
	if v, _, err := ledger.Unpack(w.svc.VoidHold(ctx, "", h2.ID)); err != nil || v.Status != HoldVoided {
		t.Fatalf("void: %+v %v", v, err)
	}
	secs := int64(30)
	h3, _, err := ledger.Unpack(w.svc.PlaceHold(ctx, "", wl.ID, NewHold{Amount: ledger.MustAmount("7.5"), ExpiresInSeconds: &secs}))
	if err != nil {
		t.Fatal(err)
	}
	w.clock.Advance(31 * time.Second)
	if got, err := w.svc.Hold(ctx, h3.ID); err != nil || got.Status != HoldExpired {
		t.Fatalf("a hold past its expiry reads %+v %v; want expired before the sweep too", got, err)
	}
	if _, _, err := ledger.Unpack(w.svc.CaptureHold(ctx, "", h3.ID, nil)); !isRejection(err, CodeHoldClosed) {
		t.Fatalf("capture after expiry: %v", err)
	}
	if _, err := w.svc.ExpireHolds(ctx, 100); err != nil {
		t.Fatal(err)
	}
	got, err := w.svc.Hold(ctx, h3.ID)
	if err != nil || got.Status != HoldExpired {
		t.Fatalf("hold = %+v %v", got, err)
	}
	b, err := w.svc.Balance(ctx, wl.ID, nil)
	if err != nil || b.Available.String() != "7.5" || !b.Held.IsZero() {
		t.Fatalf("balance %+v %v", b, err)
	}
}

// A hold and a debit race for the last credits: exactly one wins, whatever
// the order the poster applies them in.
func TestHoldRacesDebitForLastCredits(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	for round := 0; round < 10; round++ {
		wl := w.wallet(t, PolicyBlock, "")
		w.grant(t, wl.ID, "5", 50, nil, nil)
		var wg sync.WaitGroup
		var holdErr, debitErr error
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, _, holdErr = ledger.Unpack(w.svc.PlaceHold(ctx, "", wl.ID, NewHold{Amount: ledger.MustAmount("5")}))
		}()
		go func() {
			defer wg.Done()
			_, debitErr = w.debit(t, wl.ID, "5")
		}()
		wg.Wait()
		if (holdErr == nil) == (debitErr == nil) {
			t.Fatalf("round %d: hold err %v, debit err %v; want exactly one to win", round, holdErr, debitErr)
		}
		loser := holdErr
		if loser == nil {
			loser = debitErr
		}
		if !isRejection(loser, CodeInsufficientCredits) {
			t.Fatalf("round %d: loser got %v", round, loser)
		}
	}
}

func TestIdempotentDebit(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	wl := w.wallet(t, PolicyBlock, "")
	w.grant(t, wl.ID, "100", 50, nil, nil)
	key := "k-" + uuid.NewString()
	const n = 50
	res := make([]Debit, n)
	replayed := make([]bool, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			res[i], replayed[i], errs[i] = ledger.Unpack(w.svc.Debit(ctx, key, wl.ID, NewDebit{Amount: ledger.MustAmount("1.25")}))
		}(i)
	}
	wg.Wait()
	fresh := 0
	for i := range res {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !replayed[i] {
			fresh++
		}
		if res[i].EntryID != res[0].EntryID || !res[i].Balance.Available.Equal(ledger.MustAmount("98.75")) {
			t.Fatalf("call %d: %+v", i, res[i])
		}
	}
	if fresh != 1 {
		t.Fatalf("%d calls applied, want 1", fresh)
	}
	if _, _, err := ledger.Unpack(w.svc.Debit(ctx, key, wl.ID, NewDebit{Amount: ledger.MustAmount("2")})); !errors.Is(err, ledger.ErrIdempotencyConflict) {
		t.Fatalf("same key, other amount: %v", err)
	}
	other := w.wallet(t, PolicyBlock, "")
	if _, _, err := ledger.Unpack(w.svc.Debit(ctx, key, other.ID, NewDebit{Amount: ledger.MustAmount("1.25")})); !errors.Is(err, ledger.ErrIdempotencyConflict) {
		t.Fatalf("same key, other wallet: %v", err)
	}
}

func TestValidation(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	wl := w.wallet(t, PolicyBlock, "")
	prio := 5000
	cases := []struct {
		name  string
		call  func() error
		field string
	}{
		{"zero grant", func() error {
			_, _, err := ledger.Unpack(w.svc.AddGrant(ctx, "", wl.ID, NewGrant{Amount: ledger.Zero, Kind: Paid}))
			return err
		}, "amount"},
		{"unknown kind", func() error {
			_, _, err := ledger.Unpack(w.svc.AddGrant(ctx, "", wl.ID, NewGrant{Amount: ledger.MustAmount("1"), Kind: "free"}))
			return err
		}, "kind"},
		{"priority", func() error {
			_, _, err := ledger.Unpack(w.svc.AddGrant(ctx, "", wl.ID, NewGrant{Amount: ledger.MustAmount("1"), Kind: Paid, Priority: &prio}))
			return err
		}, "priority"},
		{"expiry before effective", func() error {
			e := w.clock.Now().Add(time.Hour)
			x := w.clock.Now()
			_, _, err := ledger.Unpack(w.svc.AddGrant(ctx, "", wl.ID, NewGrant{Amount: ledger.MustAmount("1"), Kind: Paid, EffectiveAt: &e, ExpiresAt: &x}))
			return err
		}, "expires_at"},
		{"negative debit", func() error {
			_, _, err := ledger.Unpack(w.svc.Debit(ctx, "", wl.ID, NewDebit{Amount: ledger.MustAmount("-1")}))
			return err
		}, "amount"},
		{"policy", func() error {
			_, err := w.svc.CreateWallet(ctx, NewWallet{CustomerID: wl.CustomerID, Asset: "USD", OveragePolicy: "maybe"})
			return err
		}, "overage_policy"},
		{"asset", func() error {
			_, err := w.svc.CreateWallet(ctx, NewWallet{CustomerID: wl.CustomerID, Asset: "usd"})
			return err
		}, "asset"},
		{"metadata", func() error {
			_, _, err := ledger.Unpack(w.svc.Debit(ctx, "", wl.ID, NewDebit{Amount: ledger.MustAmount("1"), Metadata: []byte(`[1]`)}))
			return err
		}, "metadata"},
	}
	for _, c := range cases {
		if err := c.call(); !errors.Is(err, fault.Invalid) || fault.FieldOf(err) != c.field {
			t.Errorf("%s: err = %v, want a validation error on %s", c.name, err, c.field)
		}
	}
	if _, err := w.svc.CreateWallet(ctx, NewWallet{CustomerID: wl.CustomerID, Asset: "CREDITS"}); !errors.Is(err, fault.Exists) {
		t.Errorf("second wallet in one asset: %v", err)
	}
	if _, err := w.svc.Balance(ctx, WalletID(uuid.New()), nil); !errors.Is(err, fault.NotFound) {
		t.Errorf("unknown wallet: %v", err)
	}
	b, _ := w.svc.Balance(ctx, wl.ID, nil)
	if !b.Granted.IsZero() || !b.Consumed.IsZero() {
		t.Errorf("refused calls moved money: %+v", b)
	}
}
