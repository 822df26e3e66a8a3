package wallet

import (
	"context"

	"time"

	"github.com/creditledger/creditledger/internal/cursor"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/ledger"
)

// Service is the wallet API of the domain. Money-moving methods take an
// idempotency key ("" makes a fresh one) and answer with the op's stored
// result (ledger.Result: its JSON, and whether it is a replay of an earlier
// call with the same key). Errors speak the fault vocabulary: business
// refusals are *ledger.Rejection (fault.Refused), recorded under the key,
// so the same key gets the same refusal; a key reused with another payload
// is fault.Idempotency; bad input is fault.Invalid naming the field;
// unknown ids are fault.NotFound.
type Service struct {
	l       *ledger.Ledger
	db      *pg.DB
	now     func() time.Time
	wallets walletCache
	cache   *BalanceCache // nil: balances are read from the database
}

// NewService returns the wallet service on a ledger whose poster was built
// with Module() among its modules.
func NewService(l *ledger.Ledger) *Service {
	return &Service{l: l, db: l.DB(), now: l.Now}
}

// Module is the wallet stage for the poster: pass it in ledger.Options.Modules.
func Module() ledger.Module { return module{} }

// Entries lists the wallet's journal entries, newest first.
func (s *Service) Entries(ctx context.Context, id WalletID, after *cursor.Cursor, limit int) ([]ledger.Entry, *cursor.Cursor, error) {
	if _, err := s.walletRef(ctx, id); err != nil {
		return nil, nil, err
	}
	return s.l.EntriesOf(ctx, id, after, limit, false)
}
