package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Drain is how waiting for ledgerd to apply everything ended.
type Drain struct {
	Took    time.Duration
	Done    bool          // the consumer was idle and the rows were there
	Rows    int           // event rows when it ended
	State   ConsumerState // the consumer when it ended
	Stalled bool          // the consumer was idle with rows missing: nothing more can come
}

func (d Drain) String() string {
	s := fmt.Sprintf("%d rows after %.1f s", d.Rows, d.Took.Seconds())
	if !d.Done {
		s += fmt.Sprintf(" (not drained: consumer exists=%v pending=%d ack-pending=%d ack-floor=%d last-seq=%d redelivered=%d)",
			d.State.Exists, d.State.Pending, d.State.AckPending, d.State.AckFloor, d.State.LastSeq, d.State.Redelivered)
	}
	return s
}

// CountEvents is the number of rows in the events table.
func CountEvents(ctx context.Context, db *pgx.Conn) (int, error) {
	var n int
	err := db.QueryRow(ctx, "SELECT count(*) FROM events").Scan(&n)
	return n, err
}

// WaitDrained polls until the events table holds at least want rows and
// (with a broker) ledgerd's consumer is idle, or bound passes. A consumer
// that stays idle for 3 s with rows still missing ends the wait early:
// nothing is left to deliver, so the missing events are lost.
func WaitDrained(ctx context.Context, b *Broker, dbURL string, want int, bound time.Duration) (Drain, error) {
	start := time.Now()
	db, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return Drain{}, err
	}
	defer db.Close(context.Background())
	var idleShort time.Time
	for {
		var d Drain
		d.Took = time.Since(start)
		if d.Rows, err = CountEvents(ctx, db); err != nil {
			return d, err
		}
		idle := true
		if b != nil {
			if d.State, err = b.Consumer(ctx); err != nil {
				d.State = ConsumerState{}
			}
			idle = d.State.Idle()
		}
		switch {
		case idle && d.Rows >= want:
			d.Done = true
			return d, nil
		case idle:
			if idleShort.IsZero() {
				idleShort = time.Now()
			} else if time.Since(idleShort) > 3*time.Second {
				d.Stalled = true
				return d, nil
			}
		default:
			idleShort = time.Time{}
		}
		if d.Took > bound {
			return d, nil
		}
		select {
		case <-ctx.Done():
			return d, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// EventRows is what the events table holds.
type EventRows struct {
	Count    int             // rows
	Distinct int             // distinct event ids
	IDs      map[string]bool // every event id
}

// ReadEvents reads every event id.
func ReadEvents(ctx context.Context, dbURL string) (EventRows, error) {
	db, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return EventRows{}, err
	}
	defer db.Close(context.Background())
	var r EventRows
	if err := db.QueryRow(ctx, "SELECT count(*), count(DISTINCT event_id) FROM events").Scan(&r.Count, &r.Distinct); err != nil {
		return r, err
	}
	rows, err := db.Query(ctx, "SELECT event_id FROM events")
	if err != nil {
		return r, err
	}
	r.IDs = make(map[string]bool, r.Count)
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return r, err
		}
		r.IDs[id] = true
	}
	rows.Close()
	return r, rows.Err()
}

// Verify runs `ledgerctl verify` on the database: its exit code and output.
func Verify(ctx context.Context, ledgerctl, dbURL string) (int, string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ledgerctl, "verify")
	cmd.Env = []string{"DATABASE_URL=" + dbURL, "PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	default:
		return -1, fmt.Sprintf("%v\n%s", err, out)
	}
}

// WalletCheck is the result of comparing every wallet with the expectation.
type WalletCheck struct {
	Wallets int
	Off     []string // "customer: how", one per wallet that is not exact
	Over    int      // of them, charged more than expected: something applied twice
}

// CheckWallets reads every account's balance and compares consumed,
// overage and available with the expectation, exactly.
func CheckWallets(ctx context.Context, api *API, accts []Account, x *Expectation) (WalletCheck, error) {
	wc := WalletCheck{Wallets: len(accts)}
	var mu sync.Mutex
	err := Parallel(ctx, len(accts), 16, func(ctx context.Context, i int) error {
		a := accts[i]
		var b BalanceJSON
		var err error
		for attempt := range 5 { // a read may meet ledgerd still recovering
			if b, err = api.Balance(ctx, a.Wallet); err == nil {
				break
			}
			time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
		}
		if err != nil {
			return fmt.Errorf("balance of %s: %w", a.Customer, err)
		}
		if m, over := x.Mismatch(a.Wallet, b); m != "" {
			mu.Lock()
			wc.Off = append(wc.Off, a.Customer+": "+m)
			if over {
				wc.Over++
			}
			mu.Unlock()
		}
		return nil
	})
	return wc, err
}
