package metering

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/ledger/ledgertest"
	"github.com/creditledger/creditledger/pricing"
	"github.com/creditledger/creditledger/wallet"
)

// Metering's rules with no database: a metering stage built in memory
// (customers, meters, prices, wallets, aggregates, system accounts), usage
// ops applied to it by the poster's own batch code (ledger/ledgertest), and
// the wallet side replaced by a charger that records what it is asked to
// charge. These tests run in `go test -short`; the PostgreSQL tests prove
// the SQL and the wallet side.

// mt0 is the in-memory tests' clock.
var mt0 = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

// charged is one ChargeUsage call.
type charged struct {
	wallet wallet.WalletID
	amount ledger.Amount
	line   wallet.UsageLine
}

// recorder is a Charger that records each charge and answers that the
// credits covered all of it. A charge of an op that fails is taken back
// with the op, as the wallet's would be.
type recorder struct{ calls []charged }

func (r *recorder) ChargeUsage(b ledger.Batch, id wallet.WalletID, _ wallet.SystemAccounts, amount ledger.Amount, line wallet.UsageLine) (wallet.Charge, error) {
	r.calls = append(r.calls, charged{id, amount, line})
	b.OnUndo(func() { r.calls = r.calls[:len(r.calls)-1] })
	return wallet.Charge{Amount: amount, Covered: amount}, nil
}

type memMetering struct {
	t   testing.TB
	b   *ledgertest.Batch
	st  *stage
	rec *recorder
	svc *Service
	n   int
}

// newMemMetering is an empty metering stage in an in-memory batch at mt0.
func newMemMetering(t testing.TB) *memMetering {
	t.Helper()
	b := ledgertest.NewBatch(t, mt0)
	st := &stage{customers: map[string]bool{}, meters: map[string][]*Meter{}, prices: map[MeterID]map[string]bookPrices{},
		wallets: map[[2]string]walletRow{}, aggs: map[aggKey]*aggregate{}, system: map[string]wallet.SystemAccounts{}}
	b.SetStage(module{}, st)
	rec := &recorder{}
	return &memMetering{t: t, b: b, st: st, rec: rec, svc: &Service{charger: rec, observer: NopObserver{}}}
}

// customer adds a customer with a wallet in each asset, made two days
// before mt0 (so the events' cycle is the wallet's first).
func (m *memMetering) customer(id string, assets ...string) {
	m.st.customers[id] = true
	for _, a := range assets {
		m.st.wallets[[2]string{id, a}] = walletRow{id: wallet.WalletID(uuid.New()), created: mt0.Add(-48 * time.Hour)}
		m.st.system[a] = wallet.SystemAccounts{}
	}
}

// meter adds a meter; it must be valid.
func (m *memMetering) meter(mt Meter) *Meter {
	m.t.Helper()
	mt.ID = uuid.New()
	if mt.EventName == "" {
		mt.EventName = "api.call"
	}
	if err := mt.Validate(); err != nil {
		m.t.Fatalf("meter %s: %v", mt.Code, err)
	}
	m.st.meters[mt.EventName] = append(m.st.meters[mt.EventName], &mt)
	return &mt
}

// price adds a price (its JSON, as POST /prices takes it) to a meter.
func (m *memMetering) price(mt *Meter, asset, spec string) {
	m.t.Helper()
	m.priceAt(mt, DefaultBook, asset, spec, Beginning, nil)
}

// priceAt adds a price of a scope in force from effective (until archived,
// if set) to a meter. Prices of a series must be added in effective order.
func (m *memMetering) priceAt(mt *Meter, scope, asset, spec string, effective time.Time, archived *time.Time) {
	m.t.Helper()
	var p pricing.Price
	if err := json.Unmarshal([]byte(spec), &p); err != nil {
		m.t.Fatalf("price %s: %v", spec, err)
	}
	if err := p.Validate(); err != nil {
		m.t.Fatalf("price %s: %v", spec, err)
	}
	byScope := m.st.prices[mt.ID]
	if byScope == nil {
		byScope = map[string]bookPrices{}
		m.st.prices[mt.ID] = byScope
	}
	if byScope[scope] == nil {
		byScope[scope] = bookPrices{}
	}
	byScope[scope].add(priceRow{asset: asset, dims: p.DimensionKey(), effective: effective, archived: archived, price: p})
}

// send applies one event of customer, parsed as ingest parses it, at ts:
// what it charged, or its refusal's code.
func (m *memMetering) send(customer, name, props string, ts time.Time) (Applied, string) {
	m.t.Helper()
	m.n++
	raw := fmt.Sprintf(`{"event_id":"e-%d","customer_id":%q,"event_name":%q,"timestamp":%q,"properties":%s}`,
		m.n, customer, name, ts.Format(time.RFC3339Nano), props)
	e, p, err := ParseEvent([]byte(raw), mt0)
	if err != nil {
		m.t.Fatalf("event %s: %v", raw, err)
	}
	out, err := m.b.Memory.Apply(context.Background(), &usageOp{svc: m.svc, event: e, props: p, source: "test", received: mt0})
	var rej *ledger.Rejection
	switch {
	case errors.As(err, &rej):
		return Applied{}, rej.Code
	case err != nil:
		m.t.Fatalf("event %s: %v", raw, err)
	case out.Rejection != nil:
		m.t.Fatalf("event %s: a usage op's refusal was recorded under its key: %v", raw, out.Rejection)
	}
	var a Applied
	if err := json.Unmarshal(out.Result, &a); err != nil {
		m.t.Fatal(err)
	}
	return a, ""
}
