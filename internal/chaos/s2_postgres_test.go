package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"
)

// outage is one stop and restart of the cluster.
type outage struct {
	Stop, Start time.Time     // pg_ctl stop called; the server accepts connections again
	Stopped     time.Duration // pg_ctl stop -m immediate took
	Recovery    time.Duration // the restarted server took to accept connections (WAL replay)
	Seq         uint64        // the stream's last sequence when the database came back
	Ready       time.Duration // from the restart to ledgerd's /readyz 200
	Drain       time.Duration // from the restart to every message before it applied
}

// TestChaosPostgresOutage stops the project-local PostgreSQL (pg_ctl stop
// -m immediate) for a few seconds while events stream in over NATS and
// HTTP and debits are made, then starts it again. ledgerd must keep
// running, answer 503 with Retry-After while the database is away, recover
// by itself, and lose or double nothing.
func TestChaosPostgresOutage(t *testing.T) {
	concurrent(t)
	var (
		customers = pick(60, 300)
		events    = pick(3_000, 24_000)
		rate      = pick(300.0, 400.0) // 10 s / 60 s of ingest
		downs     = pick([]time.Duration{4 * time.Second}, []time.Duration{3 * time.Second, 8 * time.Second, 15 * time.Second})
		drainMax  = pick(90*time.Second, 5*time.Minute)
	)
	ctx, cancel := context.WithTimeout(context.Background(), pick(4*time.Minute, 12*time.Minute))
	defer cancel()
	row := NewRow(t, "2. PostgreSQL stopped and restarted")
	row.Faults = fmt.Sprintf("%d × pg_ctl stop -m immediate, down %v", len(downs), downs)
	// Its own cluster: the one it stops serves no other scenario.
	cluster, err := NewCluster(ctx, suite.Dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cluster.Close(); err != nil {
			t.Logf("stop the scenario's PostgreSQL: %v", err)
		}
	})
	r := NewRig(ctx, t, "postgres", cluster)
	seed := Seed(t, row)
	rng := rand.New(rand.NewPCG(seed, 2))

	accts, err := CreateAccounts(ctx, r.API, Customers("p", customers), func(i int) string {
		if i%5 == 0 {
			return "0.05"
		}
		return "500"
	}, 16)
	if err != nil {
		t.Fatal(err)
	}
	x := NewExpectation(accts)
	evs := MakeEvents(rng, "pg-nats", events, len(accts))
	msgs := make([]Msg, len(evs))
	for i, e := range evs {
		msgs[i] = EventMsg(e, accts[e.Account].Customer)
	}
	httpEvs := MakeEvents(rng, "pg-http", events/5, len(accts))

	w := Watch(ctx, r.Broker, r.DBURL, 250*time.Millisecond)
	defer w.Stop()
	ready := watchReady(ctx, r.Ledgerd)
	window := time.Duration(float64(events) / rate * float64(time.Second))
	start := time.Now()
	published := make(chan *PublishLog, 1)
	go func() {
		pctx, cancel := context.WithTimeout(ctx, window+2*time.Minute)
		defer cancel()
		published <- r.Broker.PublishPaced(pctx, msgs, rate)
	}()
	loadCtx, stopLoad := context.WithTimeout(ctx, window)
	defer stopLoad()
	perOp := 20*time.Second + downs[len(downs)-1]*2
	debits, debitsDone := RunDebits(loadCtx, r.API, accts, 4, "pg-debit", perOp, seed)
	hev, hevDone := RunHTTPEvents(loadCtx, r.API, accts, httpEvs, 20, 200*time.Millisecond, perOp)

	// The outages, spread over the ingest: the i-th starts at a random
	// moment of the i-th slice of the window.
	var outs []outage
	slice := window / time.Duration(len(downs))
	for i, down := range downs {
		from := time.Duration(i)*slice + slice/5
		span := max(slice-slice/5-down, time.Second)
		at := start.Add(from + time.Duration(rng.Int64N(int64(span))))
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(time.Until(at)):
		}
		o := outage{Stop: time.Now()}
		if err := cluster.StopImmediate(ctx); err != nil {
			t.Fatal(err)
		}
		o.Stopped = time.Since(o.Stop)
		time.Sleep(down)
		restart := time.Now()
		if err := cluster.Start(ctx); err != nil {
			t.Fatal(err)
		}
		o.Start = time.Now()
		o.Recovery = o.Start.Sub(restart)
		o.Seq, _ = r.Broker.LastSeq(ctx)
		if !r.Ledgerd.Running() {
			t.Errorf("ledgerd exited during outage %d: %v", i+1, r.Ledgerd.ExitErr())
		}
		if err := r.Ledgerd.WaitReady(ctx, 60*time.Second); err != nil {
			t.Errorf("after outage %d: %v", i+1, err)
		}
		o.Ready = time.Since(o.Start)
		outs = append(outs, o)
	}
	plog := <-published
	debitsDone()
	hevDone()
	d, err := WaitDrained(ctx, r.Broker, r.DBURL, plog.AckedCount()+len(hev.Sent), drainMax)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	w.Stop()
	readies := ready.stop()
	samples := w.Samples()
	if !d.Done {
		t.Errorf("not drained within %s: %s", drainMax, d)
		row.Notef("not drained within %s: %s", drainMax, d)
	}
	if !r.Ledgerd.Running() || r.Ledgerd.Starts != 1 {
		t.Errorf("ledgerd did not keep running: running %v, started %d times, exit %v", r.Ledgerd.Running(), r.Ledgerd.Starts, r.Ledgerd.ExitErr())
	}
	for i := range outs {
		o := &outs[i]
		o.Drain = DrainAfter(samples, o.Start, o.Seq)
		row.Drains = append(row.Drains, o.Drain)
		end := time.Now()
		if o.Drain >= 0 {
			end = o.Start.Add(o.Drain)
		}
		row.Notef("outage %d at +%.1f s for %.1f s (stop %.1f s, down %s, recovery %.1f s): /readyz during it %s; ledgerd ready %.1f s after the restart; drained after %s; %s",
			i+1, o.Stop.Sub(start).Seconds(), o.Start.Sub(o.Stop).Seconds(), o.Stopped.Seconds(), downs[i], o.Recovery.Seconds(), readies.between(o.Stop, o.Start),
			o.Ready.Seconds(), drainText(o.Drain), Progress(samples, o.Start, end))
	}
	row.Notef("final drain: %s", d)

	// The contract while the database is away: 503 with Retry-After, never
	// a 500, never a hang.
	ops := append(append([]*Attempts(nil), debits.All...), hev.Batches...)
	var other, noRetryAfter, hung int
	for _, a := range ops {
		noRetryAfter += a.NoRetryAfter
		for _, s := range a.Statuses {
			switch {
			case s == 0:
				hung++
			case s >= 500 && s != http.StatusServiceUnavailable:
				other++
			}
		}
	}
	row.Notef("debits: %s; event batches: %s (answers over all attempts)", StatusCounts(debits.All), StatusCounts(hev.Batches))
	if other > 0 || noRetryAfter > 0 || hung > 0 {
		t.Errorf("while the database was away: %d answers were 5xx other than 503, %d 503s had no Retry-After, %d requests got no answer",
			other, noRetryAfter, hung)
		row.Notef("contract breach during the outage: %d 5xx other than 503, %d 503 without Retry-After, %d no answer", other, noRetryAfter, hung)
	}
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
	for _, a := range hev.Batches {
		if !a.OK {
			innocent++
			t.Errorf("event batch %s: no 202 within %s: %s %v", a.Label, perOp, a.Last, a.LastErr)
		}
	}
	if len(hev.Rejected) > 0 {
		t.Errorf("%d innocent HTTP events rejected: %v", len(hev.Rejected), first(hev.Rejected, 5))
		innocent += len(hev.Rejected)
	}
	if innocent > 0 {
		t.Errorf("%d innocent HTTP operations failed", innocent)
	}
	row.Debits = len(debits.All) + len(hev.Batches)
	sent := make([]Sent, 0, len(evs)+len(hev.Sent))
	for i, e := range evs {
		sent = append(sent, Sent{Event: e, Acked: plog.Acked[i], Attempted: plog.Attempted[i]})
	}
	sent = append(sent, hev.Sent...)
	row.Events = plog.AckedCount() + len(hev.Sent)
	v := CheckEvents(ctx, t, r, accts, x, sent, nil)
	Judge(ctx, t, r, row, accts, x, v, innocent)
	if n, line := r.LogCount("level=ERROR"); n > 0 {
		row.Notef("ledgerd logged %d ERROR lines, first: %s", n, line)
	}
}

// readiness records /readyz answers over time.
type readiness struct {
	mu     sync.Mutex
	at     []time.Time
	ok     []bool
	cancel context.CancelFunc
	done   chan struct{}
}

func watchReady(ctx context.Context, l *Ledgerd) *readiness {
	ctx, cancel := context.WithCancel(ctx)
	r := &readiness{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for ctx.Err() == nil {
			ok := l.Ready(ctx)
			r.mu.Lock()
			r.at, r.ok = append(r.at, time.Now()), append(r.ok, ok)
			r.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	return r
}

func (r *readiness) stop() *readiness {
	r.cancel()
	<-r.done
	return r
}

// between is "503×12 200×1" of the answers in [from, to].
func (r *readiness) between(from, to time.Time) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var up, down int
	for i, at := range r.at {
		if at.Before(from) || at.After(to) {
			continue
		}
		if r.ok[i] {
			up++
		} else {
			down++
		}
	}
	return fmt.Sprintf("ready×%d not-ready×%d", up, down)
}
