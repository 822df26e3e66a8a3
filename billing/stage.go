package billing

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/wallet"
)

const moduleName = "billing"

type module struct{}

// Module is the billing stage for the poster. It feeds the wallet module
// (a close tells the wallet stage which wallets it settles), so the ledger
// loads it first and refuses to run without wallet.Module().
func Module() ledger.Module { return module{} }

func (module) Name() string           { return moduleName }
func (module) Feeds() []string        { return []string{wallet.Module().Name()} }
func (module) NewStage() ledger.Stage { return &stage{} }

// op is implemented by every billing operation: it says what the billing
// stage must load for it.
type op interface {
	ledger.ModuleOp
	needs(ctx context.Context, b ledger.StageBatch) error
}

var (
	_ op = (*closeCycleOp)(nil)
	_ op = (*lifeOp)(nil)
)

// stage is the billing module's part of one batch attempt: the invoices
// its ops issue.
type stage struct {
	invoices []*Invoice
	subs     subBook
	numbers  numberBook // number.go
	life     lifeBook   // life.go
}

func stageOf(b ledger.Batch) (*stage, error) {
	s, ok := b.Stage(module{}).(*stage)
	if !ok {
		return nil, fmt.Errorf("billing: the batch has no billing stage; build the ledger with billing.Module()")
	}
	return s, nil
}

// Load lets each billing op ask for what it needs: the wallets it settles
// go to the wallet stage, which loads after this one.
func (s *stage) Load(ctx context.Context, b ledger.StageBatch, ops []ledger.Op) error {
	s.invoices = nil
	s.subs.reset()
	for _, o := range ops {
		if bo, ok := o.(op); ok {
			if err := bo.needs(ctx, b); err != nil {
				return err
			}
		}
	}
	if err := s.subs.load(ctx, b); err != nil {
		return err
	}
	return s.loadLife(ctx, b)
}

// issue numbers inv and records it, written with the batch; undone with
// the op. The op must have asked for its customer's number (wantNumber).
func (s *stage) issue(b ledger.Batch, inv *Invoice) error {
	if err := s.assignNumber(b, inv); err != nil {
		return err
	}
	s.invoices = append(s.invoices, inv)
	b.OnUndo(func() { s.invoices = s.invoices[:len(s.invoices)-1] })
	return nil
}

// Flush writes the subscriptions the batch changed and the invoices it
// issued.
func (s *stage) Flush(ctx context.Context, b ledger.StageBatch) error {
	if err := s.subs.flush(ctx, b); err != nil {
		return err
	}
	// The number counters before the invoices: a batch racing another for
	// a new prefix then stops on the counter's key, a conflict it reruns
	// (40001), never on a duplicate number, which would refuse its op.
	if err := s.flushNumbers(ctx, b); err != nil {
		return err
	}
	for _, inv := range s.invoices {
		lines, err := json.Marshal(inv.Lines)
		if err != nil {
			return fmt.Errorf("invoice lines: %w", err)
		}
		if _, err := b.Tx().Exec(ctx, `INSERT INTO invoices (id, wallet_id, subscription_id, customer_id, currency, period_start,
				period_end, lines, subtotal, carried_in, total, carried_out, status, entry_id, created_at, number)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
			inv.ID, inv.WalletID, inv.SubscriptionID, inv.CustomerID, inv.Currency, inv.PeriodStart, inv.PeriodEnd, string(lines),
			inv.Subtotal, inv.CarriedIn, inv.Total, inv.CarriedOut, inv.Status, inv.EntryID, inv.CreatedAt, inv.Number); err != nil {
			return fmt.Errorf("insert invoice: %w", err)
		}
	}
	return s.flushLife(ctx, b)
}
