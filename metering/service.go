// Package metering turns usage events into money: event validation, meters
// (count, sum, max, unique_count, latest, with filters and group-by), the
// running aggregate per customer, meter, dimensions and billing cycle, and
// the ingest path that NATS and HTTP share. Each event is one ledger
// operation: its aggregate moves from q0 to q1 and the customer's wallet is
// charged price(q1) − price(q0), in the same transaction.
package metering

import (
	"log/slog"

	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/wallet"
)

// MaxBatchEvents is the most events one ingest call takes.
const MaxBatchEvents = 1000

// Service is metering: meters, prices, ingest, usage.
type Service struct {
	l        *ledger.Ledger
	db       *pg.DB
	wallets  *wallet.Service
	log      *slog.Logger
	observer Observer
	charger  Charger
	specs    specs // parsed price specs
	books    Books // subscribed customers' price books; nil: the default book only
}

// Charger charges a usage event's price to a customer's wallet inside the
// batch: the wallet module's side of an event (wallet.Charger). Metering's
// own rules — which meters count an event, how its aggregate moves, which
// price applies and what the marginal charge is — are tested against
// another.
type Charger interface {
	ChargeUsage(b ledger.Batch, id wallet.WalletID, sys wallet.SystemAccounts, amount ledger.Amount, line wallet.UsageLine) (wallet.Charge, error)
}

// NewService returns metering on a ledger built with Module() and
// wallet.Module(), in that order.
func NewService(l *ledger.Ledger, wallets *wallet.Service, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{l: l, db: l.DB(), wallets: wallets, log: log, observer: NopObserver{}, charger: wallet.Charger{}}
}

// Observe sends ingestion's outcomes to o (metrics). Call it before the
// service is used.
func (s *Service) Observe(o Observer) { s.observer = o }
