package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// kill is one kill -9 of ledgerd and what followed.
type kill struct {
	At         time.Time
	Seq        uint64        // the stream's last sequence when it was killed
	AckPending int           // messages handed to the killed process, not acked
	Restart    time.Duration // from the kill to the new process's /readyz 200
	Drain      time.Duration // from the kill to every message before it applied; -1 never
}

// TestChaosKillLedgerd kills ledgerd with SIGKILL at random moments while
// events stream in over NATS (and debits over HTTP, retried with their
// Idempotency-Key), restarting it each time. Every event the stream acked
// must be applied exactly once, every debit must eventually succeed once,
// every wallet must be exact, and verify must pass.
func TestChaosKillLedgerd(t *testing.T) {
	concurrent(t)
	var (
		customers = pick(100, 500)
		events    = pick(5_000, 50_000)
		kills     = pick(2, 10)
		rate      = pick(500.0, 625.0) // events/s: the ingest lasts 10 s / 80 s
		debiters  = pick(2, 4)
		drainMax  = pick(90*time.Second, 5*time.Minute)
	)
	ctx, cancel := context.WithTimeout(context.Background(), pick(4*time.Minute, 15*time.Minute))
	defer cancel()
	row := NewRow(t, "1. kill -9 ledgerd during NATS ingest")
	row.Faults = fmt.Sprintf("%d × kill -9 ledgerd", kills)
	r := NewRig(ctx, t, "kill", suite.Cluster)
	seed := Seed(t, row)
	rng := rand.New(rand.NewPCG(seed, 1))

	accts, err := CreateAccounts(ctx, r.API, Customers("k", customers), func(i int) string {
		if i%4 == 0 {
			return "0.05" // these run into overage
		}
		return "1000"
	}, 16)
	if err != nil {
		t.Fatal(err)
	}
	x := NewExpectation(accts)
	evs := MakeEvents(rng, "kill-ev", events, len(accts))
	msgs := make([]Msg, len(evs))
	for i, e := range evs {
		msgs[i] = EventMsg(e, accts[e.Account].Customer)
	}

	w := Watch(ctx, r.Broker, r.DBURL, 250*time.Millisecond)
	defer w.Stop()
	window := time.Duration(float64(events) / rate * float64(time.Second))
	start := time.Now()
	pubCtx, stopPub := context.WithTimeout(ctx, window+2*time.Minute)
	defer stopPub()
	published := make(chan *PublishLog, 1)
	go func() { published <- r.Broker.PublishPaced(pubCtx, msgs, rate) }()
	debCtx, stopDebits := context.WithCancel(ctx)
	debits, debitsDone := RunDebits(debCtx, r.API, accts, debiters, "kill-debit", 60*time.Second, seed)

	// Kill moments: random in the middle 90% of the ingest, at least 1.5 s
	// apart so each restarted process gets to fetch.
	at := killMoments(rng, kills, window)
	var ks []kill
	for _, d := range at {
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(time.Until(start.Add(d))):
		}
		st, _ := r.Broker.Consumer(ctx)
		k := kill{At: time.Now(), Seq: st.LastSeq, AckPending: st.AckPending}
		if err := r.Ledgerd.Kill9(); err != nil {
			t.Fatal(err)
		}
		if err := r.Ledgerd.Start(ctx, 90*time.Second); err != nil {
			t.Fatalf("restart after kill %d: %v", len(ks)+1, err)
		}
		k.Restart = time.Since(k.At)
		ks = append(ks, k)
	}
	plog := <-published
	stopDebits()
	debitsDone()
	t.Logf("published %d of %d events (%d publish retries) in %.1f s; %d debits",
		plog.AckedCount(), len(msgs), plog.Retries, time.Since(start).Seconds(), len(debits.All))

	d, err := WaitDrained(ctx, r.Broker, r.DBURL, plog.AckedCount(), drainMax)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // one more sample after the drain
	w.Stop()
	samples := w.Samples()
	if !d.Done {
		t.Errorf("not drained within %s: %s", drainMax, d)
		row.Notef("not drained within %s: %s", drainMax, d)
	}
	for i := range ks {
		ks[i].Drain = DrainAfter(samples, ks[i].At, ks[i].Seq)
		row.Drains = append(row.Drains, ks[i].Drain)
		end := time.Now()
		if ks[i].Drain >= 0 {
			end = ks[i].At.Add(ks[i].Drain)
		}
		row.Notef("kill %d at +%.1f s: stream seq %d, %d ack-pending; ready again after %.1f s; drained after %s; %s",
			i+1, ks[i].At.Sub(start).Seconds(), ks[i].Seq, ks[i].AckPending, ks[i].Restart.Seconds(),
			drainText(ks[i].Drain), Progress(samples, ks[i].At, end))
	}
	row.Notef("final drain after publishing ended: %s; %s", d, Progress(samples, start.Add(window), time.Now()))

	// Every debit without a 201 in time is settled now (sent once more,
	// same key): the wallets must show exactly the ones that applied.
	innocent := 0
	for _, a := range debits.All {
		applied, known := a.Resolve(ctx, r.API)
		if !a.OK {
			innocent++
		}
		if !known {
			t.Errorf("debit %s: outcome unknown", a.Key)
		}
		if applied {
			x.Charge(a.Wallet, a.Amount)
		}
	}
	row.Debits = len(debits.All)
	row.Notef("debits: %s (answers over all attempts)", StatusCounts(debits.All))
	if innocent > 0 {
		t.Errorf("%d of %d innocent debits did not get their 201 within 60 s", innocent, len(debits.All))
	}
	sent := make([]Sent, len(evs))
	for i, e := range evs {
		sent[i] = Sent{Event: e, Acked: plog.Acked[i], Attempted: plog.Attempted[i]}
	}
	row.Events = plog.AckedCount()
	v := CheckEvents(ctx, t, r, accts, x, sent, nil)
	Judge(ctx, t, r, row, accts, x, v, innocent)
	if n, line := r.LogCount("level=ERROR"); n > 0 {
		row.Notef("ledgerd logged %d ERROR lines, first: %s", n, line)
	}
	if n, line := r.LogCount("usage batch not applied"); n > 0 {
		row.Notef("ledgerd logged %d 'usage batch not applied' lines, first: %s", n, line)
	}
}

// killMoments is n offsets in the middle 90% of window, sorted, at least
// 1.5 s apart when the window allows it.
func killMoments(rng *rand.Rand, n int, window time.Duration) []time.Duration {
	lo, hi := window/20, window*19/20
	gap := min(1500*time.Millisecond, (hi-lo)/time.Duration(n+1))
	for {
		at := make([]time.Duration, n)
		for i := range at {
			at[i] = lo + time.Duration(rng.Int64N(int64(hi-lo)))
		}
		slices.Sort(at)
		ok := true
		for i := 1; i < n; i++ {
			ok = ok && at[i]-at[i-1] >= gap
		}
		if ok {
			return at
		}
	}
}

func drainText(d time.Duration) string {
	if d < 0 {
		return "never (while watched)"
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}
