package wallet

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"testing"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/ledger"
)

// patch applies an updateWalletOp in the in-memory batch: the wallet it
// answers, or the error the op returned.
func (m *memWallet) patch(p WalletPatch) (Wallet, error) {
	m.t.Helper()
	out, err := m.b.Memory.Apply(context.Background(), &updateWalletOp{base: m.base(), patch: p})
	if err != nil {
		return Wallet{}, err
	}
	if out.Rejection != nil {
		m.t.Fatalf("a wallet update was rejected: %v", out.Rejection)
	}
	var w Wallet
	if err := json.Unmarshal(out.Result, &w); err != nil {
		m.t.Fatal(err)
	}
	return w, nil
}

func policy(p Policy) *Policy { return &p }

func limit(s string) OptionalAmount {
	if s == "null" {
		return OptionalAmount{Set: true}
	}
	a := ledger.MustAmount(s)
	return OptionalAmount{Set: true, Value: &a}
}

func thresholds(th ...int) *[]int { return &th }

// A change of policy decides the debits applied after it in the same
// batch; a change CreateWallet would refuse is refused on the wallet as the
// batch has it, and changes nothing.
func TestUpdateWalletPolicyInBatch(t *testing.T) {
	m := newMemWallet(t, Wallet{OveragePolicy: PolicyBlock})
	m.grant("10", 50, nil)
	if _, code := m.debit("15"); code != CodeInsufficientCredits {
		t.Fatalf("debit beyond the credits with block: %q", code)
	}
	w, err := m.patch(WalletPatch{OveragePolicy: policy(PolicyAllow), OverageLimit: limit("3")})
	if err != nil {
		t.Fatal(err)
	}
	if w.OveragePolicy != PolicyAllow || w.OverageLimit == nil || w.OverageLimit.String() != "3" {
		t.Fatalf("answered %+v", w)
	}
	if _, code := m.debit("14"); code != CodeInsufficientCredits {
		t.Fatalf("debit beyond the new limit: %q", code)
	}
	d, code := m.debit("12")
	if code != "" || d.Overage.String() != "2" {
		t.Fatalf("debit within the new limit: %+v %q", d, code)
	}
	// Block while a limit stays: CreateWallet's rule, on overage_policy,
	// the field that changed; nothing is changed.
	_, err = m.patch(WalletPatch{OveragePolicy: policy(PolicyBlock)})
	if !errors.Is(err, fault.Invalid) || fault.FieldOf(err) != "overage_policy" {
		t.Fatalf("block with a limit: %v (field %q)", err, fault.FieldOf(err))
	}
	if m.w.OveragePolicy != PolicyAllow || m.w.OverageLimit == nil {
		t.Fatalf("a refused change changed the wallet: %+v", m.w.Wallet)
	}
	if len(m.st.settings) != 1 {
		t.Fatalf("%d wallets to write, want the one changed before", len(m.st.settings))
	}
	// Removing the limit with the policy works; a limit alone on a block
	// wallet is refused on overage_limit.
	w, err = m.patch(WalletPatch{OveragePolicy: policy(PolicyBlock), OverageLimit: limit("null")})
	if err != nil || w.OveragePolicy != PolicyBlock || w.OverageLimit != nil {
		t.Fatalf("block, no limit: %+v %v", w, err)
	}
	if _, err := m.patch(WalletPatch{OverageLimit: limit("1")}); fault.FieldOf(err) != "overage_limit" {
		t.Fatalf("a limit on a block wallet: %v", err)
	}
	// An empty patch answers the wallet as it is.
	if w, err := m.patch(WalletPatch{}); err != nil || w.OveragePolicy != PolicyBlock || !slices.Equal(w.AlertThresholds, []int{50, 80, 100}) {
		t.Fatalf("empty patch: %+v %v", w, err)
	}
}

// Thresholds already fired for the current reference do not fire again
// when the thresholds change; a new threshold at or below the highest one
// fired counts as fired; one above it that the balance has crossed fires
// once, in the change's batch; the rest fire as usual.
func TestUpdateWalletThresholds(t *testing.T) {
	m := newMemWallet(t, Wallet{})
	m.apply("grant 100")
	m.apply("debit 65") // 50 fires
	if got := len(m.messages(TopicThresholdReached)); got != 1 {
		t.Fatalf("%d alerts before the change, want 1", got)
	}
	before := len(m.b.Outbox())
	if _, err := m.patch(WalletPatch{AlertThresholds: thresholds(30, 50, 60, 90)}); err != nil {
		t.Fatal(err)
	}
	var said []string
	for _, msg := range m.messages(TopicThresholdReached)[1:] {
		said = append(said, msg.said())
	}
	want := []string{"threshold 60: used 65, available 35 of 100"}
	if !slices.Equal(said, want) {
		t.Fatalf("the change fired %q, want %q", said, want)
	}
	if m.w.react.Fired != 3 {
		t.Fatalf("fired %d, want 3 (30, 50, 60)", m.w.react.Fired)
	}
	if len(m.b.Outbox()) != before+1 {
		t.Fatalf("the change emitted %d messages, want 1", len(m.b.Outbox())-before)
	}
	m.apply("debit 20") // 85 %: nothing new below 90
	m.apply("debit 5")  // 90 %
	said = nil
	for _, msg := range m.messages(TopicThresholdReached)[2:] {
		said = append(said, msg.said())
	}
	if want := []string{"threshold 90: used 90, available 10 of 100"}; !slices.Equal(said, want) {
		t.Fatalf("after the change %q, want %q", said, want)
	}
	// Thresholds all below what fired: none fires, all count as fired.
	if _, err := m.patch(WalletPatch{AlertThresholds: thresholds(10, 20)}); err != nil {
		t.Fatal(err)
	}
	if m.w.react.Fired != 2 || len(m.messages(TopicThresholdReached)) != 3 {
		t.Fatalf("fired %d, %d alerts", m.w.react.Fired, len(m.messages(TopicThresholdReached)))
	}
}

func TestRefired(t *testing.T) {
	for _, tc := range []struct {
		old   []int
		fired int
		now   []int
		want  int
	}{
		{[]int{50, 80, 100}, 0, []int{10}, 0},
		{[]int{50, 80, 100}, 2, []int{50, 100}, 1},
		{[]int{50, 80, 100}, 2, []int{60, 80, 90}, 2},
		{[]int{50, 80, 100}, 3, []int{}, 0},
		{[]int{50}, 1, []int{10, 20, 49, 50, 51}, 4},
		{nil, 0, []int{50}, 0},
	} {
		if got := refired(tc.old, tc.fired, tc.now); got != tc.want {
			t.Errorf("refired(%v, %d, %v) = %d, want %d", tc.old, tc.fired, tc.now, got, tc.want)
		}
	}
}

// Through the poster and the database: the new settings are written and
// decide the next debits, also in another process whose wallet map held
// the wallet before; validation names the field; a replay answers the
// same bytes; an unknown wallet is 404.
func TestUpdateWallet(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	wl := w.wallet(t, PolicyBlock, "")
	w.grant(t, wl.ID, "10", 50, nil, nil)

	// A second process on the same database, which has read the wallet.
	other := newWorld(t)
	if _, err := other.svc.Wallet(ctx, wl.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := other.debit(t, wl.ID, "11"); !isRejection(err, CodeInsufficientCredits) {
		t.Fatalf("debit beyond the credits with block: %v", err)
	}

	p := WalletPatch{OveragePolicy: policy(PolicyAllow), OverageLimit: limit("5"), AlertThresholds: thresholds(90, 25)}
	res, err := w.svc.UpdateWallet(ctx, "patch-"+wl.ID.String(), wl.ID, p)
	if err != nil {
		t.Fatal(err)
	}
	got, err := res.Value()
	if err != nil {
		t.Fatal(err)
	}
	if got.OveragePolicy != PolicyAllow || got.OverageLimit.String() != "5" || !slices.Equal(got.AlertThresholds, []int{25, 90}) {
		t.Fatalf("answered %+v", got)
	}
	for _, s := range []*Service{w.svc, other.svc} {
		read, err := s.Wallet(ctx, wl.ID)
		if err != nil || read.OveragePolicy != PolicyAllow || read.OverageLimit.String() != "5" || !slices.Equal(read.AlertThresholds, []int{25, 90}) {
			t.Fatalf("read back %+v %v", read, err)
		}
	}
	// The other process's debits follow the new policy at once.
	d, err := other.debit(t, wl.ID, "14")
	if err != nil || d.Overage.String() != "4" {
		t.Fatalf("debit into overage in the other process: %+v %v", d, err)
	}
	if _, err := other.debit(t, wl.ID, "2"); !isRejection(err, CodeInsufficientCredits) {
		t.Fatalf("debit beyond the new limit: %v", err)
	}

	// A replay answers the same bytes; the key with another patch is a
	// conflict.
	again, err := w.svc.UpdateWallet(ctx, "patch-"+wl.ID.String(), wl.ID, p)
	if err != nil || !again.Replayed || string(again.JSON) != string(res.JSON) {
		t.Fatalf("replay: %v %v", again.Replayed, err)
	}
	if _, err := w.svc.UpdateWallet(ctx, "patch-"+wl.ID.String(), wl.ID, WalletPatch{OverageLimit: limit("null")}); !errors.Is(err, fault.Idempotency) {
		t.Fatalf("key reused: %v", err)
	}

	for _, tc := range []struct {
		p     WalletPatch
		field string
	}{
		{WalletPatch{OveragePolicy: policy("sometimes")}, "overage_policy"},
		{WalletPatch{OverageLimit: limit("-1")}, "overage_limit"},
		{WalletPatch{OveragePolicy: policy(PolicyBlock), OverageLimit: limit("1")}, "overage_limit"},
		{WalletPatch{OveragePolicy: policy(PolicyBlock)}, "overage_policy"}, // the limit 5 stays
		{WalletPatch{AlertThresholds: thresholds(0)}, "alert_thresholds"},
		{WalletPatch{AlertThresholds: thresholds(50, 50)}, "alert_thresholds"},
		{WalletPatch{AlertThresholds: thresholds(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)}, "alert_thresholds"},
	} {
		if _, err := w.svc.UpdateWallet(ctx, "", wl.ID, tc.p); !errors.Is(err, fault.Invalid) || fault.FieldOf(err) != tc.field {
			t.Errorf("%+v: %v (field %q), want invalid %s", tc.p, err, fault.FieldOf(err), tc.field)
		}
	}
	if read, _ := w.svc.Wallet(ctx, wl.ID); read.OveragePolicy != PolicyAllow || read.OverageLimit == nil {
		t.Fatalf("a refused change changed the wallet: %+v", read)
	}
	// Block and no limit in one change.
	res, err = w.svc.UpdateWallet(ctx, "", wl.ID, WalletPatch{OveragePolicy: policy(PolicyBlock), OverageLimit: limit("null")})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := res.Value(); got.OveragePolicy != PolicyBlock || got.OverageLimit != nil {
		t.Fatalf("answered %+v", got)
	}
	if _, err := w.svc.UpdateWallet(ctx, "", WalletID(uuid.New()), WalletPatch{}); !errors.Is(err, fault.NotFound) {
		t.Fatalf("unknown wallet: %v", err)
	}
	// The change is in the wallet's journal, with no postings.
	var n int
	if err := w.db.Pool.QueryRow(ctx, `SELECT COUNT(*) FROM ledger_entries WHERE owner_id = $1 AND kind = $2`, wl.ID, KindWalletUpdate).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("%d wallet_update entries, want 2", n)
	}
}

// Changes of a wallet's settings in one process while another process
// debits it: every call succeeds (conflicting batches are rerun, not
// failed), the row ends with the last change, and no threshold alert goes
// out twice for one reference.
func TestUpdateWalletConcurrentWithDebits(t *testing.T) {
	ctx := context.Background()
	a, b := newWorld(t), newWorld(t)
	wl := a.wallet(t, PolicyAllow, "")
	a.grant(t, wl.ID, "100", 50, nil, nil)
	errs := make(chan error, 60)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 40 {
			if _, err := b.svc.Debit(ctx, "", wl.ID, NewDebit{Amount: ledger.MustAmount("2")}); err != nil {
				errs <- err
			}
		}
	}()
	var last []int
	for i := range 10 {
		last = []int{10 + i, 50, 90 - i}
		if _, err := a.svc.UpdateWallet(ctx, "", wl.ID, WalletPatch{AlertThresholds: thresholds(last...), OverageLimit: limit(strconv.Itoa(i))}); err != nil {
			errs <- err
		}
	}
	<-done
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, err := b.svc.Wallet(ctx, wl.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.AlertThresholds, last) || got.OverageLimit.String() != "9" {
		t.Fatalf("wallet %+v, want thresholds %v and limit 9", got, last)
	}
	var fired int
	if err := a.db.Pool.QueryRow(ctx, `SELECT COUNT(*) FROM outbox WHERE topic = $1 AND owner_id = $2 AND payload->>'threshold' IS NOT NULL`,
		TopicThresholdReached, wl.ID).Scan(&fired); err != nil || fired == 0 {
		t.Fatalf("%d threshold alerts (%v); 80 %% was used, some must have fired", fired, err)
	}
	rows, err := a.db.Pool.Query(ctx, `SELECT payload->>'threshold', COUNT(*) FROM outbox
		WHERE topic = $1 AND owner_id = $2 GROUP BY 1 HAVING COUNT(*) > 1`, TopicThresholdReached, wl.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var th string
		var n int
		if err := rows.Scan(&th, &n); err != nil {
			t.Fatal(err)
		}
		t.Errorf("threshold %s fired %d times for one reference", th, n)
	}
	bal, err := a.svc.Balance(ctx, wl.ID, nil)
	if err != nil || bal.Available.String() != "20" {
		t.Fatalf("available %s (%v), want 20", bal.Available, err)
	}
}
