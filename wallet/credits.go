package wallet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/creditledger/creditledger/ledger"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Credits: the grants a batch holds and how an amount burns them down —
// burn-down order, the overage policy and its limit, usage charges that are
// never refused, and the balance an operation answers with. Loading and
// writing the grants is here too (loadGrants, flushGrants): the grant
// book's whole life in one batch.

// credits speaks of a ledger overdraft in a wallet's words: a grant that
// would go below zero is credits the wallet does not have.
func credits(err error) error {
	var rej *ledger.Rejection
	if errors.As(err, &rej) && rej.Code == ledger.CodeOverdraft {
		return ledger.Reject(CodeInsufficientCredits, "%s", rej.Detail)
	}
	return err
}

type grantState struct {
	Grant
	account        ledger.AccountID
	fundingAccount *ledger.AccountID // set when not the funding account of its kind
	isNew          bool
}

// usable reports whether debits and holds may draw on g at now.
func (g *grantState) usable(now time.Time) bool {
	return g.Status == GrantActive && !g.EffectiveAt.After(now) && (g.ExpiresAt == nil || g.ExpiresAt.After(now))
}

// totals are a wallet's grant sums over all its grants, kept current as the
// batch changes them, for the balance an operation answers with.
type totals struct {
	granted, expired, voided ledger.Amount
}

// grantBook is the batch's grants and burn-down: the grants loaded (live, or
// named by an op), the ones the batch made and changed, and each wallet's
// grant sums for the balances ops answer with.
type grantBook struct {
	byID   map[GrantID]*grantState
	fresh  []*grantState
	dirty  map[*grantState]struct{}
	totals map[WalletID]*totals
}

func (g *grantBook) reset() {
	g.byID, g.fresh, g.dirty, g.totals = map[GrantID]*grantState{}, nil, map[*grantState]struct{}{}, map[WalletID]*totals{}
}

// markDirty records a grant change, undone with the op if it fails.
func (s *stage) markDirty(b ledger.Batch, g *grantState) {
	saved := g.Grant
	_, was := s.grants.dirty[g]
	s.grants.dirty[g] = struct{}{}
	b.OnUndo(func() {
		g.Grant = saved
		if !was {
			delete(s.grants.dirty, g)
		}
	})
}

// share is the part of an amount one account takes: a grant's credits, or
// the overage receivable.
type share struct {
	account ledger.AccountID
	amount  ledger.Amount
}

// split is how an amount burns a wallet down: the shares, in burn-down
// order, and how much credits covered and how much goes to overage.
type split struct {
	shares           []share
	covered, overage ledger.Amount
}

// transfers are the split's shares moved to account to (revenue).
func (sp split) transfers(to ledger.AccountID) []ledger.Posting {
	ps := make([]ledger.Posting, 0, 2*len(sp.shares))
	for _, sh := range sp.shares {
		ps = append(ps, ledger.Postings(ledger.Transfer{Debit: sh.account, Credit: to, Amount: sh.amount})...)
	}
	return ps
}

// burnDown splits amount over the wallet's usable grants in burn-down
// order, then over the overage receivable if the policy and its limit
// allow; otherwise it refuses the whole amount (a *ledger.Rejection:
// insufficient_credits). With
// force, whatever credits do not cover goes to overage whatever the policy
// and limit say: usage that already happened. It changes nothing.
func burnDown(b ledger.Batch, w *walletState, amount ledger.Amount, force bool) (split, error) {
	now := b.Now()
	usable := make([]*grantState, 0, len(w.grants))
	for _, g := range w.grants {
		if g.usable(now) {
			usable = append(usable, g)
		}
	}
	burnOrder(usable)
	var sp split
	left := amount
	var available ledger.Amount
	for _, g := range usable {
		acc, ok := b.Account(g.account)
		if !ok {
			continue
		}
		avail := acc.Available()
		available = available.Add(avail)
		if !left.IsPositive() || !avail.IsPositive() {
			continue
		}
		take := avail.Min(left)
		sp.shares = append(sp.shares, share{g.account, take})
		sp.covered, left = sp.covered.Add(take), left.Sub(take)
	}
	if !left.IsPositive() {
		return sp, nil
	}
	if !force && w.OveragePolicy != PolicyAllow {
		return split{}, ledger.Reject(CodeInsufficientCredits, "%s %s needed, %s available", amount, w.Asset, available)
	}
	if !force && w.OverageLimit != nil {
		acc, ok := b.Account(w.overage)
		if !ok {
			return split{}, fmt.Errorf("overage account of wallet %s not locked", w.ID)
		}
		used := acc.Posted(ledger.Debit).Add(acc.DebitsPending)
		if used.Add(left).Cmp(*w.OverageLimit) > 0 {
			return split{}, ledger.Reject(CodeInsufficientCredits,
				"%s %s needed, %s available and %s of the overage limit %s left",
				amount, w.Asset, available, w.OverageLimit.Sub(used).Max(ledger.Zero), w.OverageLimit)
		}
	}
	sp.shares = append(sp.shares, share{w.overage, left})
	sp.overage = left
	return sp, nil
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

// available is what debits of w may still use now.
func available(b ledger.Batch, w *walletState) ledger.Amount {
	now := b.Now()
	var sum ledger.Amount
	for _, g := range w.grants {
		if !g.usable(now) {
			continue
		}
		if acc, ok := b.Account(g.account); ok {
			sum = sum.Add(acc.Available())
		}
	}
	return sum
}

// Charger charges metered usage to wallets inside a batch: the wallet
// module's side of a usage event (see ChargeUsage). Metering holds one, so
// its own rules can be tested against another.
type Charger struct{}

// ChargeUsage is ChargeUsage.
func (Charger) ChargeUsage(b ledger.Batch, id WalletID, sys SystemAccounts, amount ledger.Amount, line UsageLine) (Charge, error) {
	return ChargeUsage(b, id, sys, amount, line)
}

// Charge is what ChargeUsage did.
type Charge struct {
	Amount   ledger.Amount `json:"amount"`   // signed: negative is a credit back
	Covered  ledger.Amount `json:"covered"`  // by credits
	Overage  ledger.Amount `json:"overage"`  // put on the receivable
	Credited ledger.Amount `json:"credited"` // given back (negative deltas)
}

// ChargeUsage charges amount of metered usage to a loaded wallet inside the
// batch. Usage has already happened, so it is never refused: what the
// credits do not cover goes on the overage receivable whatever the policy
// (which governs explicit debits and holds). A negative amount — a volume
// price crossing into a cheaper tier — is credited back: first against
// outstanding overage, the rest as a new credit grant funded by revenue.
//
// What the credits did not cover is added to line, the invoice line the
// usage is billed on when the cycle closes.
func ChargeUsage(b ledger.Batch, id WalletID, sys SystemAccounts, amount ledger.Amount, line UsageLine) (Charge, error) {
	s, w, err := walletFor(b, id)
	if err != nil {
		return Charge{}, err
	}
	c := Charge{Amount: amount}
	switch amount.Sign() {
	case 0:
		return c, nil
	case 1:
		sp, err := burnDown(b, w, amount, true) // forced: never refused for money
		if err != nil {
			return Charge{}, err
		}
		if err := b.Post(sp.transfers(sys.revenue)...); err != nil {
			return Charge{}, err
		}
		c.Covered, c.Overage = sp.covered, sp.overage
		if sp.overage.IsPositive() {
			s.addOverage(b, w.ID, line, amount, sp.overage)
		}
		return c, s.react(b, w)
	}
	back := amount.Neg()
	c.Credited = back
	acc, ok := b.Account(w.overage)
	if !ok {
		return Charge{}, fmt.Errorf("overage account of %s not locked", id)
	}
	if owed := acc.Posted(ledger.Debit).Min(back); owed.IsPositive() {
		if err := b.Post(ledger.Postings(ledger.Transfer{Debit: sys.revenue, Credit: w.overage, Amount: owed})...); err != nil {
			return Charge{}, err
		}
		back = back.Sub(owed)
		c.Overage = owed.Neg()
		s.addOverage(b, w.ID, line, amount, c.Overage)
	}
	if !back.IsPositive() {
		return c, s.react(b, w)
	}
	// A credit back is not a purchase: it does not re-arm the alerts.
	if _, err := s.creditGrant(b, w, sys.revenue, true, ledger.NewAccountID(), Grant{
		ID: GrantID(uuid.New()), Kind: Paid, Amount: back, Priority: 0, EffectiveAt: b.Now(),
		Description: "usage credit: " + line.description(),
	}); err != nil {
		return Charge{}, err
	}
	return c, s.react(b, w)
}

// balance computes the wallet's balance from the batch's state.
func (s *stage) balance(b ledger.Batch, w *walletState) Balance {
	now := b.Now()
	t := s.grants.totals[w.ID]
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

const grantSelect = `SELECT g.id, g.wallet_id, g.account_id, g.kind, g.amount, g.priority, g.effective_at, g.expires_at,
	g.cost_basis, g.description, g.metadata, g.status, g.expired_amount, g.voided_amount, g.created_at, g.voided_at, g.expired_at, g.subscription_id`

// scanGrant reads a grant row; extra receives columns selected after it.
func scanGrant(r pgx.Row, extra ...any) (Grant, ledger.AccountID, error) {
	var (
		g       Grant
		account ledger.AccountID
		kind    string
		status  string
		desc    *string
	)
	dst := append([]any{&g.ID, &g.WalletID, &account, &kind, &g.Amount, &g.Priority, &g.EffectiveAt, &g.ExpiresAt,
		&g.CostBasis, &desc, &g.Metadata, &status, &g.Expired, &g.Voided, &g.CreatedAt, &g.VoidedAt, &g.ExpiredAt, &g.SubscriptionID}, extra...)
	if err := r.Scan(dst...); err != nil {
		return Grant{}, account, fmt.Errorf("scan grant: %w", err)
	}
	g.Kind, g.Status = GrantKind(kind), GrantStatus(status)
	if g.SubscriptionID != nil {
		g.Kind = Included // stored as promotional: see migration 0114
	}
	if desc != nil {
		g.Description = *desc
	}
	g.EffectiveAt, g.CreatedAt = g.EffectiveAt.UTC(), g.CreatedAt.UTC()
	for _, t := range []*time.Time{g.ExpiresAt, g.VoidedAt, g.ExpiredAt} {
		if t != nil {
			*t = t.UTC()
		}
	}
	return g, account, nil
}

// loadGrants reads the grants that can still matter — active ones, ones
// whose account still holds a balance (a hold outlived their void or
// expiry), and ones an op names — and declares their accounts.
func (s *stage) loadGrants(ctx context.Context, b ledger.StageBatch, wids, gids []uuid.UUID) error {
	rows, err := b.Tx().Query(ctx, loadGrantsSQL, wids, gids)
	if err != nil {
		return fmt.Errorf("load grants: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			posted  ledger.Amount
			funding *ledger.AccountID
		)
		g, account, err := scanGrant(rows, &posted, &funding)
		if err != nil {
			return err
		}
		gs := &grantState{Grant: g, account: account, fundingAccount: funding}
		s.grants.byID[g.ID] = gs
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
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load grants: %w", err)
	}
	return nil
}

// flushGrants inserts the batch's new grants and writes changed ones.
func (s *stage) flushGrants(ctx context.Context, b ledger.StageBatch) error {
	tx := b.Tx()
	if n := len(s.grants.fresh); n > 0 {
		ids, wallets, accounts := make([]uuid.UUID, n), make([]uuid.UUID, n), make([]uuid.UUID, n)
		kinds, statuses := make([]string, n), make([]string, n)
		amounts := make([]ledger.Amount, n)
		prios := make([]int32, n)
		eff := make([]time.Time, n)
		exp := make([]*time.Time, n)
		costs := make([]*ledger.Amount, n)
		descs, metas := make([]*string, n), make([]*string, n)
		fundings, subs := make([]*uuid.UUID, n), make([]*uuid.UUID, n)
		for i, g := range s.grants.fresh {
			if g.fundingAccount != nil {
				u := uuid.UUID(*g.fundingAccount)
				fundings[i] = &u
			}
			ids[i], wallets[i], accounts[i] = uuid.UUID(g.ID), uuid.UUID(g.WalletID), uuid.UUID(g.account)
			kinds[i], statuses[i], amounts[i], prios[i] = string(g.Kind), string(g.Status), g.Amount, int32(g.Priority)
			if g.Kind == Included {
				kinds[i], subs[i] = string(Promotional), g.SubscriptionID
			}
			eff[i], exp[i], costs[i] = g.EffectiveAt, g.ExpiresAt, g.CostBasis
			descs[i], metas[i] = nullText(g.Description), nullText(string(g.Metadata))
		}
		if _, err := tx.Exec(ctx, `INSERT INTO grants (id, wallet_id, account_id, kind, amount, priority, effective_at, expires_at,
				cost_basis, description, metadata, status, created_at, funding_account_id, subscription_id)
			SELECT u.id, u.w, u.a, u.k, u.amt, u.p, u.eff, u.exp, u.cost, u.descr, u.meta::JSONB, u.st, $13, u.f, u.sub
			FROM unnest($1::UUID[], $2::UUID[], $3::UUID[], $4::TEXT[], $5::NUMERIC[], $6::INT[], $7::TIMESTAMPTZ[],
				$8::TIMESTAMPTZ[], $9::NUMERIC[], $10::TEXT[], $11::TEXT[], $12::TEXT[], $14::UUID[], $15::UUID[])
				AS u(id, w, a, k, amt, p, eff, exp, cost, descr, meta, st, f, sub)`,
			ids, wallets, accounts, kinds, amounts, prios, eff, exp, costs, descs, metas, statuses, b.Now(), fundings, subs); err != nil {
			return fmt.Errorf("insert grants: %w", err)
		}
	}
	var changed []*grantState
	for g := range s.grants.dirty {
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
		if _, err := tx.Exec(ctx, updateGrantsSQL, ids, statuses, expired, voided, expAt, voidAt); err != nil {
			return fmt.Errorf("update grants: %w", err)
		}
	}
	return nil
}

// loadGrantsSQL reads the grants of wallets (see loadGrants): an index
// probe per wallet and per grant's balance row, whatever the statistics
// (LATERAL subqueries, see loadWalletsSQL).
const loadGrantsSQL = grantSelect + `, bal.credits_posted - bal.debits_posted, g.funding_account_id
		FROM (SELECT DISTINCT id FROM unnest($1::UUID[]) AS u(id)) AS k
		CROSS JOIN LATERAL (SELECT * FROM grants WHERE wallet_id = k.id OFFSET 0) AS g
		CROSS JOIN LATERAL (SELECT credits_posted, debits_posted FROM ledger_balances
			WHERE account_id = g.account_id AND shard = 0 OFFSET 0) AS bal
		WHERE g.status = 'active' OR bal.credits_posted > bal.debits_posted OR g.id = ANY($2)`

// updateGrantsSQL writes the grants a batch expired or voided.
const updateGrantsSQL = `UPDATE grants AS g SET status = u.st, expired_amount = u.ex, voided_amount = u.vo,
				expired_at = u.exat, voided_at = u.voat
			FROM unnest($1::UUID[], $2::TEXT[], $3::NUMERIC[], $4::NUMERIC[], $5::TIMESTAMPTZ[], $6::TIMESTAMPTZ[])
				AS u(id, st, ex, vo, exat, voat)
			WHERE g.id = u.id`
