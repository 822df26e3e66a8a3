package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// hotRound is one round of innocent traffic in the hot-row scenario.
type hotRound struct {
	debits  []*Attempts
	batches []*Attempts // POST /v1/events of innocent events only
	sent    []Sent      // innocent events, NATS and HTTP
	natsLog *PublishLog
	failed  map[string]int // innocent failures by customer
}

// TestChaosHotRowOverflow sends the hot-row overflow attack (two events
// that fill the attacker's poster shard's revenue counter row to just under
// 10^26) over NATS and over HTTP among innocent customers' events and
// debits. Innocent customers — those on the attackers' shards too — must
// keep getting 201 on debits and their events applied, before and after a
// ledgerd restart; the attack events that would overflow must be rejected
// and listed in GET /v1/events/rejected.
func TestChaosHotRowOverflow(t *testing.T) {
	concurrent(t)
	var (
		innocents = pick(40, 200)
		drainMax  = pick(20*time.Second, 30*time.Second)
		perOp     = pick(3*time.Second, 5*time.Second) // retries only settle: the first answer decides
	)
	ctx, cancel := context.WithTimeout(context.Background(), pick(4*time.Minute, 10*time.Minute))
	defer cancel()
	row := NewRow(t, "4. hot-row overflow attack")
	r := NewRig(ctx, t, "hotrow", suite.Cluster)
	seed := Seed(t, row)
	rng := rand.New(rand.NewPCG(seed, 4))

	// Two attackers on different shards, each its own victims.
	atkNATS := CustomerOnShard("atk-nats", 0)
	atkHTTP := CustomerOnShard("atk-http", 1)
	ids := append(Customers("h", innocents), atkNATS, atkHTTP)
	accts, err := CreateAccounts(ctx, r.API, ids, func(i int) string {
		if i >= innocents {
			return "10"
		}
		return "1000"
	}, 16)
	if err != nil {
		t.Fatal(err)
	}
	inno := accts[:innocents]
	x := NewExpectation(accts)
	row.Faults = fmt.Sprintf("2 attackers (shards %d, %d) × 2 events, NATS and HTTP", Shard(atkNATS), Shard(atkHTTP))
	victims := 0
	for _, a := range inno {
		if s := Shard(a.Customer); s == Shard(atkNATS) || s == Shard(atkHTTP) {
			victims++
		}
	}

	// The attack, mixed with innocent events.
	type atk struct {
		id, customer, tokens string
		http                 bool
		mustReject           bool // the filler: rejected whatever the fix
	}
	attacks := []atk{
		{"atk-nats-fill", atkNATS, HotFillTokens, false, true},
		{"atk-nats-top", atkNATS, HotTopTokens, false, false},
		{"atk-http-fill", atkHTTP, HotFillTokens, true, true},
		{"atk-http-top", atkHTTP, HotTopTokens, true, false},
	}
	for _, a := range attacks {
		if a.http {
			continue
		}
		if _, err := r.Broker.Publish(ctx, Msg{Subject: SubjectPrefix + "." + a.customer, ID: a.id,
			Data: AttackEvent(a.id, a.customer, a.tokens)}); err != nil {
			t.Fatal(err)
		}
	}
	var mixSent []Sent
	mixFailed := 0
	for i, a := range attacks {
		if !a.http {
			continue
		}
		evs := MakeEvents(rng, fmt.Sprintf("hot-mix%d", i), 20, innocents)
		raws := make([]json.RawMessage, 0, 21)
		for _, e := range evs[:10] {
			raws = append(raws, e.Encode(inno[e.Account].Customer))
		}
		raws = append(raws, AttackEvent(a.id, a.customer, a.tokens))
		for _, e := range evs[10:] {
			raws = append(raws, e.Encode(inno[e.Account].Customer))
		}
		at, res := PostEvents(ctx, r.API, a.id, raws, time.Now().Add(perOp))
		rejected := map[int]bool{}
		for _, rj := range res.Rejected {
			if rj.Index != nil {
				rejected[*rj.Index] = true
			}
		}
		row.Notef("POST /v1/events with %s among 20 innocent events: answers %v, last %s", a.id, at.Statuses, at.Last)
		for j, e := range evs {
			idx := j
			if j >= 10 {
				idx++
			}
			ok := at.FirstOK() && !rejected[idx]
			if !ok {
				mixFailed++
			}
			mixSent = append(mixSent, Sent{Event: e, Attempted: true, Acked: at.OK && !rejected[idx]})
		}
		if at.OK && a.mustReject && !rejected[10] {
			t.Errorf("%s: the 202 does not list it under rejected: %s", a.id, at.Last)
		}
	}
	time.Sleep(time.Second) // let the NATS attack land before the innocents' rounds

	var all []Sent
	all = append(all, mixSent...)
	round := func(label, tag string) hotRound {
		h := r.hotRound(ctx, t, inno, rng, tag, perOp)
		d, err := WaitDrained(ctx, r.Broker, r.DBURL, 0, drainMax)
		if err != nil {
			t.Fatal(err)
		}
		if !d.Done {
			row.Notef("%s: NATS not drained within %s: %s", label, drainMax, d)
		}
		return h
	}
	innocentFailures := mixFailed
	report := func(label string, h hotRound) {
		onVictims, elsewhere := 0, 0
		for c, n := range h.failed {
			if s := Shard(c); s == Shard(atkNATS) || s == Shard(atkHTTP) {
				onVictims += n
			} else {
				elsewhere += n
			}
		}
		row.Notef("%s: debits %s; innocent event batches %s; innocent debit/batch failures %d on the attackers' shards (%d of %d customers there), %d elsewhere",
			label, StatusCounts(h.debits), StatusCounts(h.batches), onVictims, victims, innocents, elsewhere)
	}
	countRound := func(label string, h hotRound) {
		n := 0
		for _, a := range h.debits {
			if !a.FirstOK() {
				n++
			}
		}
		for _, a := range h.batches {
			if !a.FirstOK() {
				n++
			}
		}
		if n > 0 {
			t.Errorf("%s: %d innocent debits or event batches did not succeed at once (%s)", label, n, StatusCounts(append(h.debits, h.batches...)))
		}
		innocentFailures += n
		all = append(all, h.sent...)
		row.Debits += len(h.debits) + len(h.batches)
	}
	h1 := round("after the attack", "r1")
	report("after the attack", h1)
	countRound("after the attack", h1)

	// The same after a restart: nothing of the attack may stick.
	if err := r.Ledgerd.Stop(); err != nil {
		row.Notef("ledgerd stop: %v", err)
	}
	if err := r.Ledgerd.Start(ctx, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	h2 := round("after a restart", "r2")
	report("after a restart", h2)
	countRound("after a restart", h2)
	if n, line := r.LogCount("batch failed"); n > 0 {
		row.Notef("ledgerd logged %d 'batch failed' errors, first: %s", n, line)
	}
	if n, line := r.LogCount("usage batch not applied"); n > 0 {
		row.Notef("ledgerd logged %d 'usage batch not applied' warnings, first: %s", n, line)
	}

	// Every debit settled; the attack events accounted for.
	for _, h := range []hotRound{h1, h2} {
		for _, a := range h.debits {
			if applied, known := a.Resolve(ctx, r.API); applied {
				x.Charge(a.Wallet, a.Amount)
			} else if !known {
				t.Errorf("debit %s: outcome unknown", a.Key)
			}
		}
	}
	rejected, err := r.API.Rejected(ctx)
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, rj := range rejected {
		listed[rj.EventID] = true
	}
	rows, err := ReadEvents(ctx, r.DBURL)
	if err != nil {
		t.Fatal(err)
	}
	isAttack := map[string]bool{}
	for i, a := range attacks {
		isAttack[a.id] = true
		applied := rows.IDs[a.id]
		row.Notef("attack event %s (tokens %s): applied %v, listed in /v1/events/rejected %v", a.id, a.tokens, applied, listed[a.id])
		if applied {
			x.Charge(accts[innocents+i/2].Wallet, AttackCharge(a.tokens))
		}
		switch {
		case a.mustReject && (applied || !listed[a.id]):
			t.Errorf("attack event %s: applied %v, listed as rejected %v; want rejected and listed", a.id, applied, listed[a.id])
		case applied == listed[a.id]:
			t.Errorf("attack event %s: applied %v and listed as rejected %v: want exactly one", a.id, applied, listed[a.id])
		}
	}
	row.Events = len(all)
	v := CheckEvents(ctx, t, r, accts, x, all, func(id string) bool { return isAttack[id] })
	Judge(ctx, t, r, row, accts, x, v, innocentFailures)
}

// hotRound is one round of innocent traffic: three debits of 0.6 per
// customer (all at once, 64 in flight), three NATS events per
// customer, and one HTTP event per customer in batches of 20. The events
// are of 100,000 to 1,000,000 tokens (0.3 to 3 credits): ordinary usage,
// and each more than what an overflowing row has left. An innocent
// operation fails when its first answer is not its success (no fault is
// injected here: a 5xx is a failure, though it is retried to settle it).
func (r *Rig) hotRound(ctx context.Context, t *testing.T, inno []Account, rng *rand.Rand, tag string, perOp time.Duration) hotRound {
	t.Helper()
	h := hotRound{failed: map[string]int{}}
	var mu sync.Mutex
	prefix := "hot-" + tag
	natsEvs := make([]Event, 0, 3*len(inno))
	for i := range inno {
		for k := range 3 {
			natsEvs = append(natsEvs, Event{ID: fmt.Sprintf("%s-nats-%d-%d", prefix, i, k), Account: i, Tokens: bigTokens(rng)})
		}
	}
	httpEvs := make([]Event, len(inno))
	for i := range inno {
		httpEvs[i] = Event{ID: fmt.Sprintf("%s-http-%d", prefix, i), Account: i, Tokens: bigTokens(rng)}
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		msgs := make([]Msg, len(natsEvs))
		for i, e := range natsEvs {
			msgs[i] = EventMsg(e, inno[e.Account].Customer)
		}
		h.natsLog = r.Broker.PublishPaced(ctx, msgs, 0)
	})
	wg.Go(func() {
		_ = Parallel(ctx, (len(httpEvs)+19)/20, 8, func(ctx context.Context, b int) error {
			batch := httpEvs[b*20 : min(b*20+20, len(httpEvs))]
			raws := make([]json.RawMessage, len(batch))
			for j, e := range batch {
				raws[j] = e.Encode(inno[e.Account].Customer)
			}
			a, res := PostEvents(ctx, r.API, fmt.Sprintf("%s-http-%d", prefix, b), raws, time.Now().Add(perOp))
			rejected := map[int]bool{}
			for _, rj := range res.Rejected {
				if rj.Index != nil {
					rejected[*rj.Index] = true
				}
			}
			mu.Lock()
			defer mu.Unlock()
			h.batches = append(h.batches, a)
			for j, e := range batch {
				h.sent = append(h.sent, Sent{Event: e, Attempted: true, Acked: a.OK && !rejected[j]})
				if !a.FirstOK() || rejected[j] {
					h.failed[inno[e.Account].Customer]++
				}
			}
			return nil
		})
	})
	_ = Parallel(ctx, 3*len(inno), 64, func(ctx context.Context, n int) error {
		i, k := n/3, n%3
		a := Debit(ctx, r.API, inno[i].Wallet, fmt.Sprintf("%s-debit-%d-%d", prefix, i, k), decimal.RequireFromString("0.6"), time.Now().Add(perOp))
		mu.Lock()
		h.debits = append(h.debits, a)
		if !a.FirstOK() {
			h.failed[inno[i].Customer]++
		}
		mu.Unlock()
		return nil
	})
	wg.Wait()
	for i, e := range natsEvs {
		h.sent = append(h.sent, Sent{Event: e, Attempted: h.natsLog.Attempted[i], Acked: h.natsLog.Acked[i]})
	}
	return h
}

func bigTokens(rng *rand.Rand) int64 { return 100_000 + rng.Int64N(900_001) }
