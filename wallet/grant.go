package wallet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/ledger"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Outbox topics.
const TopicGrantExpired = "grant.expired"

// addGrantOp credits a new grant.
type addGrantOp struct {
	base
	grantID GrantID
	account ledger.AccountID
	req     NewGrant
	prio    int
	eff     *time.Time
	// costBasis stands in for the request's when it gives none: what paid
	// credits of a priced asset cost (defaultCostBasis). Not in the
	// fingerprint: a retry after a price change is the same request.
	costBasis *ledger.Amount
}

func (o *addGrantOp) Kind() string { return KindGrant }

func (o *addGrantOp) Fingerprint() []byte {
	return ledger.Fingerprint(o.Kind(), struct {
		W WalletID
		R NewGrant
	}{o.walletID, o.req})
}

func (o *addGrantOp) Declare(d *ledger.Decl) {
	d.Account(o.sys.funding(o.req.Kind))
}

func (o *addGrantOp) Apply(_ context.Context, b ledger.Batch) (any, error) {
	s, w, err := walletFor(b, o.walletID)
	if err != nil {
		return nil, err
	}
	eff := b.Now()
	if o.eff != nil {
		eff = *o.eff
	}
	b.Describe(w.ID, o.req.Description, o.req.Metadata)
	g, err := s.creditGrant(b, w, o.sys.funding(o.req.Kind), false, o.account, Grant{
		ID: o.grantID, Kind: o.req.Kind, Amount: o.req.Amount, Priority: o.prio, EffectiveAt: eff, ExpiresAt: o.req.ExpiresAt,
		CostBasis: cmpOr(o.req.CostBasis, o.costBasis), Description: o.req.Description, Metadata: o.req.Metadata,
	})
	if err != nil {
		return nil, err
	}
	s.rearm(b, w)
	return g.Grant, nil
}

// creditGrant opens grant g's account (id account) in w, funds it from
// funding, and adds the grant to the batch. custom says funding is not the
// grant kind's funding account, so a void gives the rest back to funding.
func (s *stage) creditGrant(b ledger.Batch, w *walletState, funding ledger.AccountID, custom bool, account ledger.AccountID, g Grant) (*grantState, error) {
	now := b.Now()
	if _, err := b.CreateAccount(ledger.AccountSpec{
		ID: account, Code: "grant:" + g.ID.String(), Asset: w.Asset, Owner: w.ID,
		Normal: ledger.Credit, NoOverdraft: true,
	}); err != nil {
		return nil, err
	}
	if err := b.Post(ledger.Postings(ledger.Transfer{Debit: funding, Credit: account, Amount: g.Amount})...); err != nil {
		return nil, err
	}
	g.WalletID, g.Remaining, g.Status, g.CreatedAt = w.ID, g.Amount, GrantActive, now
	gs := &grantState{isNew: true, account: account, Grant: g}
	if custom {
		gs.fundingAccount = &funding
	}
	s.grants.byID[g.ID] = gs
	w.grants = append(w.grants, gs)
	s.grants.fresh = append(s.grants.fresh, gs)
	t := s.grants.totals[w.ID]
	t.granted = t.granted.Add(g.Amount)
	b.OnUndo(func() {
		delete(s.grants.byID, g.ID)
		w.grants = w.grants[:len(w.grants)-1]
		s.grants.fresh = s.grants.fresh[:len(s.grants.fresh)-1]
		t.granted = t.granted.Sub(g.Amount)
	})
	return gs, nil
}

// AddGrant credits the wallet with a new grant.
func (s *Service) AddGrant(ctx context.Context, key string, id WalletID, g NewGrant) (ledger.Result[Grant], error) {
	if err := opAmount("amount", g.Amount); err != nil {
		return ledger.Result[Grant]{}, err
	}
	if g.Kind != Paid && g.Kind != Promotional {
		return ledger.Result[Grant]{}, fault.Invalidf("kind", "must be paid or promotional")
	}
	prio := 50
	if g.Priority != nil {
		prio = *g.Priority
		if prio < 0 || prio > 1000 {
			return ledger.Result[Grant]{}, fault.Invalidf("priority", "from 0 to 1000")
		}
	}
	if g.CostBasis != nil && g.CostBasis.IsNegative() {
		return ledger.Result[Grant]{}, fault.Invalidf("cost_basis", "must not be negative")
	}
	if err := checkText("description", g.Description, 500); err != nil {
		return ledger.Result[Grant]{}, err
	}
	if err := validMetadata("metadata", g.Metadata); err != nil {
		return ledger.Result[Grant]{}, err
	}
	var eff *time.Time
	if g.EffectiveAt != nil {
		t := g.EffectiveAt.UTC().Truncate(time.Microsecond)
		eff, g.EffectiveAt = &t, &t
	}
	if g.ExpiresAt != nil {
		t := g.ExpiresAt.UTC().Truncate(time.Microsecond)
		g.ExpiresAt = &t
		start := s.now()
		if eff != nil {
			start = *eff
		}
		if !t.After(start) {
			return ledger.Result[Grant]{}, fault.Invalidf("expires_at", "must be after effective_at (or now)")
		}
	}
	w, err := s.walletRef(ctx, id)
	if err != nil {
		return ledger.Result[Grant]{}, err
	}
	sys, err := s.System(ctx, w.Asset)
	if err != nil {
		return ledger.Result[Grant]{}, err
	}
	cost, err := s.defaultCostBasis(ctx, w.Asset, g)
	if err != nil {
		return ledger.Result[Grant]{}, err
	}
	return submit[Grant](ctx, s, &addGrantOp{
		base:    base{key: newKey(key), walletID: id, customer: w.CustomerID, sys: sys},
		grantID: GrantID(uuid.New()), account: ledger.NewAccountID(), req: g, prio: prio, eff: eff, costBasis: cost,
	})
}

// Grants lists a wallet's grants, newest first.
func (s *Service) Grants(ctx context.Context, id WalletID) ([]Grant, error) {
	if _, err := s.walletRef(ctx, id); err != nil {
		return nil, err
	}
	rows, err := s.db.Pool.Query(ctx, grantSelect+`, bal.credits_posted - bal.debits_posted
		FROM grants g JOIN ledger_balances bal ON bal.account_id = g.account_id AND bal.shard = 0
		WHERE g.wallet_id = $1 ORDER BY g.created_at DESC, g.id DESC`, id)
	if err != nil {
		return nil, fmt.Errorf("list grants: %w", err)
	}
	defer rows.Close()
	out := []Grant{}
	for rows.Next() {
		var remaining ledger.Amount
		g, _, err := scanGrant(rows, &remaining)
		if err != nil {
			return nil, err
		}
		g.Remaining = remaining
		out = append(out, g)
	}
	return out, rows.Err()
}

// GrantByID reads one grant.
func (s *Service) GrantByID(ctx context.Context, id GrantID) (Grant, error) {
	var remaining ledger.Amount
	g, _, err := scanGrant(s.db.Pool.QueryRow(ctx, grantSelect+`, bal.credits_posted - bal.debits_posted
		FROM grants g JOIN ledger_balances bal ON bal.account_id = g.account_id AND bal.shard = 0
		WHERE g.id = $1`, id), &remaining)
	if errors.Is(err, pgx.ErrNoRows) {
		return Grant{}, fault.NotFoundf("no grant %s", id)
	}
	if err != nil {
		return Grant{}, err
	}
	g.Remaining = remaining
	return g, nil
}

// GrantKind is who paid for a grant.
type GrantKind string

const (
	Paid        GrantKind = "paid"
	Promotional GrantKind = "promotional"
	// Included credits come with a subscription's plan, each period
	// (GrantIncluded); only billing makes them.
	Included GrantKind = "included"
)

// GrantStatus is a grant's state.
type GrantStatus string

const (
	GrantActive  GrantStatus = "active"
	GrantVoided  GrantStatus = "voided"
	GrantExpired GrantStatus = "expired"
)

// Grant is a block of credits.
type Grant struct {
	ID          GrantID         `json:"id"`
	WalletID    WalletID        `json:"wallet_id"`
	Kind        GrantKind       `json:"kind"`
	Amount      ledger.Amount   `json:"amount"`
	Remaining   ledger.Amount   `json:"remaining"` // posted balance not yet burned, voided or expired
	Priority    int             `json:"priority"`
	EffectiveAt time.Time       `json:"effective_at"`
	ExpiresAt   *time.Time      `json:"expires_at"`
	CostBasis   *ledger.Amount  `json:"cost_basis,omitempty"`
	Description string          `json:"description,omitempty"`
	Metadata    json.RawMessage `json:"metadata,omitempty"`
	// SubscriptionID is the subscription whose plan included the credits.
	SubscriptionID *uuid.UUID    `json:"subscription_id,omitempty"`
	Status         GrantStatus   `json:"status"`
	Expired        ledger.Amount `json:"expired"` // posted to breakage at expiry
	Voided         ledger.Amount `json:"voided"`  // reversed by a void
	CreatedAt      time.Time     `json:"created_at"`
	VoidedAt       *time.Time    `json:"voided_at,omitempty"`
	ExpiredAt      *time.Time    `json:"expired_at,omitempty"`
}

// NewGrant is what AddGrant needs.
type NewGrant struct {
	Amount      ledger.Amount   `json:"amount"`
	Kind        GrantKind       `json:"kind"`
	Priority    *int            `json:"priority,omitempty"` // default 50; lower burns first
	EffectiveAt *time.Time      `json:"effective_at,omitempty"`
	ExpiresAt   *time.Time      `json:"expires_at,omitempty"`
	CostBasis   *ledger.Amount  `json:"cost_basis,omitempty"`
	Description string          `json:"description,omitempty"`
	Metadata    json.RawMessage `json:"metadata,omitempty"`
}
