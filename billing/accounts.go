package billing

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/creditledger/creditledger/internal/pg"
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

// customerNamespace derives the ids of a customer's own accounts.
var customerNamespace = uuid.MustParse("6f1d8c9e-3b0a-4f57-9a51-2c7e0d4b8a13")

// customerOwner is the ledger owner of a customer's own accounts.
func customerOwner(customerID string) ledger.OwnerID {
	return ledger.OwnerID(uuid.NewSHA1(customerNamespace, []byte(customerID)))
}

// customerRounding carries the part of a customer's invoice in currency
// below its minor unit to the next one (debit-normal, may go either way).
func customerRounding(customerID, currency string) ledger.AccountID {
	return ledger.AccountID(uuid.NewSHA1(customerNamespace, []byte(customerID+"|rounding|"+currency)))
}

// ensureCustomerRounding opens the customer's rounding account in currency
// unless it is there.
func (s *Service) ensureCustomerRounding(ctx context.Context, customerID, currency string) error {
	return s.db.RunTx(ctx, pg.TxOptions{}, func(ctx context.Context, tx pgx.Tx) error {
		_, err := ledger.InsertAccount(ctx, tx, ledger.AccountSpec{ID: customerRounding(customerID, currency),
			Code: "rounding:customer:" + customerID, Asset: currency, Owner: customerOwner(customerID), Normal: ledger.Debit})
		if err != nil {
			return fmt.Errorf("open rounding account: %w", err)
		}
		return nil
	})
}
