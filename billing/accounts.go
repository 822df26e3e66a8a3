package billing

import (
	"context"

	"github.com/creditledger/creditledger/ledger"
)

// moneyAccounts are a currency's accounts on the other side of a
// subscription's invoice: the receivable it bills into, and the revenue of
// base fees and of commitment true-ups.
type moneyAccounts struct {
	receivable ledger.AccountID
	fees       ledger.AccountID
	commitment ledger.AccountID
}

func (s *Service) moneyAccounts(ctx context.Context, currency string) (moneyAccounts, error) {
	sys, err := s.wallets.System(ctx, currency)
	if err != nil {
		return moneyAccounts{}, err
	}
	out := moneyAccounts{receivable: sys.Receivable()}
	for _, a := range []struct {
		dst  *ledger.AccountID
		code string
	}{{&out.fees, "revenue:fees"}, {&out.commitment, "revenue:commitment"}} {
		acc, err := s.l.EnsureAccount(ctx, ledger.AccountSpec{Code: a.code, Asset: currency, Normal: ledger.Credit, Hot: true})
		if err != nil {
			return out, err
		}
		*a.dst = acc.ID
	}
	return out, nil
}
