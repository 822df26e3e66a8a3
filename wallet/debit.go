package wallet

import (
	"context"
	"encoding/json"

	"github.com/creditledger/creditledger/ledger"
)

// debitOp burns credits.
type debitOp struct {
	base
	req NewDebit
}

func (o *debitOp) Kind() string { return KindDebit }

func (o *debitOp) Fingerprint() []byte {
	return ledger.Fingerprint(o.Kind(), struct {
		W WalletID
		R NewDebit
	}{o.walletID, o.req})
}

func (o *debitOp) Declare(d *ledger.Decl) { d.Account(o.sys.revenue) }

func (o *debitOp) needs(n *need) {
	o.base.needs(n)
	n.sums = true // the balance the debit answers with shows them
}

func (o *debitOp) Apply(_ context.Context, b ledger.Batch) (any, error) {
	s, w, err := walletFor(b, o.walletID)
	if err != nil {
		return nil, err
	}
	b.Describe(w.ID, o.req.Description, o.req.Metadata)
	sp, err := burnDown(b, w, o.req.Amount, false)
	if err != nil {
		return nil, err
	}
	if err := b.Post(sp.transfers(o.sys.revenue)...); err != nil {
		return nil, credits(err)
	}
	if err := s.react(b, w); err != nil {
		return nil, err
	}
	return Debit{EntryID: b.EntryID(), Amount: o.req.Amount, Covered: sp.covered, Overage: sp.overage, Balance: s.balance(b, w)}, nil
}

// Debit burns credits; with policy allow, what they do not cover goes to
// the overage receivable up to the limit, otherwise the debit is refused
// whole (insufficient_credits) and nothing is posted. The result carries
// the stored JSON: a handler sends it as it is.
func (s *Service) Debit(ctx context.Context, key string, id WalletID, d NewDebit) (ledger.Result[Debit], error) {
	if err := opAmount("amount", d.Amount); err != nil {
		return ledger.Result[Debit]{}, err
	}
	if err := checkText("description", d.Description, 500); err != nil {
		return ledger.Result[Debit]{}, err
	}
	if err := validMetadata("metadata", d.Metadata); err != nil {
		return ledger.Result[Debit]{}, err
	}
	w, err := s.walletRef(ctx, id)
	if err != nil {
		return ledger.Result[Debit]{}, err
	}
	sys, err := s.System(ctx, w.Asset)
	if err != nil {
		return ledger.Result[Debit]{}, err
	}
	return submit[Debit](ctx, s, &debitOp{base: base{key: newKey(key), walletID: id, customer: w.CustomerID, sys: sys}, req: d})
}

// Debit is a debit's result.
type Debit struct {
	EntryID ledger.EntryID `json:"entry_id"`
	Amount  ledger.Amount  `json:"amount"`
	Covered ledger.Amount  `json:"covered"` // by credits
	Overage ledger.Amount  `json:"overage"` // posted to the receivable
	Balance Balance        `json:"balance"`
}

// NewDebit is what Debit needs.
type NewDebit struct {
	Amount      ledger.Amount   `json:"amount"`
	Description string          `json:"description,omitempty"`
	Metadata    json.RawMessage `json:"metadata,omitempty"`
}
