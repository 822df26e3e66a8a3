package wallet

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/ledger"
)

// op is implemented by every wallet operation: it says what the wallet stage
// must load for it (needs), rather than the stage guessing from its type.
type op interface {
	ledger.Op
	needs(n *need)
}

// need is what a batch's wallet ops need loaded.
type need struct {
	wallets []uuid.UUID
	grants  []uuid.UUID // grants an op names: loaded even when closed
	topups  []uuid.UUID // top-ups an op settles
	closing []uuid.UUID // wallets whose cycle closes: their open invoice lines and billable top-ups
	sums    bool        // the wallets' grant sums, for the balance a debit answers with
}

func (n *need) wallet(id WalletID) { n.wallets = append(n.wallets, uuid.UUID(id)) }

type module struct{}

func (module) Name() string           { return moduleName }
func (module) Feeds() []string        { return nil }
func (module) NewStage() ledger.Stage { return &stage{} }

const moduleName = "wallet"

// stage is the wallet module's part of one batch attempt: the wallets its
// ops need, and one book per concern — grants and burn-down
// (stage_grants.go), reactions and top-ups (stage_reactions.go), cycles
// and invoices (stage_cycles.go).
type stage struct {
	wanted  []WalletID // wallets other modules need loaded (Want)
	wallets map[WalletID]*walletState
	grants  grantBook
	topups  topupBook
	cycles  cycleBook
}

type walletState struct {
	Wallet
	overage      ledger.AccountID
	grants       []*grantState // loaded grants: active, or holding a balance, or named by an op
	react        reactions
	rule         *AutoTopup
	nextCycleEnd *time.Time
}

// stageOf is the wallet stage of b. Every wallet op is a ledger.ModuleOp,
// so the poster never applies one in a batch without it; metering, which
// charges wallets, declares that it feeds this module.
func stageOf(b ledger.Batch) (*stage, error) {
	s, ok := b.Stage(module{}).(*stage)
	if !ok {
		return nil, fmt.Errorf("wallet: the batch has no wallet stage; build the ledger with wallet.Module()")
	}
	return s, nil
}

// Load reads, for the whole batch, the wallets its ops need (with their
// reactions and auto top-up rules), their live grants, the top-ups ops
// settle, and the open invoice lines of wallets whose cycle closes, and
// declares the accounts to lock.
func (s *stage) Load(ctx context.Context, b ledger.StageBatch, ops []ledger.Op) error {
	var n need
	for _, id := range s.wanted {
		n.wallet(id)
	}
	for _, o := range ops {
		if w, ok := o.(op); ok {
			w.needs(&n)
		}
	}
	s.wallets = map[WalletID]*walletState{}
	s.grants.reset()
	s.topups.reset()
	s.cycles.clear()
	if len(n.wallets) == 0 {
		return nil
	}
	if err := s.loadWallets(ctx, b, n.wallets, n.sums); err != nil {
		return err
	}
	if err := s.loadGrants(ctx, b, n.wallets, n.grants); err != nil {
		return err
	}
	if err := s.loadTopups(ctx, b.Tx(), n.topups, n.closing); err != nil {
		return err
	}
	return s.loadLines(ctx, b.Tx(), n.closing)
}

// Flush writes, one statement per table, what the batch changed: grants,
// wallets' reactions and cycle ends, top-ups, invoice lines and invoices.
func (s *stage) Flush(ctx context.Context, b ledger.StageBatch) error {
	for _, f := range []func(context.Context, ledger.StageBatch) error{s.flushGrants, s.flushWallets, s.flushTopups, s.flushLines, s.flushInvoices} {
		if err := f(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// loadWallets reads the batch's wallets with their reactions and auto
// top-up rules, and declares their overage accounts. With sums, each
// wallet's grant sums over all its grants come in the same statement.
func (s *stage) loadWallets(ctx context.Context, b ledger.StageBatch, ids []uuid.UUID, sums bool) error {
	q := `SELECT ` + walletColumns + `, w.reactions, w.next_cycle_end, ` + ruleColumns + `
		FROM wallets w LEFT JOIN auto_topup_rules r ON r.wallet_id = w.id WHERE w.id = ANY($1)`
	if sums {
		q = `SELECT ` + walletColumns + `, w.reactions, w.next_cycle_end, ` + ruleColumns + `, gs.granted, gs.expired, gs.voided
		FROM wallets w LEFT JOIN auto_topup_rules r ON r.wallet_id = w.id
		CROSS JOIN LATERAL (SELECT COALESCE(SUM(g.amount), 0) AS granted, COALESCE(SUM(g.expired_amount), 0) AS expired,
			COALESCE(SUM(g.voided_amount), 0) AS voided FROM grants g WHERE g.wallet_id = w.id) gs
		WHERE w.id = ANY($1)`
	}
	rows, err := b.Tx().Query(ctx, q, ids)
	if err != nil {
		return fmt.Errorf("load wallets: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			react []byte
			next  *time.Time
			rule  ruleScan
			t     totals
		)
		dst := append([]any{&react, &next}, rule.dest()...)
		if sums {
			dst = append(dst, &t.granted, &t.expired, &t.voided)
		}
		w, overage, err := scanWallet(rows, dst...)
		if err != nil {
			return err
		}
		st := &walletState{Wallet: w, overage: overage, rule: rule.rule(w.ID), nextCycleEnd: next}
		if st.react, err = decodeReactions(react); err != nil {
			return err
		}
		s.wallets[w.ID] = st
		s.grants.totals[w.ID] = &t
		b.DeclareAccount(overage)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load wallets: %w", err)
	}
	return nil
}
