// Package billing turns what wallets owe into invoices: per-wallet billing
// cycles today's way, and — for customers on a plan — subscriptions whose
// periods bill a base fee, the usage the credits did not cover, and a
// minimum commitment, in money. It owns invoices from the moment they are
// issued: their numbers, lines, totals and rounding carry, and their life
// (paid, void).
//
// Closing is a ledger operation like any other (keyed by the period, so it
// happens once however many schedulers, API calls and restarts ask): the
// billing stage loads what the close needs and hands the wallets it settles
// to the wallet stage (it feeds the wallet module), the op moves the
// receivables into the invoice with balanced postings, and the stage writes
// the invoice in the same transaction.
package billing

import (
	"log/slog"

	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/metering"
	"github.com/creditledger/creditledger/wallet"
)

// Service issues and reads invoices.
type Service struct {
	l       *ledger.Ledger
	db      *pg.DB
	wallets *wallet.Service
	meters  *metering.Service
	log     *slog.Logger
	seller  string // printed on HTML invoices (html.go)
}

// NewService returns the billing service over ledger l, which must be
// built with Module() and wallet.Module(). It prices subscribed customers'
// usage: meters.SetBooks(it) is called here.
func NewService(l *ledger.Ledger, wallets *wallet.Service, meters *metering.Service, log *slog.Logger) *Service {
	if log == nil {
		log = slog.Default()
	}
	s := &Service{l: l, db: l.DB(), wallets: wallets, meters: meters, log: log}
	meters.SetBooks(s)
	return s
}
