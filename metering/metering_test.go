package metering

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/internal/testdb"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/ledger/ledgertest"
	"github.com/creditledger/creditledger/pricing"
	"github.com/creditledger/creditledger/wallet"
)

var dsn string

// After the package's tests, the whole journal they wrote must verify.
func TestMain(m *testing.M) { os.Exit(testdb.Main(m, &dsn, ledgertest.VerifyWith(Checks()...))) }

type world struct {
	l       *ledger.Ledger
	db      *pg.DB
	wallets *wallet.Service
	svc     *Service
}

func newWorld(t testing.TB) *world {
	testdb.Require(t, dsn)
	t.Helper()
	ctx := context.Background()
	db, err := pg.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return worldOn(t, db)
}

func worldOn(t testing.TB, db *pg.DB) *world {
	l, err := ledger.New(db, ledger.Options{Shards: 4, Modules: []ledger.Module{Module(), wallet.Module()},
		Tx: pg.TxOptions{IsoLevel: pgx.TxIsoLevel(os.Getenv("LEDGER_TEST_ISOLATION"))}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close(context.Background()) })
	ws := wallet.NewService(l)
	return &world{l: l, db: db, wallets: ws, svc: NewService(l, ws, nil)}
}

// unique makes names that do not collide between tests sharing a database.
func unique(prefix string) string { return prefix + strings.ReplaceAll(uuid.NewString()[:8], "-", "") }

// customer makes a customer with a CREDITS wallet holding credits.
func (w *world) customer(t testing.TB, credits string) (string, wallet.Wallet) {
	t.Helper()
	ctx := context.Background()
	c, err := w.wallets.CreateCustomer(ctx, wallet.Customer{ID: unique("cus-")})
	if err != nil {
		t.Fatal(err)
	}
	wl, err := w.wallets.CreateWallet(ctx, wallet.NewWallet{CustomerID: c.ID, Asset: "CREDITS", OveragePolicy: wallet.PolicyBlock})
	if err != nil {
		t.Fatal(err)
	}
	if credits != "" {
		if _, _, err := ledger.Unpack(w.wallets.AddGrant(ctx, "", wl.ID, wallet.NewGrant{Amount: ledger.MustAmount(credits), Kind: wallet.Paid})); err != nil {
			t.Fatal(err)
		}
	}
	return c.ID, wl
}

func (w *world) meter(t testing.TB, m Meter) Meter {
	t.Helper()
	m.Code = unique(m.Code)
	if m.EventName == "" {
		m.EventName = unique("ev")
	}
	out, err := w.svc.CreateMeter(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (w *world) price(t testing.TB, m Meter, spec string) {
	t.Helper()
	var p pricing.Price
	if err := json.Unmarshal([]byte(spec), &p); err != nil {
		t.Fatalf("price %s: %v", spec, err)
	}
	if _, _, err := w.svc.CreatePrice(context.Background(), "", NewPrice{MeterCode: m.Code, Asset: "CREDITS", Price: p}); err != nil {
		t.Fatal(err)
	}
}

func event(id, customer, name string, props map[string]any) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"event_id": id, "customer_id": customer, "event_name": name, "properties": props})
	return b
}

func (w *world) ingest(t testing.TB, raws ...json.RawMessage) IngestResult {
	t.Helper()
	res, err := w.svc.Ingest(context.Background(), raws, IngestOptions{Source: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func (w *world) balance(t testing.TB, id wallet.WalletID) wallet.Balance {
	t.Helper()
	b, err := w.wallets.Balance(context.Background(), id, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The exactness vectors, through the whole path: events in several
// splits, each charged its marginal price, summing to the price of the total.
func TestExactnessThroughTheLedger(t *testing.T) {
	testdb.Require(t, dsn) // its cases need PostgreSQL: skipped whole, not passed with every case skipped
	cases := []struct {
		name   string
		agg    Aggregation
		price  string
		splits []int64
		want   string
	}{
		{"free allowance then per unit", Count, `{"model":"per_unit","unit_price":"0.02","free_units":"1000"}`, repeat(1, 2500), "30"},
		{"graduated tokens, one event", Sum, graduatedTokens, []int64{12_000_000}, "29.5"},
		{"graduated tokens, 12 events", Sum, graduatedTokens, repeat(1_000_000, 12), "29.5"},
		{"graduated tokens, straddling tiers", Sum, graduatedTokens, []int64{999_999, 2, 8_999_998, 1, 2_000_000}, "29.5"},
		{"volume", Sum, `{"model":"volume","tiers":[{"up_to":"1000","unit_price":"0.01"},{"up_to":null,"unit_price":"0.008"}]}`, []int64{400, 700, 400}, "12"},
		{"package", Count, `{"model":"package","package_size":"1000","package_price":"10"}`, repeat(1, 2500), "30"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t)
			cus, wl := w.customer(t, "1000")
			m := Meter{Code: "m", Aggregation: c.agg}
			if c.agg == Sum {
				m.Property = "n"
			}
			m = w.meter(t, m)
			w.price(t, m, c.price)
			var raws []json.RawMessage
			for i, n := range c.splits {
				raws = append(raws, event(fmt.Sprintf("%s-%d", m.Code, i), cus, m.EventName, map[string]any{"n": n}))
			}
			for len(raws) > 0 {
				k := min(len(raws), MaxBatchEvents)
				if res := w.ingest(t, raws[:k]...); res.Accepted != k || len(res.Rejected) != 0 {
					t.Fatalf("ingest: %+v", res)
				}
				raws = raws[k:]
			}
			if got := w.balance(t, wl.ID).Consumed; got.String() != c.want {
				t.Fatalf("consumed %s, want exactly %s", got, c.want)
			}
		})
	}
}

const graduatedTokens = `{"model":"graduated","tiers":[
	{"up_to":"1000000","unit_price":"0.000003"},
	{"up_to":"10000000","unit_price":"0.0000025"},
	{"up_to":null,"unit_price":"0.000002"}]}`

func repeat(v int64, n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// Input and output tokens of two models each have their own price.
func TestDimensionsAndDuplicates(t *testing.T) {
	w := newWorld(t)
	cus, wl := w.customer(t, "100")
	m := w.meter(t, Meter{Code: "tokens", Aggregation: Sum, Property: "tokens", GroupBy: []string{"model", "type"}})
	w.price(t, m, `{"model":"per_unit","unit_price":"0.00001","dimensions":{"model":"big","type":"output"}}`)
	w.price(t, m, `{"model":"per_unit","unit_price":"0.000003","dimensions":{"model":"big"}}`)
	w.price(t, m, `{"model":"per_unit","unit_price":"0.000001"}`)
	evs := []json.RawMessage{
		event("d1-"+cus, cus, m.EventName, map[string]any{"tokens": 1000, "model": "big", "type": "output"}), // 0.01
		event("d2-"+cus, cus, m.EventName, map[string]any{"tokens": 1000, "model": "big", "type": "input"}),  // 0.003
		event("d3-"+cus, cus, m.EventName, map[string]any{"tokens": "1000", "model": "small"}),               // 0.001
	}
	if res := w.ingest(t, evs...); res.Accepted != 3 {
		t.Fatalf("%+v", res)
	}
	if got := w.balance(t, wl.ID).Consumed.String(); got != "0.014" {
		t.Fatalf("consumed %s, want 0.014", got)
	}
	// Sent again — in one call, twice, with other whitespace: applied once.
	again := json.RawMessage(strings.Replace(string(evs[0]), ",", " , ", 1))
	res := w.ingest(t, evs[0], again, evs[1])
	if res.Accepted != 0 || res.Duplicates != 3 {
		t.Fatalf("resend: %+v", res)
	}
	// Same id, other content: refused and recorded, nothing moves.
	res = w.ingest(t, event("d1-"+cus, cus, m.EventName, map[string]any{"tokens": 5, "model": "big", "type": "output"}))
	if len(res.Rejected) != 1 || res.Rejected[0].Code != CodeConflictingEvent {
		t.Fatalf("conflict: %+v", res)
	}
	if got := w.balance(t, wl.ID).Consumed.String(); got != "0.014" {
		t.Fatalf("consumed %s after resends, want 0.014", got)
	}
}

// Poison events are recorded and acknowledged; good events around them apply.
func TestPoisonEventsAreRecorded(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	cus, wl := w.customer(t, "10")
	m := w.meter(t, Meter{Code: "calls", Aggregation: Count})
	w.price(t, m, `{"model":"per_unit","unit_price":"1"}`)
	noWallet, _ := w.wallets.CreateCustomer(ctx, wallet.Customer{ID: unique("nowallet-")})
	bad := []json.RawMessage{
		json.RawMessage(`{"event_id": "broken-` + cus + `", "customer_id": `),
		event("unknown-"+cus, "nobody-"+cus, m.EventName, nil),
		event("nometer-"+cus, cus, "never.metered", nil),
		event("nowallet-"+cus, noWallet.ID, m.EventName, nil),
		json.RawMessage(`{"event_id":"x y","customer_id":"c","event_name":"e"}`),
	}
	good := []json.RawMessage{event("ok1-"+cus, cus, m.EventName, nil), event("ok2-"+cus, cus, m.EventName, nil)}
	res := w.ingest(t, append(append([]json.RawMessage{good[0]}, bad...), good[1])...)
	if res.Accepted != 2 || len(res.Rejected) != len(bad) {
		t.Fatalf("%+v", res)
	}
	codes := map[string]bool{}
	for i, r := range res.Rejected {
		codes[r.Code] = true
		// Said in the event's terms, in request order, with its position.
		if strings.Contains(r.Detail, "Go ") || strings.Contains(r.Detail, "metering.") {
			t.Errorf("detail leaks internals: %q", r.Detail)
		}
		if r.Index == nil || *r.Index != i+1 {
			t.Errorf("rejection %d has index %v, want %d", i, r.Index, i+1)
		}
	}
	for _, c := range []string{CodeInvalidJSON, CodeUnknownCustomer, CodeNoMeter, CodeNoWallet, CodeInvalidEvent} {
		if !codes[c] {
			t.Errorf("no rejection %s in %+v", c, res.Rejected)
		}
	}
	if got := w.balance(t, wl.ID).Consumed.String(); got != "2" {
		t.Fatalf("consumed %s, want 2", got)
	}
	list, _, err := w.svc.Rejections(ctx, "", "", 500)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, r := range list {
		if strings.Contains(r.Raw, cus) || r.CustomerID == noWallet.ID {
			found++
		}
	}
	if found != len(bad)-1 { // the last bad event does not name this customer
		t.Fatalf("recorded %d rejections naming the test's ids, want %d", found, len(bad)-1)
	}
	// A rejected event does not take its id: fixed, it applies.
	if res := w.ingest(t, event("nometer-"+cus, cus, m.EventName, nil)); res.Accepted != 1 {
		t.Fatalf("corrected event: %+v", res)
	}
}

// Volume pricing crossing into a cheaper tier credits the difference back.
func TestVolumeCreditBack(t *testing.T) {
	w := newWorld(t)
	cus, wl := w.customer(t, "100")
	m := w.meter(t, Meter{Code: "units", Aggregation: Sum, Property: "n"})
	w.price(t, m, `{"model":"volume","tiers":[{"up_to":"1000","unit_price":"0.01"},{"up_to":null,"unit_price":"0.008"}]}`)
	w.ingest(t, event("v1-"+cus, cus, m.EventName, map[string]any{"n": 1000})) // 10
	if b := w.balance(t, wl.ID); b.Available.String() != "90" {
		t.Fatalf("after 1000: %+v", b)
	}
	w.ingest(t, event("v2-"+cus, cus, m.EventName, map[string]any{"n": 500})) // total 12: 2 back
	b := w.balance(t, wl.ID)
	if b.Available.String() != "88" {
		t.Fatalf("after 1500 at the volume rate, available %s, want 88", b.Available)
	}
}

func TestMeterAggregations(t *testing.T) {
	w := newWorld(t)
	cus, wl := w.customer(t, "100")
	uniq := w.meter(t, Meter{Code: "users", Aggregation: UniqueCount, Property: "user"})
	w.price(t, uniq, `{"model":"per_unit","unit_price":"1"}`)
	peak := w.meter(t, Meter{Code: "peak", Aggregation: Max, Property: "gpus"})
	w.price(t, peak, `{"model":"per_unit","unit_price":"10"}`)
	last := w.meter(t, Meter{Code: "seats", Aggregation: Latest, Property: "seats"})
	w.price(t, last, `{"model":"per_unit","unit_price":"0.5"}`)
	filtered := w.meter(t, Meter{Code: "prod", Aggregation: Count, Filters: map[string][]string{"env": {"prod"}}})
	w.price(t, filtered, `{"model":"per_unit","unit_price":"0.25"}`)
	t0 := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	at := func(sec int) string { return t0.Add(time.Duration(sec) * time.Second).Format(time.RFC3339) }
	ev := func(id, name, ts string, props map[string]any) json.RawMessage {
		b, _ := json.Marshal(map[string]any{"event_id": id + cus, "customer_id": cus, "event_name": name, "timestamp": ts, "properties": props})
		return b
	}
	res := w.ingest(t,
		ev("u1", uniq.EventName, at(0), map[string]any{"user": "ann"}),
		ev("u2", uniq.EventName, at(1), map[string]any{"user": "bob"}),
		ev("u3", uniq.EventName, at(2), map[string]any{"user": "ann"}), // seen: free
		ev("g1", peak.EventName, at(0), map[string]any{"gpus": 2}),
		ev("g2", peak.EventName, at(1), map[string]any{"gpus": 5}),
		ev("g3", peak.EventName, at(2), map[string]any{"gpus": 3}), // below the max: free
		ev("s1", last.EventName, at(5), map[string]any{"seats": 10}),
		ev("s2", last.EventName, at(1), map[string]any{"seats": 99}), // older: ignored
		ev("p1", filtered.EventName, at(0), map[string]any{"env": "prod"}),
		ev("p2", filtered.EventName, at(0), map[string]any{"env": "dev"}), // filtered out: no meter
	)
	if res.Accepted != 9 || len(res.Rejected) != 1 || res.Rejected[0].Code != CodeNoMeter {
		t.Fatalf("%+v", res)
	}
	// users 2 × 1 + peak 5 × 10 + seats 10 × 0.5 + prod 1 × 0.25
	if got := w.balance(t, wl.ID).Consumed.String(); got != "57.25" {
		t.Fatalf("consumed %s, want 57.25", got)
	}
	u, err := w.svc.Usage(context.Background(), cus, uniq.Code, t0.Add(-time.Hour), t0.Add(time.Hour), Hour)
	if err != nil {
		t.Fatal(err)
	}
	if u.Total.String() != "2" || u.Amount.String() != "2" || len(u.Series) == 0 {
		t.Fatalf("usage %+v", u)
	}
}

// pricing rounds to its own copy of the ledger's scale (it cannot import
// the ledger); the two must agree or deltas would not fit ledger amounts.
func TestPricingScaleIsTheLedgerScale(t *testing.T) {
	if pricing.Scale != ledger.Scale {
		t.Fatalf("pricing.Scale %d, ledger.Scale %d", pricing.Scale, ledger.Scale)
	}
}

// A meter priced in two assets charges the wallets the customer has; a
// missing wallet in one asset does not block the other.
func TestSecondAssetPriceDoesNotBlock(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	cus, wl := w.customer(t, "10")
	m := w.meter(t, Meter{Code: "calls", Aggregation: Count})
	w.price(t, m, `{"model":"per_unit","unit_price":"1"}`)
	var usd pricing.Price
	if err := json.Unmarshal([]byte(`{"model":"per_unit","unit_price":"0.01"}`), &usd); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.svc.CreatePrice(ctx, "", NewPrice{MeterCode: m.Code, Asset: "USD", Price: usd}); err != nil {
		t.Fatal(err)
	}
	if res := w.ingest(t, event("two-assets-"+cus, cus, m.EventName, nil)); res.Accepted != 1 {
		t.Fatalf("%+v", res)
	}
	if got := w.balance(t, wl.ID).Consumed.String(); got != "1" {
		t.Fatalf("CREDITS consumed %s, want 1", got)
	}
	// With no wallet in any priced asset, the event cannot be charged.
	bare, err := w.wallets.CreateCustomer(ctx, wallet.Customer{ID: unique("bare-")})
	if err != nil {
		t.Fatal(err)
	}
	if res := w.ingest(t, event("bare-"+bare.ID, bare.ID, m.EventName, nil)); len(res.Rejected) != 1 || res.Rejected[0].Code != CodeNoWallet {
		t.Fatalf("%+v", res)
	}
}
