package wallet

import (
	"context"
	"errors"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/ledger"
)

// What a priced wallet's credits are worth inside a batch: the wallet
// stage loads its asset's current price with the wallet (one LEFT JOIN, no
// query of its own: priceColumns in reactions.go, beside the auto top-up
// rule it serves), so an op that starts a top-up prices it without SQL.

// creditPrice is one credit's current price.
type creditPrice struct {
	currency string
	unit     ledger.Amount
}

// topup sets t's price and currency: its amount at the price in force now.
// Unpriced credits (p nil) leave them absent.
func (p *creditPrice) topup(t *Topup) error {
	if p == nil {
		return nil
	}
	price, err := Money(t.Amount.Decimal(), p.unit.Decimal())
	if err != nil {
		return err
	}
	cur := p.currency
	t.Price, t.Currency = &price, &cur
	return nil
}

// paidPrice is the cost basis of a top-up's grant: what the customer pays
// for it, when it is paid credits of a priced asset.
func paidPrice(k GrantKind, price *ledger.Amount) *ledger.Amount {
	if k != Paid {
		return nil
	}
	return price
}

// defaultCostBasis is the cost basis of a paid grant whose request gives
// none, in a priced asset: its amount at the current unit price, in the
// asset's currency (cost_basis is what the customer paid, in total).
func (s *Service) defaultCostBasis(ctx context.Context, asset string, g NewGrant) (*ledger.Amount, error) {
	if g.Kind != Paid || g.CostBasis != nil {
		return nil, nil
	}
	a, err := s.Asset(ctx, asset)
	if errors.Is(err, fault.NotFound) || (err == nil && !a.Priced()) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	cost, err := Money(g.Amount.Decimal(), a.UnitPrice.Decimal())
	if err != nil {
		return nil, err
	}
	return &cost, nil
}

// cmpOr is the first of a and b that is set.
func cmpOr(a, b *ledger.Amount) *ledger.Amount {
	if a != nil {
		return a
	}
	return b
}
