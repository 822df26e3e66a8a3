package wallet

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/creditledger/creditledger/internal/testdb"
	"github.com/creditledger/creditledger/ledger"
	"github.com/google/uuid"
)

// event is an outbox row as a test sees it.
type event struct {
	Topic string
	Data  map[string]any
}

// events lists the outbox rows a wallet's changes wrote, in relay order,
// keeping only the given topics (all when none).
func (w *world) events(t *testing.T, id WalletID, topics ...string) []event {
	t.Helper()
	rows, err := w.db.Pool.Query(context.Background(),
		`SELECT topic, payload FROM outbox WHERE owner_id = $1 ORDER BY created_at, id`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []event
	for rows.Next() {
		var (
			e   event
			raw []byte
		)
		if err := rows.Scan(&e.Topic, &raw); err != nil {
			t.Fatal(err)
		}
		if len(topics) > 0 && !slices.Contains(topics, e.Topic) {
			continue
		}
		if err := json.Unmarshal(raw, &e.Data); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// thresholds are the thresholds fired, in order.
func (w *world) thresholds(t *testing.T, id WalletID) []int {
	t.Helper()
	var out []int
	for _, e := range w.events(t, id, TopicThresholdReached) {
		out = append(out, int(e.Data["threshold"].(float64)))
	}
	return out
}

func (w *world) mustDebit(t *testing.T, id WalletID, amount string) Debit {
	t.Helper()
	d, err := w.debit(t, id, amount)
	if err != nil {
		t.Fatalf("debit %s: %v", amount, err)
	}
	return d
}

func TestThresholdAlerts(t *testing.T) {
	testdb.Require(t, dsn) // its cases need PostgreSQL: skipped whole, not passed with every case skipped
	cases := []struct {
		name   string
		grant  string
		debits []string
		want   [][]int // thresholds fired so far, after each debit
	}{
		{"one by one", "100", []string{"49.99", "0.01", "30", "19.99", "0.01"},
			[][]int{nil, {50}, {50, 80}, {50, 80}, {50, 80, 100}}},
		{"one debit crosses all three", "100", []string{"100"}, [][]int{{50, 80, 100}}},
		{"two of three at once", "10", []string{"8.5", "1.5"}, [][]int{{50, 80}, {50, 80, 100}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			wl := w.wallet(t, PolicyBlock, "")
			w.grant(t, wl.ID, tc.grant, 50, nil, nil)
			for i, d := range tc.debits {
				w.mustDebit(t, wl.ID, d)
				if got := w.thresholds(t, wl.ID); !slices.Equal(got, tc.want[i]) {
					t.Fatalf("after debit %d (%s): thresholds %v, want %v", i+1, d, got, tc.want[i])
				}
			}
			// Depleted once, when available reached zero.
			if n := len(w.events(t, wl.ID, TopicDepleted)); n != 1 {
				t.Errorf("wallet.depleted fired %d times, want 1", n)
			}
		})
	}
}

func TestThresholdPayload(t *testing.T) {
	w := newWorld(t)
	wl := w.wallet(t, PolicyBlock, "")
	w.grant(t, wl.ID, "200", 50, nil, nil)
	w.mustDebit(t, wl.ID, "170")
	evs := w.events(t, wl.ID, TopicThresholdReached)
	if len(evs) != 2 {
		t.Fatalf("events %v", evs)
	}
	d := evs[1].Data
	if d["threshold"].(float64) != 80 || d["percent_used"] != "85" || d["available"] != "30" || d["reference"] != "200" ||
		d["wallet_id"] != wl.ID.String() || d["customer_id"] != wl.CustomerID {
		t.Errorf("payload %v", d)
	}
}

func TestThresholdsUnderConcurrentDebits(t *testing.T) {
	w := newWorld(t)
	wl := w.wallet(t, PolicyBlock, "")
	w.grant(t, wl.ID, "1000", 50, nil, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := ledger.Unpack(w.svc.Debit(context.Background(), fmt.Sprintf("conc-%d", i), wl.ID, NewDebit{Amount: ledger.MustAmount("10")})); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := w.thresholds(t, wl.ID); !slices.Equal(got, []int{50, 80, 100}) {
		t.Fatalf("thresholds %v, want [50 80 100] once each, in order", got)
	}
	if n := len(w.events(t, wl.ID, TopicDepleted)); n != 1 {
		t.Errorf("depleted %d times", n)
	}
}

func TestCreditRearmsThresholds(t *testing.T) {
	w := newWorld(t)
	wl := w.wallet(t, PolicyBlock, "")
	w.grant(t, wl.ID, "100", 50, nil, nil)
	w.mustDebit(t, wl.ID, "90") // 50, 80
	// New reference: 10 + 90 = 100 available; 50% used is at 50 left.
	w.grant(t, wl.ID, "90", 50, nil, nil)
	w.mustDebit(t, wl.ID, "40")
	if got := w.thresholds(t, wl.ID); !slices.Equal(got, []int{50, 80}) {
		t.Fatalf("after re-arm and 40%% used: %v", got)
	}
	w.mustDebit(t, wl.ID, "10")
	evs := w.events(t, wl.ID, TopicThresholdReached)
	if got := w.thresholds(t, wl.ID); !slices.Equal(got, []int{50, 80, 50}) {
		t.Fatalf("after re-arm and 50%% used: %v", got)
	}
	if evs[2].Data["reference"] != "100" {
		t.Errorf("reference %v, want 100", evs[2].Data["reference"])
	}
}

func TestOverageStarted(t *testing.T) {
	w := newWorld(t)
	wl := w.wallet(t, PolicyAllow, "")
	w.grant(t, wl.ID, "10", 50, nil, nil)
	w.mustDebit(t, wl.ID, "8")
	if n := len(w.events(t, wl.ID, TopicOverageStarted)); n != 0 {
		t.Fatalf("overage_started before any overage: %d", n)
	}
	w.mustDebit(t, wl.ID, "5") // 2 covered, 3 uncovered
	w.mustDebit(t, wl.ID, "5")
	evs := w.events(t, wl.ID, TopicOverageStarted)
	if len(evs) != 1 || evs[0].Data["overage"] != "3" {
		t.Fatalf("overage_started %v, want once with overage 3", evs)
	}
	// Settled into an invoice, the next uncovered usage starts it again.
	w.settle(t, wl)
	w.mustDebit(t, wl.ID, "1")
	if n := len(w.events(t, wl.ID, TopicOverageStarted)); n != 2 {
		t.Fatalf("overage_started after an invoice settled the overage: %d, want 2", n)
	}
}

// topups lists the wallet's top-ups, oldest first.
func (w *world) topups(t *testing.T, id WalletID) []Topup {
	t.Helper()
	ts, _, err := w.svc.Topups(context.Background(), id, nil, 500)
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(ts)
	return ts
}

func (w *world) rule(t *testing.T, id WalletID, r NewAutoTopup) AutoTopup {
	t.Helper()
	got, err := w.svc.SetAutoTopup(context.Background(), id, r)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func amt(s string) *ledger.Amount { a := ledger.MustAmount(s); return &a }

func TestAutoTopupBurstMakesOneTopup(t *testing.T) {
	w := newWorld(t)
	wl := w.wallet(t, PolicyBlock, "")
	w.grant(t, wl.ID, "100", 50, nil, nil)
	w.rule(t, wl.ID, NewAutoTopup{Threshold: amt("50"), TargetBalance: amt("200")})
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := ledger.Unpack(w.svc.Debit(context.Background(), fmt.Sprintf("burst-%d", i), wl.ID, NewDebit{Amount: ledger.MustAmount("3")})); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	ts := w.topups(t, wl.ID)
	if len(ts) != 1 {
		t.Fatalf("%d top-ups for one burst, want 1: %+v", len(ts), ts)
	}
	tp := ts[0]
	// Sized to close the whole gap to the target from where it was asked.
	if tp.Status != TopupRequested || !tp.Amount.Equal(ledger.MustAmount("200").Sub(tp.AvailableAtRequest)) {
		t.Fatalf("top-up %+v", tp)
	}
	if n := len(w.events(t, wl.ID, TopicTopupRequested)); n != 1 {
		t.Fatalf("topup.requested %d times", n)
	}
	before := w.balance(t, wl.ID).Available
	got, replayed, err := ledger.Unpack(w.svc.ConfirmTopup(context.Background(), tp.ID))
	if err != nil || replayed || got.Status != TopupSucceeded || got.GrantID == nil {
		t.Fatalf("confirm: %+v %v %v", got, replayed, err)
	}
	if after := w.balance(t, wl.ID).Available; !after.Equal(before.Add(tp.Amount)) {
		t.Fatalf("available %s after confirming %s on %s", after, tp.Amount, before)
	}
	// Confirming again is a replay; failing it now is refused.
	if _, replayed, err := ledger.Unpack(w.svc.ConfirmTopup(context.Background(), tp.ID)); err != nil || !replayed {
		t.Fatalf("second confirm: replayed=%v err=%v", replayed, err)
	}
	if _, _, err := ledger.Unpack(w.svc.FailTopup(context.Background(), tp.ID, "card declined")); !isRejection(err, CodeTopupClosed) {
		t.Fatalf("fail after confirm: %v", err)
	}
	if n := len(w.events(t, wl.ID, TopicTopupSucceeded)); n != 1 {
		t.Fatalf("topup.succeeded %d times", n)
	}
	r, err := w.svc.AutoTopup(context.Background(), wl.ID)
	if err != nil || r.State.InFlight != nil || r.State.TopupsToday != 1 {
		t.Fatalf("rule state %+v %v", r.State, err)
	}
}

func TestAutoTopupAmountCoversTheGap(t *testing.T) {
	w := newWorld(t)
	wl := w.wallet(t, PolicyBlock, "")
	w.grant(t, wl.ID, "100", 50, nil, nil)
	w.rule(t, wl.ID, NewAutoTopup{Threshold: amt("60"), Amount: amt("25")})
	w.mustDebit(t, wl.ID, "90") // 10 left, 50 below the threshold: two packs of 25
	ts := w.topups(t, wl.ID)
	if len(ts) != 1 || !ts[0].Amount.Equal(ledger.MustAmount("50")) {
		t.Fatalf("top-ups %+v, want one of 50", ts)
	}
}

func TestAutoTopupFailureBacksOff(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	wl := w.wallet(t, PolicyBlock, "")
	w.grant(t, wl.ID, "100", 50, nil, nil)
	w.rule(t, wl.ID, NewAutoTopup{Threshold: amt("50"), Amount: amt("100")})
	w.mustDebit(t, wl.ID, "60")
	tp := w.topups(t, wl.ID)[0]
	got, _, err := ledger.Unpack(w.svc.FailTopup(ctx, tp.ID, "card declined"))
	if err != nil || got.Status != TopupFailed || got.FailureReason != "card declined" {
		t.Fatalf("fail: %+v %v", got, err)
	}
	// A retried fail, worded differently, replays the first.
	again, replayed, err := ledger.Unpack(w.svc.FailTopup(ctx, tp.ID, "insufficient funds"))
	if err != nil || !replayed || again.FailureReason != "card declined" {
		t.Fatalf("fail again: %+v replayed=%v %v", again, replayed, err)
	}
	if _, _, err := ledger.Unpack(w.svc.ConfirmTopup(ctx, tp.ID)); !isRejection(err, CodeTopupClosed) {
		t.Fatalf("confirm after fail: %v", err)
	}
	if n := len(w.events(t, wl.ID, TopicTopupFailed)); n != 1 {
		t.Fatalf("topup.failed %d times", n)
	}
	r, _ := w.svc.AutoTopup(ctx, wl.ID)
	if r.State.ConsecutiveFailures != 1 || r.State.RetryAfter == nil || r.State.InFlight != nil {
		t.Fatalf("state after failure %+v", r.State)
	}
	w.mustDebit(t, wl.ID, "1") // within the backoff: nothing new
	if n := len(w.topups(t, wl.ID)); n != 1 {
		t.Fatalf("%d top-ups during the backoff", n)
	}
	w.clock.Advance(topupBackoff(1) + time.Second)
	w.mustDebit(t, wl.ID, "1")
	ts := w.topups(t, wl.ID)
	if len(ts) != 2 || ts[1].Status != TopupRequested {
		t.Fatalf("after the backoff: %+v", ts)
	}
	if _, _, err := ledger.Unpack(w.svc.ConfirmTopup(ctx, ts[1].ID)); err != nil {
		t.Fatal(err)
	}
	r, _ = w.svc.AutoTopup(ctx, wl.ID)
	if r.State.ConsecutiveFailures != 0 || r.State.RetryAfter != nil {
		t.Fatalf("a success clears the backoff: %+v", r.State)
	}
}

func TestAutoTopupImmediateAndDailyCap(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	wl := w.wallet(t, PolicyAllow, "")
	w.grant(t, wl.ID, "10", 50, nil, nil)
	w.rule(t, wl.ID, NewAutoTopup{Threshold: amt("5"), Amount: amt("10"), Payment: PaymentImmediate, MaxPerDay: ptr(2)})
	relay := ledger.NewRelay(w.db, nil, w.svc)
	relay.Now = w.clock.Now
	drain := func() {
		t.Helper()
		w.mustDebit(t, wl.ID, "9")
		if _, err := relay.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	drain() // 1 left: top-up 1, credited by the relay
	drain() // 11 - 9 = 2 left: top-up 2
	drain() // 12 - 9 = 3 left: the day's cap is reached
	ts := w.topups(t, wl.ID)
	if len(ts) != 2 {
		t.Fatalf("%d top-ups with max_per_day 2: %+v", len(ts), ts)
	}
	for _, tp := range ts {
		if tp.Status != TopupSucceeded || tp.Payment != PaymentImmediate {
			t.Fatalf("immediate top-up %+v", tp)
		}
	}
	// Relaying the same messages again credits nothing twice.
	if _, err := w.db.Pool.Exec(ctx, `UPDATE outbox SET processed_at = NULL WHERE owner_id = $1`, wl.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := relay.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if bal := w.balance(t, wl.ID); !bal.Available.Equal(ledger.MustAmount("3")) || !bal.Granted.Equal(ledger.MustAmount("30")) {
		t.Fatalf("balance %+v", bal)
	}
	w.clock.Advance(24 * time.Hour)
	drain()
	if n := len(w.topups(t, wl.ID)); n != 3 {
		t.Fatalf("a new day allows a new top-up: %d", n)
	}
	// Unpaid immediate top-ups are owed until an invoice settles them.
	st := w.settle(t, wl)
	// The last drain went 6 into overage (3 covered of 9) before its top-up.
	if len(st.Topups) != 3 || !st.Overage.Add(st.Billable).Equal(ledger.MustAmount("36")) {
		t.Fatalf("settlement %+v", st)
	}
}

func ptr[T any](v T) *T { return &v }

// settle settles the wallet through the poster, as billing's closes do.
func (w *world) settle(t *testing.T, wl Wallet) Settlement {
	t.Helper()
	ctx := context.Background()
	sys, err := w.svc.System(ctx, wl.Asset)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.svc.EnsureAccounts(ctx, wl); err != nil {
		t.Fatal(err)
	}
	st, _, err := ledger.Unpack(ledger.Answer[Settlement](w.l.Submit(ctx,
		&settleOp{base: base{key: "settle:" + uuid.NewString(), walletID: wl.ID, customer: wl.CustomerID, sys: sys}})))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (w *world) balance(t *testing.T, id WalletID) Balance {
	t.Helper()
	b, err := w.svc.Balance(context.Background(), id, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A hold that reaches into overage is pending there; capturing it posts the
// receivable, and that starts overage like a debit does.
func TestCaptureIntoOverageStartsOverage(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	wl := w.wallet(t, PolicyAllow, "")
	w.grant(t, wl.ID, "10", 50, nil, nil)
	h, _, err := ledger.Unpack(w.svc.PlaceHold(ctx, "", wl.ID, NewHold{Amount: ledger.MustAmount("15")}))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(w.events(t, wl.ID, TopicOverageStarted)); n != 0 {
		t.Fatalf("overage_started on a pending hold: %d", n)
	}
	if _, _, err := ledger.Unpack(w.svc.CaptureHold(ctx, "", h.ID, nil)); err != nil {
		t.Fatal(err)
	}
	evs := w.events(t, wl.ID, TopicOverageStarted)
	if len(evs) != 1 {
		t.Fatalf("overage_started %d times after the capture, want 1", len(evs))
	}
	if b := w.balance(t, wl.ID); b.Overage.String() != "5" {
		t.Fatalf("overage %s, want 5", b.Overage)
	}
}
