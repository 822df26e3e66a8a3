package wallet

import (
	"context"
	"fmt"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/ledger"
	"github.com/google/uuid"
)

// closeGrantOp voids a grant (void) or expires it (sweeper), posting what
// remains available to the funding account or to breakage. Run again on a
// closed grant it settles what a hold left behind since.
type closeGrantOp struct {
	base
	grantID GrantID
	expire  bool
	// snapshot makes the sweeper's key unique per state of the grant, so a
	// later sweep is a new operation and a concurrent one a replay.
	snapshot string
}

func (o *closeGrantOp) Kind() string {
	if o.expire {
		return KindGrantExpiry
	}
	return KindGrantVoid
}

func (o *closeGrantOp) Fingerprint() []byte {
	return ledger.Fingerprint(o.Kind(), struct {
		G GrantID
		S string
	}{o.grantID, o.snapshot})
}

// needs names the grant: it is loaded even when no longer active.
func (o *closeGrantOp) needs(n *need) {
	o.base.needs(n)
	n.grants = append(n.grants, uuid.UUID(o.grantID))
}

func (o *closeGrantOp) Declare(d *ledger.Decl) {
	d.Account(o.sys.breakage)
	d.Account(o.sys.paid)
	d.Account(o.sys.promotional)
}

func (o *closeGrantOp) Apply(_ context.Context, b ledger.Batch) (any, error) {
	s, w, err := walletFor(b, o.walletID)
	if err != nil {
		return nil, err
	}
	g := s.grants.byID[o.grantID]
	if g == nil {
		return nil, fault.NotFoundf("no grant %s", o.grantID)
	}
	now := b.Now()
	b.Describe(w.ID, "", nil)
	switch {
	case !o.expire && g.Status == GrantExpired:
		return nil, ledger.Reject(CodeGrantClosed, "grant %s has expired", g.ID)
	case !o.expire && g.Status == GrantVoided && o.snapshot == "":
		return nil, ledger.Reject(CodeGrantClosed, "grant %s is already voided", g.ID)
	case o.expire && g.Status == GrantVoided, o.expire && g.Status == GrantActive && (g.ExpiresAt == nil || g.ExpiresAt.After(now)):
		// Voided meanwhile, or not yet due: nothing to expire.
		return s.grantView(b, g), nil
	}
	acc, ok := b.Account(g.account)
	if !ok {
		return nil, fmt.Errorf("grant account %s not locked", g.account)
	}
	// What holds reserve stays until they close; the sweeper settles it then.
	rest := acc.Available()
	dest := o.sys.funding(g.Kind)
	if g.fundingAccount != nil {
		dest = *g.fundingAccount
	}
	if o.expire {
		dest = o.sys.breakage
	}
	if rest.IsPositive() {
		if err := b.Post(ledger.Postings(ledger.Transfer{Debit: g.account, Credit: dest, Amount: rest})...); err != nil {
			return nil, err
		}
	}
	wasActive := g.Status == GrantActive
	s.markDirty(b, g)
	t := s.grants.totals[w.ID]
	savedT := *t
	b.OnUndo(func() { *t = savedT })
	if o.expire {
		g.Expired, t.expired = g.Expired.Add(rest), t.expired.Add(rest)
		if wasActive {
			g.Status, g.ExpiredAt = GrantExpired, &now
		}
	} else {
		g.Voided, t.voided = g.Voided.Add(rest), t.voided.Add(rest)
		if wasActive {
			g.Status, g.VoidedAt = GrantVoided, &now
		}
	}
	if err := s.react(b, w); err != nil {
		return nil, err
	}
	view := s.grantView(b, g)
	if o.expire && wasActive {
		if err := b.Emit(TopicGrantExpired, w.ID, struct {
			Grant
			CustomerID string `json:"customer_id"`
		}{view, w.CustomerID}); err != nil {
			return nil, err
		}
	}
	return view, nil
}

// grantView is the grant as the API shows it, with its current remainder.
func (s *stage) grantView(b ledger.Batch, g *grantState) Grant {
	v := g.Grant
	if acc, ok := b.Account(g.account); ok {
		v.Remaining = acc.Posted(ledger.Credit)
	}
	return v
}

// VoidGrant reverses what remains of a grant to its funding account.
func (s *Service) VoidGrant(ctx context.Context, key string, id GrantID) (ledger.Result[Grant], error) {
	g, err := s.GrantByID(ctx, id)
	if err != nil {
		return ledger.Result[Grant]{}, err
	}
	w, err := s.walletRef(ctx, g.WalletID)
	if err != nil {
		return ledger.Result[Grant]{}, err
	}
	sys, err := s.System(ctx, w.Asset)
	if err != nil {
		return ledger.Result[Grant]{}, err
	}
	return submit[Grant](ctx, s, &closeGrantOp{base: base{key: newKey(key), walletID: g.WalletID, customer: w.CustomerID, sys: sys}, grantID: id})
}
