package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// TestChaosNATSRestart kills nats-server with SIGKILL while events are
// published and starts it again on the same store; then, once ledgerd has
// applied everything, kills it once more and starts it on an emptied store
// (no stream, no consumer): ledgerd must recreate both, and every event
// published after that must be applied. The publisher, like an app, retries
// each publish until the stream acks it.
func TestChaosNATSRestart(t *testing.T) {
	concurrent(t)
	var (
		customers = pick(40, 300)
		eventsA   = pick(2_000, 20_000)
		eventsB   = pick(500, 3_000)
		rate      = pick(400.0, 500.0)
		kills     = pick(1, 3)
		drainMax  = pick(90*time.Second, 5*time.Minute)
		emptyMax  = pick(30*time.Second, 2*time.Minute) // to publish and apply after the empty-store restart
	)
	ctx, cancel := context.WithTimeout(context.Background(), pick(4*time.Minute, 15*time.Minute))
	defer cancel()
	row := NewRow(t, "3. nats-server kill -9 and restart (then on an empty store)")
	row.Faults = fmt.Sprintf("%d × kill -9 nats-server on the same store, 1 × on an emptied store", kills)
	r := NewRig(ctx, t, "nats", suite.Cluster)
	seed := Seed(t, row)
	rng := rand.New(rand.NewPCG(seed, 3))

	accts, err := CreateAccounts(ctx, r.API, Customers("n", customers), func(i int) string {
		if i%3 == 0 {
			return "0.1"
		}
		return "1000"
	}, 16)
	if err != nil {
		t.Fatal(err)
	}
	x := NewExpectation(accts)
	evA := MakeEvents(rng, "nats-a", eventsA, len(accts))
	evB := MakeEvents(rng, "nats-b", eventsB, len(accts))
	msgs := func(evs []Event) []Msg {
		m := make([]Msg, len(evs))
		for i, e := range evs {
			m[i] = EventMsg(e, accts[e.Account].Customer)
		}
		return m
	}

	// Phase A: kills on the same store during the ingest.
	w := Watch(ctx, r.Broker, r.DBURL, 250*time.Millisecond)
	defer w.Stop()
	window := time.Duration(float64(eventsA) / rate * float64(time.Second))
	start := time.Now()
	published := make(chan *PublishLog, 1)
	go func() {
		pctx, cancel := context.WithTimeout(ctx, window+time.Minute)
		defer cancel()
		published <- r.Broker.PublishPaced(pctx, msgs(evA), rate)
	}()
	type restart struct {
		At, Up time.Time
		Seq    uint64
		Down   time.Duration
	}
	var rs []restart
	for _, d := range killMoments(rng, kills, window) {
		time.Sleep(time.Until(start.Add(d)))
		seq, _ := r.Broker.LastSeq(ctx)
		k := restart{At: time.Now(), Seq: seq, Down: time.Duration(1000+rng.IntN(2000)) * time.Millisecond}
		if err := r.NATS.Kill9(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(k.Down)
		if err := r.NATS.Start(ctx); err != nil {
			t.Fatal(err)
		}
		k.Up = time.Now()
		rs = append(rs, k)
	}
	logA := <-published
	dA, err := WaitDrained(ctx, r.Broker, r.DBURL, logA.AckedCount(), drainMax)
	if err != nil {
		t.Fatal(err)
	}
	if !dA.Done {
		t.Errorf("phase A (same store): not drained within %s: %s", drainMax, dA)
		row.Notef("phase A: not drained within %s: %s", drainMax, dA)
	}
	time.Sleep(500 * time.Millisecond)
	samples := w.Samples()
	for i, k := range rs {
		dr := DrainAfter(samples, k.At, k.Seq)
		row.Drains = append(row.Drains, dr)
		end := time.Now()
		if dr >= 0 {
			end = k.At.Add(dr)
		}
		row.Notef("kill %d at +%.1f s (stream seq %d), down %.1f s: drained %s after the kill; %s",
			i+1, k.At.Sub(start).Seconds(), k.Seq, k.Down.Seconds(), drainText(dr), Progress(samples, k.At, end))
	}
	row.Notef("phase A: %d of %d events acked by the stream (%d publish retries); %s", logA.AckedCount(), len(evA), logA.Retries, dA)

	// Phase B: everything applied; the broker comes back with nothing.
	cpu0, _ := r.Ledgerd.CPU()
	if err := r.NATS.Kill9(); err != nil {
		t.Fatal(err)
	}
	if err := r.NATS.EmptyStore(); err != nil {
		t.Fatal(err)
	}
	if err := r.NATS.Start(ctx); err != nil {
		t.Fatal(err)
	}
	up := time.Now()
	pctx, cancelB := context.WithTimeout(ctx, emptyMax)
	logB := r.Broker.PublishPaced(pctx, msgs(evB), rate)
	cancelB()
	st, _ := r.Broker.Consumer(ctx)
	row.Notef("phase B (empty store): %d of %d events acked by the stream within %s of the restart (stream exists %v, consumer exists %v); last publish error: %v",
		logB.AckedCount(), len(evB), emptyMax, st.LastSeq > 0 || st.Exists, st.Exists, logB.LastErr)
	dB, err := WaitDrained(ctx, r.Broker, r.DBURL, logA.AckedCount()+logB.AckedCount(), max(emptyMax-time.Since(up), 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	w.Stop()
	if cpu1, err := r.Ledgerd.CPU(); err == nil {
		wall := time.Since(up)
		row.Notef("ledgerd used %.1f s of CPU in the %.1f s after the empty-store restart (%.0f%% of one core)",
			(cpu1 - cpu0).Seconds(), wall.Seconds(), 100*(cpu1-cpu0).Seconds()/wall.Seconds())
	}
	if dB.Done {
		row.Drains = append(row.Drains, time.Since(up))
	} else {
		row.Drains = append(row.Drains, -1)
		t.Errorf("phase B (empty store): not drained: %s", dB)
	}
	row.Notef("phase B: %s", dB)
	if logB.AckedCount() < len(evB) {
		t.Errorf("after the restart on an empty store the stream acked %d of %d events within %s (ledgerd did not recreate the stream?); last error: %v",
			logB.AckedCount(), len(evB), emptyMax, logB.LastErr)
	}
	if !r.Ledgerd.Running() || r.Ledgerd.Starts != 1 {
		t.Errorf("ledgerd did not keep running: running %v, started %d times", r.Ledgerd.Running(), r.Ledgerd.Starts)
	}
	if !r.Ledgerd.Ready(ctx) {
		t.Errorf("ledgerd's /readyz is not 200 at the end")
	}
	if n, line := r.LogCount("nats fetch"); n > 0 {
		row.Notef("ledgerd logged %d 'nats fetch' warnings, last kind: %s", n, line)
	}

	sent := make([]Sent, 0, len(evA)+len(evB))
	for i, e := range evA {
		sent = append(sent, Sent{Event: e, Acked: logA.Acked[i], Attempted: logA.Attempted[i]})
	}
	for i, e := range evB {
		sent = append(sent, Sent{Event: e, Acked: logB.Acked[i], Attempted: logB.Attempted[i]})
	}
	row.Events = len(sent)
	v := CheckEvents(ctx, t, r, accts, x, sent, nil)
	Judge(ctx, t, r, row, accts, x, v, 0)
}
