package wallet

import (
	"context"
	"fmt"

	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/ledger"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// systemAccounts are the per-asset accounts on the other side of wallets.
type systemAccounts struct {
	paid, promotional ledger.AccountID // funding: debit-normal
	revenue, breakage ledger.AccountID // credit-normal
	receivable        ledger.AccountID // debit-normal: what invoices bill
}

func (s systemAccounts) funding(k GrantKind) ledger.AccountID {
	if k == Promotional {
		return s.promotional
	}
	return s.paid
}

// walletAccountID is the id of one of a wallet's own bookkeeping accounts,
// derived from the wallet's id so every op can name it without a lookup.
func walletAccountID(w WalletID, code string) ledger.AccountID {
	return ledger.AccountID(uuid.NewSHA1(uuid.UUID(w), []byte(code)))
}

// billableAccount funds immediate top-ups: what the customer owes for them
// until an invoice settles it (debit-normal). It may go negative: voiding a
// top-up's grant after it was invoiced gives the rest back, a credit on the
// next invoice.
func billableAccount(w WalletID) ledger.AccountID { return walletAccountID(w, "billable") }

// roundingAccount carries the part of an invoice below the currency's
// minor unit to the next invoice (debit-normal, may go either way).
func roundingAccount(w WalletID) ledger.AccountID { return walletAccountID(w, "rounding") }

// insertWalletAccounts opens wallet w's billable and rounding accounts in
// tx, unless they are there.
func insertWalletAccounts(ctx context.Context, tx pgx.Tx, w WalletID, asset string) error {
	for _, a := range []ledger.AccountSpec{
		{ID: billableAccount(w), Code: "billable:" + w.String(), Asset: asset, Owner: w, Normal: ledger.Debit},
		{ID: roundingAccount(w), Code: "rounding:" + w.String(), Asset: asset, Owner: w, Normal: ledger.Debit},
	} {
		if _, err := ledger.InsertAccount(ctx, tx, a); err != nil {
			return err
		}
	}
	return nil
}

// ensureWalletAccounts opens w's billable and rounding accounts if they are
// not there yet: wallets made before they existed get them on first use.
// It is remembered in the bounded wallet map, not in the ledger's account
// cache, which is for system accounts and would grow with every wallet a
// monthly close touches.
func (s *Service) ensureWalletAccounts(ctx context.Context, w Wallet) error {
	if s.wallets.accountsOpened(w.ID) {
		return nil
	}
	err := s.db.RunTx(ctx, pg.TxOptions{}, func(ctx context.Context, tx pgx.Tx) error {
		return insertWalletAccounts(ctx, tx, w.ID, w.Asset)
	})
	if err != nil {
		return fmt.Errorf("open wallet accounts: %w", err)
	}
	s.wallets.openedAccounts(w.ID)
	return nil
}

// SystemAccounts are an asset's funding and revenue accounts, resolved by
// Service.System before an op that charges usage is submitted.
type SystemAccounts = systemAccounts

// System returns the asset's system accounts, creating them on first use.
func (s *Service) System(ctx context.Context, asset string) (SystemAccounts, error) {
	var out systemAccounts
	for _, a := range []struct {
		dst    *ledger.AccountID
		code   string
		normal ledger.Normal
	}{
		{&out.paid, "funding:paid", ledger.Debit},
		{&out.promotional, "funding:promotional", ledger.Debit},
		{&out.revenue, "revenue:usage", ledger.Credit},
		{&out.breakage, "revenue:breakage", ledger.Credit},
		{&out.receivable, "receivable:invoices", ledger.Debit},
	} {
		acc, err := s.l.EnsureAccount(ctx, ledger.AccountSpec{Code: a.code, Asset: asset, Normal: a.normal, Hot: true})
		if err != nil {
			return out, err
		}
		*a.dst = acc.ID
	}
	return out, nil
}
