package wallet

import (
	"time"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/ledger"
)

// IncludedGrant is one period's included credits of a subscription's plan.
type IncludedGrant struct {
	Subscription uuid.UUID
	Amount       ledger.Amount
	Priority     int
	ExpiresAt    *time.Time // the period's end; nil when the plan rolls them over
	Description  string
}

// GrantIncluded credits wallet id, inside batch b, with a plan's included
// credits, funded by the asset's funding:included account (which the op
// must declare: sys.IncludedFunding()). The wallet must have been asked for
// in the op's loading (Want). A billing op calls it in the same batch as
// the period it opens, so a period's credits exist exactly when the period
// does.
func GrantIncluded(b ledger.Batch, id WalletID, sys SystemAccounts, g IncludedGrant) (Grant, error) {
	s, w, err := walletFor(b, id)
	if err != nil {
		return Grant{}, err
	}
	sub := g.Subscription
	// custom funding: a void gives the rest back to funding:included, not
	// to the promotional kind it is stored as.
	gs, err := s.creditGrant(b, w, sys.IncludedFunding(), true, ledger.NewAccountID(), Grant{
		ID: GrantID(uuid.New()), Kind: Included, Amount: g.Amount, Priority: g.Priority, EffectiveAt: b.Now(),
		ExpiresAt: g.ExpiresAt, Description: g.Description, SubscriptionID: &sub,
	})
	if err != nil {
		return Grant{}, err
	}
	s.rearm(b, w)
	return gs.Grant, nil
}
