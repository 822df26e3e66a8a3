package wallet

import (
	"context"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/ledger"
)

// Journal entry kinds of wallet operations. Point-in-time balances classify
// postings by them.
const (
	KindGrant       = "grant"
	KindDebit       = "debit"
	KindHold        = "hold"
	KindGrantVoid   = "grant_void"
	KindGrantExpiry = "grant_expiry"
)

// Route is the one routing function of wallet operations: every operation
// of a customer — grants, debits, holds with their captures, voids and
// expiries, top-ups, closes, and the customer's usage events — goes to one
// poster shard, so they apply in order and never contend across shards.
func Route(customer string) uint64 { return ledger.ShardOf(customer) }

// base carries what every wallet op has. Fingerprints cover the request,
// never ids the service generated for it, so a retried request matches.
type base struct {
	key      string
	walletID WalletID
	customer string // routes the op (Route)
	sys      systemAccounts
}

func (o *base) Key() string      { return o.key }
func (o *base) ShardKey() uint64 { return Route(o.customer) }
func (o *base) Module() string   { return moduleName }
func (o *base) needs(n *need)    { n.wallet(o.walletID) }

// walletFor returns the op's wallet from the stage. The service checked it
// exists before submitting; a wallet missing here was never there.
func walletFor(b ledger.Batch, id WalletID) (*stage, *walletState, error) {
	s, err := stageOf(b)
	if err != nil {
		return nil, nil, err
	}
	w := s.wallets[id]
	if w == nil {
		return nil, nil, fault.NotFoundf("no wallet %s", id)
	}
	return s, w, nil
}

// submit runs op through the poster and answers with its stored result.
func submit[T any](ctx context.Context, s *Service, o ledger.Op) (ledger.Result[T], error) {
	return ledger.Answer[T](s.l.Submit(ctx, o))
}

func newKey(key string) string {
	if key == "" {
		return "auto:" + uuid.NewString()
	}
	return key
}

// opAmount checks an amount a request asks to move: above zero and within
// the ledger's limit per operation, so a request is refused with a 422
// naming the field long before any counter could come near its limit.
func opAmount(field string, a ledger.Amount) error {
	if !a.IsPositive() {
		return fault.Invalidf(field, "must be greater than zero")
	}
	if ledger.CheckOpAmount(a) != nil {
		return fault.Invalidf(field, "at most %s per operation", ledger.MaxOpAmount)
	}
	return nil
}
