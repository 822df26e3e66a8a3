package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// poisonOp is one operation that can never be stored as sent.
type poisonOp struct {
	label  string
	method string
	path   string
	body   json.RawMessage
	wallet string          // for a debit or grant: where a 201 would land
	debit  decimal.Decimal // its amount if it is a debit
	grant  decimal.Decimal // its amount if it is a grant
	resp   Response
	err    error
}

// poisonEvent is an event that must be rejected (and recorded, found by
// the marker in its raw text).
type poisonEvent struct {
	label  string
	marker string
	raw    []byte
	msg    *Msg // over NATS when set
}

// TestChaosPoisonAmongInnocents fires ~150 concurrent innocent debits
// together with poison operations — NUL characters in a debit description
// and metadata, a grant description, a customer name, a meter code, event
// properties and event ids; a grant that overflows its funding counter row;
// event ids with odd characters; a NATS message with a raw NUL byte — and
// sends innocent events over HTTP and NATS beside poison ones. Every
// innocent operation must succeed at once; every poison one must be
// refused with a 4xx or rejected (and listed in GET /v1/events/rejected).
func TestChaosPoisonAmongInnocents(t *testing.T) {
	concurrent(t)
	var (
		innocents = pick(30, 100)
		rounds    = pick(1, 3)
		debitsN   = 150
		drainMax  = pick(20*time.Second, 30*time.Second)
		perOp     = pick(3*time.Second, 5*time.Second) // retries only settle: the first answer decides
	)
	ctx, cancel := context.WithTimeout(context.Background(), pick(3*time.Minute, 10*time.Minute))
	defer cancel()
	row := NewRow(t, "5. NUL and overflow among innocent operations")
	r := NewRig(ctx, t, "poison", suite.Cluster)
	seed := Seed(t, row)
	rng := rand.New(rand.NewPCG(seed, 5))

	// One poison customer on every shard: every poster shard gets poison.
	var psn []string
	for s := range PosterShards {
		psn = append(psn, CustomerOnShard("psn", s))
	}
	accts, err := CreateAccounts(ctx, r.API, append(Customers("i", innocents), psn...), func(i int) string {
		if i >= innocents {
			return "10"
		}
		return "1000"
	}, 16)
	if err != nil {
		t.Fatal(err)
	}
	inno, bad := accts[:innocents], accts[innocents:]
	x := NewExpectation(accts)
	row.Faults = fmt.Sprintf("%d rounds × (%d concurrent innocent debits + poison ops and events on all %d shards)", rounds, debitsN, PosterShards)

	var (
		allDebits  []*Attempts
		allBatches []*Attempts
		allSent    []Sent
		poisonOps  []*poisonOp
		poisonEvs  []poisonEvent
		innocent   int
	)
	for round := range rounds {
		tag := fmt.Sprintf("r%d", round)
		// The poison operations of the round.
		var ops []*poisonOp
		for _, b := range bad {
			dpath, gpath := "/v1/wallets/"+b.Wallet+"/debits", "/v1/wallets/"+b.Wallet+"/grants"
			ops = append(ops,
				&poisonOp{label: "debit, NUL in description", method: http.MethodPost, path: dpath, wallet: b.Wallet,
					debit: decimal.NewFromInt(1), body: rawJSON(member("amount", `"1"`), member("description", str("x"+NUL+"y")))},
				&poisonOp{label: "debit, NUL in metadata", method: http.MethodPost, path: dpath, wallet: b.Wallet,
					debit: decimal.NewFromInt(1), body: rawJSON(member("amount", `"1"`), member("metadata", rawJSONString(member("note", str("x"+NUL+"y")))))},
				&poisonOp{label: "grant of 99999999999999999999999999", method: http.MethodPost, path: gpath, wallet: b.Wallet,
					grant: decimal.RequireFromString("99999999999999999999999999"), body: rawJSON(member("amount", `"99999999999999999999999999"`), member("kind", `"paid"`))},
				&poisonOp{label: "grant, NUL in description", method: http.MethodPost, path: gpath, wallet: b.Wallet,
					grant: decimal.NewFromInt(5), body: rawJSON(member("amount", `"5"`), member("kind", `"paid"`), member("description", str("x"+NUL+"y")))},
			)
		}
		ops = append(ops,
			&poisonOp{label: "customer, NUL in name", method: http.MethodPost, path: "/v1/customers",
				body: rawJSON(member("id", str("psn-name-"+tag)), member("name", str("x"+NUL+"y")))},
			&poisonOp{label: "meter, NUL in code", method: http.MethodPost, path: "/v1/meters",
				body: rawJSON(member("code", str("m"+NUL+tag)), member("event_name", str(EventName)), member("aggregation", `"sum"`), member("property", `"tokens"`))},
		)
		// Poison events: over HTTP among innocent ones, and over NATS.
		var httpPoison, natsPoison []poisonEvent
		for i, b := range bad {
			c := b.Customer
			mk := func(kind string) string { return fmt.Sprintf("mark-%s-%s-%d", tag, kind, i) }
			httpPoison = append(httpPoison,
				poisonEvent{label: "NUL in a property", marker: mk("hprop"), raw: []byte(poisonEventJSON(str("psn-"+tag+"-hprop-"+fmt.Sprint(i)), c, EventName, mk("hprop"), member("note", str("x"+NUL+"y"))))},
				poisonEvent{label: "NUL in the event id", marker: mk("hid"), raw: []byte(poisonEventJSON(str("psn-"+tag+NUL+"hid"+fmt.Sprint(i)), c, EventName, mk("hid")))},
				poisonEvent{label: "NUL in the event name", marker: mk("hname"), raw: []byte(poisonEventJSON(str("psn-"+tag+"-hname-"+fmt.Sprint(i)), c, "completion"+NUL, mk("hname")))},
			)
			natsPoison = append(natsPoison,
				natsPoisonEvent(fmt.Sprintf("psn-%s-nprop-%d", tag, i), c, "NUL in a property", mk("nprop"),
					poisonEventJSON(str(fmt.Sprintf("psn-%s-nprop-%d", tag, i)), c, EventName, mk("nprop"), member("note", str("x"+NUL+"y")))),
				natsPoisonEvent(fmt.Sprintf("psn-%s-nid-%d", tag, i), c, "NUL in the event id", mk("nid"),
					poisonEventJSON(str(fmt.Sprintf("psn-%s%snid-%d", tag, NUL, i)), c, EventName, mk("nid"))),
				natsPoisonEvent(fmt.Sprintf("psn-%s-nraw-%d", tag, i), c, "a raw NUL byte in the message", mk("nraw"),
					poisonEventJSON(str(fmt.Sprintf("psn-%s-nraw-%d", tag, i)), c, EventName, mk("nraw"))+"\x00"),
			)
		}
		for j, id := range []string{"psn space " + tag, "psn-ü-" + tag, "psn\\ttab" + tag, "<psn>" + tag, strings.Repeat("p", 200) + tag} {
			mk := fmt.Sprintf("mark-%s-odd-%d", tag, j)
			httpPoison = append(httpPoison, poisonEvent{label: "odd event id", marker: mk, raw: []byte(poisonEventJSON(str(id), bad[j%len(bad)].Customer, EventName, mk))})
		}
		poisonEvs = append(append(poisonEvs, httpPoison...), natsPoison...)
		poisonOps = append(poisonOps, ops...)

		// Innocent traffic of the round.
		debits := make([]*Attempts, debitsN)
		httpEvs := MakeEvents(rng, "psn-inno-http-"+tag, 40, innocents)
		natsEvs := MakeEvents(rng, "psn-inno-nats-"+tag, 80, innocents)
		amounts := make([]decimal.Decimal, debitsN)
		wallets := make([]string, debitsN)
		for i := range debitsN {
			amounts[i], wallets[i] = decimal.New(1+rng.Int64N(99), -2), inno[rng.IntN(innocents)].Wallet
		}
		go1 := make(chan struct{})
		var wg sync.WaitGroup
		for i := range debitsN {
			wg.Go(func() {
				<-go1
				debits[i] = Debit(ctx, r.API, wallets[i], fmt.Sprintf("psn-inno-%s-%d", tag, i), amounts[i], time.Now().Add(perOp))
			})
		}
		for _, op := range ops {
			wg.Go(func() {
				<-go1
				op.resp, op.err = r.API.Do(ctx, op.method, op.path, "", op.body)
			})
		}
		// Two HTTP batches, innocents with poison among them.
		var batchMu sync.Mutex
		var batches []*Attempts
		var sent []Sent
		for half := range 2 {
			evs := httpEvs[half*20 : half*20+20]
			var mine []poisonEvent
			for p := half; p < len(httpPoison); p += 2 {
				mine = append(mine, httpPoison[p])
			}
			var raws []json.RawMessage
			isPoison := map[int]bool{}
			interleave(len(evs), len(mine), 2, func(k int) {
				raws = append(raws, evs[k].Encode(inno[evs[k].Account].Customer))
			}, func(p int) {
				isPoison[len(raws)] = true
				raws = append(raws, json.RawMessage(mine[p].raw))
			})
			wg.Go(func() {
				<-go1
				a, res := PostEvents(ctx, r.API, fmt.Sprintf("events %s-%d", tag, half), raws, time.Now().Add(perOp))
				rejected := map[int]bool{}
				for _, rj := range res.Rejected {
					if rj.Index != nil {
						rejected[*rj.Index] = true
					}
				}
				batchMu.Lock()
				defer batchMu.Unlock()
				batches = append(batches, a)
				k := 0
				for idx := range raws {
					if isPoison[idx] {
						if a.OK && !rejected[idx] {
							t.Errorf("POST /v1/events %s: poison event at index %d not listed as rejected: %.300s", tag, idx, raws[idx])
						}
						continue
					}
					e := evs[k]
					k++
					ok := a.OK && !rejected[idx]
					sent = append(sent, Sent{Event: e, Attempted: true, Acked: ok})
					if !a.FirstOK() || rejected[idx] {
						innocent++
					}
				}
			})
		}
		// NATS: innocent events with the poison ones among them.
		var msgs []Msg
		interleave(len(natsEvs), len(natsPoison), 6, func(k int) {
			msgs = append(msgs, EventMsg(natsEvs[k], inno[natsEvs[k].Account].Customer))
		}, func(p int) {
			msgs = append(msgs, *natsPoison[p].msg)
		})
		var plog *PublishLog
		wg.Go(func() {
			<-go1
			plog = r.Broker.PublishPaced(ctx, msgs, 0)
		})
		close(go1)
		wg.Wait()
		d, err := WaitDrained(ctx, r.Broker, r.DBURL, 0, drainMax)
		if err != nil {
			t.Fatal(err)
		}
		if !d.Done {
			t.Errorf("round %d: NATS not drained within %s (poison redelivered?): %s", round+1, drainMax, d)
			row.Notef("round %d: NATS not drained within %s: %s", round+1, drainMax, d)
		}
		innoMsg := 0
		for k, m := range msgs {
			if !strings.HasPrefix(m.ID, "psn-inno-") {
				continue
			}
			sent = append(sent, Sent{Event: natsEvs[innoMsg], Attempted: plog.Attempted[k], Acked: plog.Acked[k]})
			innoMsg++
		}
		n := 0
		for _, a := range debits {
			if !a.FirstOK() {
				n++
			}
		}
		if n > 0 {
			t.Errorf("round %d: %d of %d innocent debits did not get 201 at once: %s", round+1, n, debitsN, StatusCounts(debits))
		}
		innocent += n
		row.Notef("round %d: innocent debits %s; innocent event batches %s", round+1, StatusCounts(debits), StatusCounts(batches))
		allDebits = append(allDebits, debits...)
		allBatches = append(allBatches, batches...)
		allSent = append(allSent, sent...)
	}
	row.Debits = len(allDebits) + len(allBatches)
	row.Events = len(allSent)
	if n, line := r.LogCount("batch failed"); n > 0 {
		row.Notef("ledgerd logged %d 'batch failed' errors, first: %s", n, line)
	}
	if n, line := r.LogCount("usage batch not applied"); n > 0 {
		row.Notef("ledgerd logged %d 'usage batch not applied' warnings, first: %s", n, line)
	}

	// Poison: refused with a 4xx, each; what was accepted is accounted for.
	answers := map[string][]*poisonOp{}
	var labels []string
	for _, op := range poisonOps {
		if answers[op.label] == nil {
			labels = append(labels, op.label)
		}
		answers[op.label] = append(answers[op.label], op)
		if op.resp.Status == http.StatusCreated {
			if op.grant.IsPositive() {
				x.AddGrant(op.wallet, op.grant)
			} else if op.debit.IsPositive() {
				x.Charge(op.wallet, op.debit)
			}
		}
	}
	for _, label := range labels {
		ops := answers[label]
		var as []*Attempts
		bad := 0
		for _, op := range ops {
			status := op.resp.Status
			if op.err != nil {
				status = 0
			}
			as = append(as, &Attempts{Statuses: []int{status}})
			if status < 400 || status >= 500 {
				bad++
			}
		}
		row.Notef("poison %s: %s", label, StatusCounts(as))
		if bad > 0 {
			t.Errorf("poison %s: %d of %d not refused with a 4xx (%s), e.g. %s", label, bad, len(ops), StatusCounts(as), ops[0].resp)
		}
	}
	rejected, err := r.API.Rejected(ctx)
	if err != nil {
		t.Fatal(err)
	}
	notListed := map[string]int{}
	var kinds []string
	for _, pe := range poisonEvs {
		found := false
		for _, rj := range rejected {
			found = found || pe.is(rj)
		}
		over := "HTTP"
		if pe.msg != nil {
			over = "NATS"
		}
		kind := over + ", " + pe.label
		if !found {
			if notListed[kind] == 0 {
				kinds = append(kinds, kind)
			}
			notListed[kind]++
		}
	}
	for _, k := range kinds {
		t.Errorf("poison events (%s): %d not listed in /v1/events/rejected", k, notListed[k])
		row.Notef("poison events (%s): %d not listed in /v1/events/rejected", k, notListed[k])
	}
	for _, a := range allDebits {
		if applied, known := a.Resolve(ctx, r.API); applied {
			x.Charge(a.Wallet, a.Amount)
		} else if !known {
			t.Errorf("debit %s: outcome unknown", a.Key)
		}
	}
	if innocent > 0 {
		t.Errorf("%d innocent operations failed", innocent)
	}
	v := CheckEvents(ctx, t, r, accts, x, allSent, nil)
	Judge(ctx, t, r, row, accts, x, v, innocent)
}

// poisonEventJSON is an event whose id and name are given as JSON text
// (so NUL escapes stay escapes) with a marker property and more members.
func poisonEventJSON(idJSON, customer, name, marker string, props ...string) string {
	props = append([]string{member("tokens", "5"), member("marker", str(marker))}, props...)
	return "{" + strings.Join([]string{
		member("event_id", idJSON), member("customer_id", str(customer)), member("event_name", str(name)),
		member("properties", "{"+strings.Join(props, ",")+"}"),
	}, ",") + "}"
}

// is says whether a recorded rejection is this event: its raw text holds
// the marker, or it names the event's id (as sent, or with its NULs
// replaced or dropped, since no NUL can be stored).
func (pe poisonEvent) is(rj RejectedEvent) bool {
	if strings.Contains(rj.Raw, pe.marker) {
		return true
	}
	var probe struct {
		EventID string `json:"event_id"`
	}
	// The first JSON value only: the raw-NUL message has a byte after it.
	if json.NewDecoder(bytes.NewReader(pe.raw)).Decode(&probe) != nil || probe.EventID == "" || rj.EventID == "" {
		return false
	}
	id := probe.EventID
	return rj.EventID == id || rj.EventID == strings.ReplaceAll(id, "\x00", "\uFFFD") || rj.EventID == strings.ReplaceAll(id, "\x00", "")
}

func natsPoisonEvent(msgID, customer, label, marker, data string) poisonEvent {
	return poisonEvent{label: label, marker: marker, raw: []byte(data),
		msg: &Msg{Subject: SubjectPrefix + "." + customer, ID: msgID, Data: []byte(data)}}
}

// rawJSONString is an object built by rawJSON, as member text.
func rawJSONString(members ...string) string { return string(rawJSON(members...)) }

// interleave calls innocent(k) for k in [0, n) and poison(p) for p in
// [0, m), a poison one after every every innocent ones, the rest at the end.
func interleave(n, m, every int, innocent, poison func(int)) {
	p := 0
	for k := range n {
		innocent(k)
		if (k+1)%every == 0 && p < m {
			poison(p)
			p++
		}
	}
	for ; p < m; p++ {
		poison(p)
	}
}
