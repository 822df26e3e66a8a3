package wallet

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/creditledger/creditledger/ledger"
)

// op is implemented by every wallet operation: the stage loads its wallet.
type op interface {
	ledger.Op
	wallet() WalletID
	grantRef() *GrantID // a grant the op names, loaded even when not active
}

type module struct{}

func (module) Name() string           { return moduleName }
func (module) NewStage() ledger.Stage { return &stage{} }

const moduleName = "wallet"

// stage is the wallet state of one batch attempt.
type stage struct {
	wanted   []WalletID // wallets other stages need loaded (Want)
	wallets  map[WalletID]*walletState
	grants   map[GrantID]*grantState
	newRows  []*grantState
	dirty    map[*grantState]struct{}
	totals   map[WalletID]*totals
	accounts systemAccounts

	reactDirty map[*walletState]struct{} // reactions to write
	cycleDirty map[*walletState]struct{} // next_cycle_end to write

	topups      map[TopupID]*topupState
	newTopups   []*topupState
	dirtyTopups map[*topupState]struct{}
	billable    map[WalletID][]*topupState // immediate top-ups not yet invoiced

	// Uncovered usage per invoice line: what earlier batches stored (loaded
	// only for wallets whose cycle closes in this batch) and what this
	// batch adds. A reset wallet's stored lines went into an invoice.
	lineLoaded map[WalletID]map[string]overageLine
	lineKeys   map[WalletID][]string
	lineDeltas map[WalletID]map[string]*overageLine
	lineReset  map[WalletID]bool
	invoices   []*Invoice
}

type walletState struct {
	Wallet
	overage      ledger.AccountID
	grants       []*grantState // loaded grants: active, or holding a balance, or named by an op
	react        reactions
	rule         *AutoTopup
	nextCycleEnd *time.Time
}

type grantState struct {
	Grant
	account        ledger.AccountID
	fundingAccount *ledger.AccountID // set when not the funding account of its kind
	isNew          bool
}

// totals are a wallet's grant sums over all its grants, kept current as the
// batch changes them, for the balance an operation answers with.
type totals struct {
	granted, expired, voided ledger.Amount
}

func stageOf(b *ledger.Batch) *stage { return b.Stage(moduleName).(*stage) }

// Load reads the batch's wallets and their live grants in two queries and
// declares the accounts to lock: each wallet's overage account and grants.
func (s *stage) Load(ctx context.Context, b *ledger.Batch, ops []ledger.Op) error {
	s.wallets, s.grants, s.dirty, s.totals = map[WalletID]*walletState{}, map[GrantID]*grantState{}, map[*grantState]struct{}{}, map[WalletID]*totals{}
	s.reactDirty, s.cycleDirty = map[*walletState]struct{}{}, map[*walletState]struct{}{}
	s.topups, s.dirtyTopups, s.billable = map[TopupID]*topupState{}, map[*topupState]struct{}{}, map[WalletID][]*topupState{}
	s.lineLoaded, s.lineKeys = map[WalletID]map[string]overageLine{}, map[WalletID][]string{}
	s.lineDeltas, s.lineReset = map[WalletID]map[string]*overageLine{}, map[WalletID]bool{}
	var wids, gids, tids, closing []uuid.UUID
	for _, id := range s.wanted {
		wids = append(wids, uuid.UUID(id))
	}
	for _, o := range ops {
		w, ok := o.(op)
		if !ok {
			continue
		}
		wids = append(wids, uuid.UUID(w.wallet()))
		if g := w.grantRef(); g != nil {
			gids = append(gids, uuid.UUID(*g))
		}
		switch o := o.(type) {
		case *settleTopupOp:
			tids = append(tids, uuid.UUID(o.topupID))
		case *closeCycleOp:
			closing = append(closing, uuid.UUID(o.walletID))
		}
	}
	if len(wids) == 0 {
		return nil
	}
	// The wallets' grant sums are only for the balances debits answer with:
	// usage and the other ops never show them, and skip the aggregate.
	sums := slices.ContainsFunc(ops, func(o ledger.Op) bool { _, ok := o.(*debitOp); return ok })
	if err := s.loadWallets(ctx, b, wids, sums); err != nil {
		return err
	}
	tx := b.Tx()
	if err := s.loadTopups(ctx, tx, tids, closing); err != nil {
		return err
	}
	if err := s.loadLines(ctx, tx, closing); err != nil {
		return err
	}
	// Grants that can still matter: active ones, ones whose account still
	// holds a balance (a hold outlived their void or expiry), and ones an op
	// names. The wallet's sums come with them, over all its grants.
	rows, err := tx.Query(ctx, grantSelect+`, bal.credits_posted - bal.debits_posted, g.funding_account_id
		FROM grants g JOIN ledger_balances bal ON bal.account_id = g.account_id AND bal.shard = 0
		WHERE g.wallet_id = ANY($1)
			AND (g.status = 'active' OR bal.credits_posted > bal.debits_posted OR g.id = ANY($2))`, wids, gids)
	if err != nil {
		return fmt.Errorf("load grants: %w", err)
	}
	for rows.Next() {
		var (
			posted  ledger.Amount
			funding *ledger.AccountID
		)
		g, account, err := scanGrant(rows, &posted, &funding)
		if err != nil {
			rows.Close()
			return err
		}
		gs := &grantState{Grant: g, account: account, fundingAccount: funding}
		s.grants[g.ID] = gs
		if w := s.wallets[g.WalletID]; w != nil {
			w.grants = append(w.grants, gs)
		}
		b.DeclareAccount(account)
		if funding != nil && slices.Contains(gids, uuid.UUID(g.ID)) {
			// A void gives the rest back to it (revenue for a credit back,
			// the wallet's billable account for an immediate top-up).
			b.DeclareAccount(*funding)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load grants: %w", err)
	}
	return nil
}

// loadWallets reads the batch's wallets with their reactions and auto
// top-up rules, and declares their overage accounts. With sums, each
// wallet's grant sums over all its grants come in the same statement.
func (s *stage) loadWallets(ctx context.Context, b *ledger.Batch, ids []uuid.UUID, sums bool) error {
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
		s.totals[w.ID] = &t
		b.DeclareAccount(overage)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load wallets: %w", err)
	}
	return nil
}

// loadTopups reads the top-ups ops settle, and the immediate top-ups not yet
// invoiced of wallets whose cycle closes.
func (s *stage) loadTopups(ctx context.Context, tx pgx.Tx, ids, closing []uuid.UUID) error {
	if len(ids) == 0 && len(closing) == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, topupSelect+` WHERE id = ANY($1)
		OR (wallet_id = ANY($2) AND payment = 'immediate' AND status = 'succeeded' AND invoice_id IS NULL)
		ORDER BY created_at, id`, ids, closing)
	if err != nil {
		return fmt.Errorf("load top-ups: %w", err)
	}
	list, err := collect(rows, scanTopup)
	if err != nil {
		return fmt.Errorf("load top-ups: %w", err)
	}
	for _, t := range list {
		ts := &topupState{Topup: t}
		s.topups[t.ID] = ts
		if t.Payment == PaymentImmediate && t.Status == TopupSucceeded && t.InvoiceID == nil {
			s.billable[t.WalletID] = append(s.billable[t.WalletID], ts)
		}
	}
	return nil
}

// loadLines reads the open invoice lines of wallets whose cycle closes.
func (s *stage) loadLines(ctx context.Context, tx pgx.Tx, closing []uuid.UUID) error {
	if len(closing) == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, `SELECT wallet_id, line_key, description, quantity, amount, unit_price
		FROM overage_lines WHERE wallet_id = ANY($1) ORDER BY wallet_id, line_key`, closing)
	if err != nil {
		return fmt.Errorf("load invoice lines: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			w     WalletID
			key   string
			l     overageLine
			price *decimal.Decimal
		)
		if err := rows.Scan(&w, &key, &l.description, &l.quantity, &l.amount, &price); err != nil {
			return fmt.Errorf("load invoice lines: %w", err)
		}
		l.unitPrice = price
		if s.lineLoaded[w] == nil {
			s.lineLoaded[w] = map[string]overageLine{}
		}
		s.lineLoaded[w][key] = l
		s.lineKeys[w] = append(s.lineKeys[w], key)
	}
	return rows.Err()
}

// Flush inserts the batch's new grants and writes changed ones, then the
// reactions, top-ups, invoice lines and invoices.
func (s *stage) Flush(ctx context.Context, b *ledger.Batch) error {
	if err := s.flushGrants(ctx, b); err != nil {
		return err
	}
	return s.flushReactions(ctx, b)
}

func (s *stage) flushGrants(ctx context.Context, b *ledger.Batch) error {
	tx := b.Tx()
	if n := len(s.newRows); n > 0 {
		ids, wallets, accounts := make([]uuid.UUID, n), make([]uuid.UUID, n), make([]uuid.UUID, n)
		kinds, statuses := make([]string, n), make([]string, n)
		amounts := make([]ledger.Amount, n)
		prios := make([]int32, n)
		eff := make([]time.Time, n)
		exp := make([]*time.Time, n)
		costs := make([]*ledger.Amount, n)
		descs, metas := make([]*string, n), make([]*string, n)
		fundings := make([]*uuid.UUID, n)
		for i, g := range s.newRows {
			if g.fundingAccount != nil {
				u := uuid.UUID(*g.fundingAccount)
				fundings[i] = &u
			}
			ids[i], wallets[i], accounts[i] = uuid.UUID(g.ID), uuid.UUID(g.WalletID), uuid.UUID(g.account)
			kinds[i], statuses[i], amounts[i], prios[i] = string(g.Kind), string(g.Status), g.Amount, int32(g.Priority)
			eff[i], exp[i], costs[i] = g.EffectiveAt, g.ExpiresAt, g.CostBasis
			descs[i], metas[i] = nullText(g.Description), nullText(string(g.Metadata))
		}
		if _, err := tx.Exec(ctx, `INSERT INTO grants (id, wallet_id, account_id, kind, amount, priority, effective_at, expires_at,
				cost_basis, description, metadata, status, created_at, funding_account_id)
			SELECT u.id, u.w, u.a, u.k, u.amt, u.p, u.eff, u.exp, u.cost, u.descr, u.meta::JSONB, u.st, $13, u.f
			FROM unnest($1::UUID[], $2::UUID[], $3::UUID[], $4::TEXT[], $5::NUMERIC[], $6::INT[], $7::TIMESTAMPTZ[],
				$8::TIMESTAMPTZ[], $9::NUMERIC[], $10::TEXT[], $11::TEXT[], $12::TEXT[], $14::UUID[])
				AS u(id, w, a, k, amt, p, eff, exp, cost, descr, meta, st, f)`,
			ids, wallets, accounts, kinds, amounts, prios, eff, exp, costs, descs, metas, statuses, b.Now(), fundings); err != nil {
			return fmt.Errorf("insert grants: %w", err)
		}
	}
	var changed []*grantState
	for g := range s.dirty {
		if !g.isNew {
			changed = append(changed, g)
		}
	}
	if n := len(changed); n > 0 {
		ids, statuses := make([]uuid.UUID, n), make([]string, n)
		expired, voided := make([]ledger.Amount, n), make([]ledger.Amount, n)
		expAt, voidAt := make([]*time.Time, n), make([]*time.Time, n)
		for i, g := range changed {
			ids[i], statuses[i], expired[i], voided[i], expAt[i], voidAt[i] = uuid.UUID(g.ID), string(g.Status), g.Expired, g.Voided, g.ExpiredAt, g.VoidedAt
		}
		if _, err := tx.Exec(ctx, `UPDATE grants AS g SET status = u.st, expired_amount = u.ex, voided_amount = u.vo,
				expired_at = u.exat, voided_at = u.voat
			FROM unnest($1::UUID[], $2::TEXT[], $3::NUMERIC[], $4::NUMERIC[], $5::TIMESTAMPTZ[], $6::TIMESTAMPTZ[])
				AS u(id, st, ex, vo, exat, voat)
			WHERE g.id = u.id`, ids, statuses, expired, voided, expAt, voidAt); err != nil {
			return fmt.Errorf("update grants: %w", err)
		}
	}
	return nil
}

// usable reports whether debits and holds may draw on g at now.
func (g *grantState) usable(now time.Time) bool {
	return g.Status == GrantActive && !g.EffectiveAt.After(now) && (g.ExpiresAt == nil || g.ExpiresAt.After(now))
}

// burnOrder sorts grants the way they are consumed: lowest priority first,
// then soonest expiry (never-expiring last), then oldest, then by id so the
// order is total.
func burnOrder(gs []*grantState) {
	sort.SliceStable(gs, func(i, j int) bool {
		a, b := gs[i], gs[j]
		if a.Priority != b.Priority {
			return a.Priority < b.Priority
		}
		switch {
		case a.ExpiresAt == nil && b.ExpiresAt != nil:
			return false
		case a.ExpiresAt != nil && b.ExpiresAt == nil:
			return true
		case a.ExpiresAt != nil && !a.ExpiresAt.Equal(*b.ExpiresAt):
			return a.ExpiresAt.Before(*b.ExpiresAt)
		}
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.Before(b.CreatedAt)
		}
		return bytes.Compare(a.ID[:], b.ID[:]) < 0
	})
}

// markDirty records a grant change, undone with the op if it fails.
func (s *stage) markDirty(b *ledger.Batch, g *grantState) {
	saved := g.Grant
	_, was := s.dirty[g]
	s.dirty[g] = struct{}{}
	b.OnUndo(func() {
		g.Grant = saved
		if !was {
			delete(s.dirty, g)
		}
	})
}

// balance computes the wallet's balance from the batch's state.
func (s *stage) balance(b *ledger.Batch, w *walletState) Balance {
	now := b.Now()
	t := s.totals[w.ID]
	bal := Balance{WalletID: w.ID, Asset: w.Asset, AsOf: now, Grants: []GrantBalance{}}
	var remaining ledger.Amount
	live := append([]*grantState(nil), w.grants...)
	burnOrder(live)
	for _, g := range live {
		acc, ok := b.Account(g.account)
		if !ok {
			continue
		}
		posted := acc.Posted(ledger.Credit)
		remaining = remaining.Add(posted)
		bal.Held = bal.Held.Add(acc.Held(ledger.Credit))
		if g.usable(now) {
			bal.Available = bal.Available.Add(acc.Available())
		}
		if g.Status == GrantActive && posted.IsPositive() {
			bal.Grants = append(bal.Grants, GrantBalance{ID: g.ID, Remaining: posted, Priority: g.Priority, ExpiresAt: g.ExpiresAt})
		}
	}
	if acc, ok := b.Account(w.overage); ok {
		bal.Overage = acc.Posted(ledger.Debit)
		bal.Held = bal.Held.Add(acc.DebitsPending)
	}
	bal.Granted, bal.Expired, bal.Voided = t.granted, t.expired, t.voided
	bal.Consumed = t.granted.Sub(t.expired).Sub(t.voided).Sub(remaining)
	return bal
}
