package metering

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/pricing"
	"github.com/creditledger/creditledger/wallet"
)

// A usage event's charge: which meters it moves and by how much (matching,
// dimensions, aggregation), which price and wallet each meter charges, and
// the marginal amount price(q1) − price(q0) the wallet is charged.

// KindUsage is the journal kind of a usage event's entry.
const KindUsage = "usage"

// usageOp applies one event: every meter it matches moves, and every price
// on those meters charges the customer's wallet of its asset.
type usageOp struct {
	svc      *Service
	event    Event
	props    properties
	source   string
	received time.Time
	fp       []byte // Fingerprint, computed once: the ledger asks, and the event row stores it
}

func (o *usageOp) Key() string { return "event:" + o.event.EventID }

func (o *usageOp) Kind() string { return KindUsage }

func (o *usageOp) ShardKey() uint64 { return wallet.Route(o.event.CustomerID) }

func (o *usageOp) Module() string { return moduleName }

func (o *usageOp) Declare(*ledger.Decl) {}

// KeyOnlyIfApplied: a refused event does not take its id (see
// event_rejections), so its corrected resend still applies.
func (o *usageOp) KeyOnlyIfApplied() bool { return true }

// Fingerprint covers the event as sent, with properties in canonical form,
// so a resend with other whitespace or key order is the same event and one
// with other content is a conflict.
func (o *usageOp) Fingerprint() []byte {
	if o.fp != nil {
		return o.fp
	}
	props, _ := json.Marshal(map[string]any(o.props)) // decoded from JSON: cannot fail
	o.fp = ledger.Fingerprint(o.Kind(), struct {
		ID, Customer, Name string
		TS                 *time.Time
		Props              json.RawMessage
	}{o.event.EventID, o.event.CustomerID, o.event.EventName, o.event.sentTimestamp, props})
	return o.fp
}

// MeterCharge is what an event did to one meter in one asset.
type MeterCharge struct {
	Meter          string           `json:"meter"`
	Asset          string           `json:"asset,omitempty"`
	Dimensions     json.RawMessage  `json:"dimensions,omitempty"`
	QuantityBefore decimal.Decimal  `json:"quantity_before"`
	QuantityAfter  decimal.Decimal  `json:"quantity_after"`
	Amount         ledger.Amount    `json:"amount"`
	Overage        ledger.Amount    `json:"overage"` // the part credits did not cover (negative: credited back)
	WalletID       *wallet.WalletID `json:"wallet_id,omitempty"`
}

// Applied is a usage event's stored result.
type Applied struct {
	EventID string        `json:"event_id"`
	Charges []MeterCharge `json:"charges"`
	Misses  []Miss        `json:"misses,omitempty"`
}

// Miss is a meter that matched an event but could not count it — the
// property it aggregates is absent or not a number — while another meter
// did: the event applies for the meters that can count it, and the miss is
// kept on the event (events.misses) and in its result. A value that is
// there but out of bounds (beyond MaxQuantity, negative for a sum, a
// unique value over 256 bytes) is not a miss: it refuses the whole event
// (invalid_value), as it is a sender's bug or hostile input, and a refused
// event does not take its id, so the corrected event can still apply in
// full; a miss takes it.
type Miss struct {
	Meter  string `json:"meter"`
	Reason string `json:"reason"`
}

func (o *usageOp) Apply(ctx context.Context, b ledger.Batch) (any, error) {
	st, err := stageOf(b)
	if err != nil {
		return nil, err
	}
	e := o.event
	if !st.customers[e.CustomerID] {
		return nil, ledger.Reject(CodeUnknownCustomer, "no customer %q", e.CustomerID)
	}
	var matched []*Meter
	for _, m := range st.meters[e.EventName] {
		if m.matches(e.EventName, o.props) {
			matched = append(matched, m)
		}
	}
	if len(matched) == 0 {
		return nil, ledger.Reject(CodeNoMeter, "no meter counts %q events with these properties", e.EventName)
	}
	res := Applied{EventID: e.EventID, Charges: []MeterCharge{}}
	counting, err := countable(matched, o.props, &res)
	if err != nil {
		return nil, err
	}
	var (
		owner ledger.OwnerID
		recs  []usageRecord
	)
	for _, c := range counting {
		m, s := c.meter, c.step
		dims := m.dimensions(o.props)
		dk := dimsKey(dims)
		targets := st.targets(m, e.CustomerID, dims, *e.Timestamp)
		// A meter priced in several assets charges the wallets the customer
		// has; only a customer with none of them cannot be charged at all.
		if !anyWallet(targets) {
			return nil, ledger.Reject(CodeNoWallet, "meter %s is priced in %s but customer %q has no wallet in it",
				m.Code, targetAssets(targets), e.CustomerID)
		}
		for _, t := range targets {
			if t.missingWallet {
				continue
			}
			key := aggKey{meter: m.ID, customer: e.CustomerID, dims: dk, asset: t.asset, period: t.period}
			agg := st.aggregate(key)
			saved := *agg
			savedSeen := len(agg.seen)
			q0, q1 := agg.apply(m, s, *e.Timestamp)
			b.OnUndo(func() {
				if len(agg.seen) != savedSeen {
					delete(agg.seen, s.unique)
				}
				seen := agg.seen
				*agg = saved
				agg.seen = seen
			})
			charge := MeterCharge{Meter: m.Code, Asset: t.asset, QuantityBefore: q0, QuantityAfter: q1, WalletID: t.wallet}
			if len(dims) > 0 {
				charge.Dimensions = json.RawMessage(dk)
			}
			if t.price != nil {
				marginal := t.price.Marginal(q0, q1)
				delta, err := ledger.NewAmount(marginal)
				if err != nil || ledger.CheckOpAmount(delta) != nil {
					return nil, ledger.Reject(CodeLimitExceeded, "meter %s: the charge %s exceeds the ledger's limit of %s per operation",
						m.Code, marginal, ledger.MaxOpAmount)
				}
				if total, err := ledger.NewAmount(agg.amount.Add(marginal)); err != nil || total.Decimal().Abs().Cmp(maxRunningTotal) >= 0 {
					return nil, ledger.Reject(CodeLimitExceeded, "meter %s: the period's running charge would exceed %s",
						m.Code, maxRunningTotal)
				}
				sys, ok := st.system[t.asset]
				if !ok {
					return nil, fmt.Errorf("system accounts of %s not loaded", t.asset)
				}
				line := wallet.UsageLine{Meter: m.ID, MeterCode: m.Code, DimsKey: dk, Dims: dims, Quantity: q1.Sub(q0)}
				if t.price.Model == pricing.PerUnit {
					line.UnitPrice = &t.price.UnitPrice
				}
				c, err := o.svc.charger.ChargeUsage(b, *t.wallet, sys, delta, line)
				if err != nil {
					return nil, err
				}
				agg.amount = agg.amount.Add(delta.Decimal())
				charge.Amount, charge.Overage = delta, c.Overage
				if owner.IsZero() {
					owner = *t.wallet
				}
			}
			recs = append(recs, usageRecord{event: e, meter: m, charge: charge, dimsKey: dk, step: s, period: t.period})
			res.Charges = append(res.Charges, charge)
		}
	}
	// Described before the rows name the entry: the event's entry is its
	// batch's summary for the wallet (owner), known only now.
	b.Describe(owner, "usage: "+e.EventName, nil)
	for _, r := range recs {
		r.entry = b.EntryID()
		st.record(b, r)
	}
	st.addEvent(b, eventRow{event: e, source: o.source, received: o.received, entry: b.EntryID(), misses: res.Misses, fingerprint: o.Fingerprint()})
	return res, nil
}

// counted is a matched meter that can count the event, with what it counts.
type counted struct {
	meter *Meter
	step  step
}

// countable splits the matched meters into those that count the event and
// misses (added to res). A value out of bounds refuses the event, and so
// does a miss of every meter.
func countable(matched []*Meter, p properties, res *Applied) ([]counted, error) {
	var (
		out     []counted
		reasons []string
	)
	for _, m := range matched {
		s, err := m.value(p)
		var bound *boundError
		switch {
		case errors.As(err, &bound):
			return nil, ledger.Reject(CodeInvalidValue, "meter %s: %v", m.Code, err)
		case err != nil:
			res.Misses = append(res.Misses, Miss{Meter: m.Code, Reason: err.Error()})
			reasons = append(reasons, fmt.Sprintf("meter %s: %v", m.Code, err))
		default:
			out = append(out, counted{m, s})
		}
	}
	if len(out) == 0 {
		return nil, ledger.Reject(CodeInvalidValue, "%s", strings.Join(reasons, "; "))
	}
	return out, nil
}

// boundError is a value that is there but beyond what a meter may count:
// the whole event is refused, never a miss (see Miss).
type boundError struct{ error }

func (e *boundError) Unwrap() error { return e.error }

func outOfBounds(format string, args ...any) error {
	return &boundError{fmt.Errorf(format, args...)}
}

// target is one asset an event's meter is charged in, or the one
// unpriced target that only counts it.
type target struct {
	asset         string
	price         *pricing.Price
	wallet        *wallet.WalletID
	period        time.Time
	missingWallet bool
}

// targets are the assets an event's meter is charged in at t, each with
// the price that applies (see Books for the order of books) and the
// customer's wallet of that asset, and the period the usage counts in: the
// subscription's period, or the cycle of the wallet charged. A meter no
// price covers still counts, on a calendar month (or the subscription's
// period): one target with no asset.
func (s *stage) targets(m *Meter, customer string, dims map[string]string, t time.Time) []target {
	books := s.prices[m.ID]
	var (
		chosen     map[string]*pricing.Price
		period     time.Time
		subscribed bool
	)
	pick := func(bp bookPrices) bool {
		var cands map[string][]pricing.Price
		any := bp.at(t, func(asset string, p *pricing.Price) {
			if _, done := chosen[asset]; done {
				return
			}
			if cands == nil {
				cands = map[string][]pricing.Price{}
			}
			cands[asset] = append(cands[asset], *p)
		})
		for asset, ps := range cands {
			if i := pricing.SelectIndex(ps, dims); i >= 0 {
				p := ps[i]
				chosen[asset] = &p
			}
		}
		return any
	}
	chosen = map[string]*pricing.Price{}
	if bk := s.books[customer]; bk != nil {
		var scopes []string
		scopes, period, subscribed = bk.At(t)
		priced := false
		for _, sc := range scopes {
			if pick(books[sc]) {
				priced = true
			}
		}
		// A meter the subscription prices is priced by it alone.
		if !priced {
			pick(books[DefaultBook])
		}
	} else {
		pick(books[DefaultBook])
	}
	if len(chosen) == 0 {
		if !subscribed {
			period = calendarMonth(t)
		}
		return []target{{period: period}}
	}
	assets := slices.Sorted(maps.Keys(chosen))
	out := make([]target, 0, len(assets))
	for _, asset := range assets {
		tg := target{asset: asset, price: chosen[asset], period: period}
		if w, ok := s.wallets[[2]string{customer, asset}]; ok {
			id := w.id
			tg.wallet = &id
			if !subscribed {
				tg.period, _ = wallet.Cycle(w.created, t)
			}
		} else {
			tg.missingWallet = true
		}
		out = append(out, tg)
	}
	return out
}

func calendarMonth(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

func anyWallet(ts []target) bool {
	for _, t := range ts {
		if !t.missingWallet {
			return true
		}
	}
	return false
}

func targetAssets(ts []target) string {
	var out []string
	for _, t := range ts {
		out = append(out, t.asset)
	}
	return strings.Join(out, ", ")
}

// matches reports whether the meter counts the event.
func (m *Meter) matches(name string, p properties) bool {
	if name != m.EventName {
		return false
	}
	for prop, accepted := range m.Filters {
		v, ok := p.str(prop)
		if !ok {
			return false
		}
		found := false
		for _, a := range accepted {
			if a == v {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// dimensions are the event's group-by values (absent properties are "").
func (m *Meter) dimensions(p properties) map[string]string {
	dims := make(map[string]string, len(m.GroupBy))
	for _, g := range m.GroupBy {
		v, _ := p.str(g)
		dims[g] = v
	}
	return dims
}

// dimsKey is the canonical text of a dimension set: sorted keys, JSON.
func dimsKey(dims map[string]string) string {
	if len(dims) == 0 {
		return "{}"
	}
	keys := make([]string, 0, len(dims))
	for k := range dims {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b := []byte{'{'}
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		kb, _ := json.Marshal(k) // a string: cannot fail
		vb, _ := json.Marshal(dims[k])
		b = append(append(append(b, kb...), ':'), vb...)
	}
	return string(append(b, '}'))
}

// MaxQuantity bounds what one event may count: 10^15 units (tokens,
// bytes, seconds). With MaxOpAmount it keeps a period's running totals far
// from what their columns hold (see maxRunningTotal).
var MaxQuantity = decimal.New(1, 15)

// maxRunningTotal bounds an aggregate's running charge (NUMERIC(38,12)
// holds values below 10^26): an event that would take it there is refused
// alone, and the customer's next period starts from zero.
var maxRunningTotal = decimal.New(1, ledger.MaxIntegerDigits)

// step is what one event does to an aggregate.
type step struct {
	value  decimal.Decimal // the property's value (1 for count)
	unique string          // unique_count: the value seen
}

// value extracts what the meter aggregates from the event.
func (m *Meter) value(p properties) (step, error) {
	switch m.Aggregation {
	case Count:
		return step{value: decimal.NewFromInt(1)}, nil
	case UniqueCount:
		v, ok := p.str(m.Property)
		if !ok {
			return step{}, fmt.Errorf("property %q is missing", m.Property)
		}
		if len(v) > 256 {
			return step{}, outOfBounds("property %q is longer than 256 characters", m.Property)
		}
		return step{value: decimal.NewFromInt(1), unique: v}, nil
	}
	d, err := p.number(m.Property)
	if err != nil {
		return step{}, err
	}
	if d.Abs().Cmp(MaxQuantity) > 0 {
		return step{}, outOfBounds("property %q is %s, beyond the %s one event may count", m.Property, d, MaxQuantity)
	}
	if m.Aggregation == Sum && d.IsNegative() {
		return step{}, outOfBounds("property %q is negative; a sum meter counts usage, which only grows", m.Property)
	}
	return step{value: d}, nil
}

// aggregate is the running quantity of one meter, customer, dimension set,
// asset and cycle.
type aggregate struct {
	quantity decimal.Decimal
	latestTS *time.Time
	amount   decimal.Decimal
	seen     map[string]bool // unique_count: values seen in this batch or loaded
	exists   bool
	dirty    bool
}

// apply moves the aggregate by one event and returns q0 and q1.
func (a *aggregate) apply(m *Meter, s step, ts time.Time) (q0, q1 decimal.Decimal) {
	q0 = a.quantity
	switch m.Aggregation {
	case Count, Sum:
		a.quantity = a.quantity.Add(s.value)
	case Max:
		if !a.exists && !a.dirty || s.value.GreaterThan(a.quantity) {
			a.quantity = s.value
		}
	case UniqueCount:
		if !a.seen[s.unique] {
			a.seen[s.unique] = true
			a.quantity = a.quantity.Add(decimal.NewFromInt(1))
		}
	case Latest:
		// Events arrive out of order; the latest by timestamp wins.
		if a.latestTS == nil || !ts.Before(*a.latestTS) {
			a.quantity = s.value
			t := ts
			a.latestTS = &t
		}
	}
	a.dirty = true
	return q0, a.quantity
}
