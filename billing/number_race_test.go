package billing

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/wallet"
)

// txBatch is a stage's view of a batch over a transaction the test drives.
type txBatch struct {
	ledger.Batch
	tx pgx.Tx
}

func (b txBatch) Tx() pgx.Tx                      { return b.tx }
func (b txBatch) DeclareOwner(ledger.OwnerID)     {}
func (b txBatch) DeclareAccount(ledger.AccountID) {}
func (b txBatch) Engine() pg.Engine               { return pg.Postgres }

// Two batches that both number the first invoice of a new prefix (no
// counter row to lock yet) cannot both commit it: the later one must fail
// with a conflict the poster reruns (40001), not with a duplicate number,
// which the poster would take for bad data and refuse the close for good.
func TestNewPrefixRaceIsRetried(t *testing.T) {
	for _, iso := range []pgx.TxIsoLevel{pgx.RepeatableRead, pgx.Serializable} {
		t.Run(string(iso), func(t *testing.T) {
			w := newWorld(t)
			ctx := context.Background()
			tag := strings.ToLower(unique("r"))
			wallets := []wallet.Wallet{w.walletOf(t, "race-"+tag), w.walletOf(t, "race_"+tag)}
			prefix := NumberPrefix(wallets[0].CustomerID)
			num := FormatNumber(prefix, 1)

			var (
				txs    []pgx.Tx
				stages []*stage
			)
			for _, wl := range wallets {
				tx, err := w.db.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: iso})
				if err != nil {
					t.Fatal(err)
				}
				defer func() { _ = tx.Rollback(ctx) }()
				b := txBatch{Batch: ledger.NewMemory(time.Now()).Batch(), tx: tx}
				s := &stage{}
				s.wantNumber(wl.CustomerID)
				if err := s.loadNumbers(ctx, b); err != nil {
					t.Fatal(err)
				}
				if s.numbers.last[prefix] != 0 {
					t.Fatalf("a new prefix has a counter at %d", s.numbers.last[prefix])
				}
				// What issue does in the op, as both batches see it.
				s.numbers.last[prefix], s.numbers.changed[prefix] = 1, true
				s.invoices = []*Invoice{{ID: InvoiceID(uuid.New()), WalletID: &wl.ID, CustomerID: wl.CustomerID, Currency: "CREDITS",
					PeriodStart: wl.CreatedAt, PeriodEnd: wl.CreatedAt.Add(time.Hour), Lines: []InvoiceLine{}, Status: InvoiceIssued,
					EntryID: ledger.NewEntryID(), CreatedAt: time.Now(), InvoiceLife: InvoiceLife{Number: &num}}}
				txs, stages = append(txs, tx), append(stages, s)
			}
			if err := stages[0].Flush(ctx, txBatch{tx: txs[0]}); err != nil {
				t.Fatal(err)
			}
			second := make(chan error, 1)
			go func() { second <- stages[1].Flush(ctx, txBatch{tx: txs[1]}) }()
			time.Sleep(100 * time.Millisecond) // the second waits on the first's uncommitted counter
			if err := txs[0].Commit(ctx); err != nil {
				t.Fatal(err)
			}
			err := <-second
			if err == nil {
				err = txs[1].Commit(ctx)
			}
			if !pg.Retryable(err) {
				t.Fatalf("the second batch ended with %v; want a conflict to rerun (40001)", err)
			}
			var n int
			if err := w.db.Pool.QueryRow(ctx, `SELECT count(*) FROM invoices WHERE number = $1`, num).Scan(&n); err != nil || n != 1 {
				t.Fatalf("%d invoices numbered %s (%v)", n, num, err)
			}
			if c := w.counter(t, prefix); c != 1 {
				t.Fatalf("counter %d, want 1", c)
			}
		})
	}
}
