package chaos

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Sample is one reading of the consumer and the events table.
type Sample struct {
	At       time.Time
	Consumer ConsumerState
	Rows     int // event rows; -1 when the database did not answer
}

// Watcher samples ledgerd's progress every period until stopped: the
// record drain times and drain rates are computed from.
type Watcher struct {
	mu      sync.Mutex
	samples []Sample
	stop    context.CancelFunc
	done    chan struct{}
}

// Watch starts sampling.
func Watch(ctx context.Context, b *Broker, dbURL string, period time.Duration) *Watcher {
	ctx, cancel := context.WithCancel(ctx)
	w := &Watcher{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		var db *pgx.Conn
		defer func() {
			if db != nil {
				db.Close(context.Background())
			}
		}()
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			s := Sample{At: time.Now(), Rows: -1}
			s.Consumer, _ = b.Consumer(ctx)
			if db == nil {
				cctx, cancel := context.WithTimeout(ctx, time.Second)
				db, _ = pgx.Connect(cctx, dbURL)
				cancel()
			}
			if db != nil {
				qctx, cancel := context.WithTimeout(ctx, time.Second)
				n, err := CountEvents(qctx, db)
				cancel()
				if err != nil {
					db.Close(context.Background())
					db = nil
				} else {
					s.Rows = n
				}
			}
			w.mu.Lock()
			w.samples = append(w.samples, s)
			w.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// Stop ends sampling.
func (w *Watcher) Stop() {
	w.stop()
	<-w.done
}

// Samples is a copy of what was recorded.
func (w *Watcher) Samples() []Sample {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Sample(nil), w.samples...)
}

// DrainAfter is how long after at the consumer's ack floor first reached
// seq — every message published before at acked, that is applied — or -1
// if it never did while sampled.
func DrainAfter(samples []Sample, at time.Time, seq uint64) time.Duration {
	for _, s := range samples {
		if s.At.Before(at) || !s.Consumer.Exists {
			continue
		}
		if s.Consumer.AckFloor >= seq {
			return s.At.Sub(at)
		}
	}
	return -1
}

// Progress describes the samples in [from, to]: events applied, the rate,
// the longest stretch without a new row while messages were ack-pending,
// and the most redeliveries seen.
func Progress(samples []Sample, from, to time.Time) string {
	var first, last *Sample
	var stall, longest time.Duration
	var stallStart time.Time
	maxRedelivered, maxAckPending := 0, 0
	prevRows := -1
	for i := range samples {
		s := &samples[i]
		if s.At.Before(from) || s.At.After(to) || s.Rows < 0 {
			continue
		}
		if first == nil {
			first = s
		}
		last = s
		maxRedelivered = max(maxRedelivered, s.Consumer.Redelivered)
		maxAckPending = max(maxAckPending, s.Consumer.AckPending)
		if prevRows >= 0 && s.Rows == prevRows && s.Consumer.AckPending+int(s.Consumer.Pending) > 0 {
			if stallStart.IsZero() {
				stallStart = s.At
			}
			stall = s.At.Sub(stallStart)
			longest = max(longest, stall)
		} else {
			stallStart = time.Time{}
		}
		prevRows = s.Rows
	}
	if first == nil || last == first {
		return "no samples"
	}
	n := last.Rows - first.Rows
	secs := last.At.Sub(first.At).Seconds()
	return fmt.Sprintf("%d rows in %.1f s (%.0f/s), longest stall with messages pending %.1f s, max ack-pending %d, max redelivered %d",
		n, secs, float64(n)/secs, longest.Seconds(), maxAckPending, maxRedelivered)
}
