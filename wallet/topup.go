package wallet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/cursor"
	"github.com/creditledger/creditledger/ledger"
)

// TopupStatus is a top-up's state.
type TopupStatus string

const (
	TopupRequested TopupStatus = "requested" // in flight
	TopupSucceeded TopupStatus = "succeeded"
	TopupFailed    TopupStatus = "failed"
)

// Outbox topics and rejection code of top-ups.
const (
	TopicTopupRequested = "topup.requested"
	TopicTopupSucceeded = "topup.succeeded"
	TopicTopupFailed    = "topup.failed"
	CodeTopupClosed     = "topup_closed"
	KindTopup           = "topup"
	KindTopupFailure    = "topup_failure"
)

// Topup is one top-up an auto top-up rule started.
type Topup struct {
	ID                 TopupID       `json:"id"`
	WalletID           WalletID      `json:"wallet_id"`
	CustomerID         string        `json:"customer_id"`
	Asset              string        `json:"asset"`
	Amount             ledger.Amount `json:"amount"`
	Kind               GrantKind     `json:"kind"`
	Payment            Payment       `json:"payment"`
	Status             TopupStatus   `json:"status"`
	AvailableAtRequest ledger.Amount `json:"available_at_request"`
	GrantID            *GrantID      `json:"grant_id,omitempty"`
	InvoiceID          *InvoiceID    `json:"invoice_id,omitempty"`
	FailureReason      string        `json:"failure_reason,omitempty"`
	CreatedAt          time.Time     `json:"created_at"`
	CompletedAt        *time.Time    `json:"completed_at,omitempty"`

	// Price is what the top-up costs in Currency when the wallet's credits
	// are priced: Amount × the unit price in force when it was requested,
	// for the app to charge. Absent for unpriced credits.
	Price    *ledger.Amount `json:"price,omitempty"`
	Currency *string        `json:"currency,omitempty"`
}

// settleTopupOp confirms a top-up (crediting it) or records its failure.
type settleTopupOp struct {
	base
	topupID TopupID
	confirm bool
	reason  string
}

func (o *settleTopupOp) needs(n *need) {
	o.base.needs(n)
	n.topups = append(n.topups, uuid.UUID(o.topupID))
}

func (o *settleTopupOp) Kind() string {
	if o.confirm {
		return KindTopup
	}
	return KindTopupFailure
}

// Fingerprint names the top-up only: settling is idempotent by what it
// names, so failing it again with other words replays the first failure
// (and its reason) rather than refusing the retry as a key conflict the
// caller, who sent no key, could not resolve.
func (o *settleTopupOp) Fingerprint() []byte {
	return ledger.Fingerprint(o.Kind(), o.topupID)
}
func (o *settleTopupOp) Declare(d *ledger.Decl) {
	d.Account(o.sys.paid)
	d.Account(o.sys.promotional)
	d.Account(billableAccount(o.walletID))
}

func (o *settleTopupOp) Apply(_ context.Context, b ledger.Batch) (any, error) {
	s, w, err := walletFor(b, o.walletID)
	if err != nil {
		return nil, err
	}
	t := s.topups.byID[o.topupID]
	if t == nil {
		return nil, fault.NotFoundf("no top-up %s", o.topupID)
	}
	if t.Status != TopupRequested {
		return nil, ledger.Reject(CodeTopupClosed, "top-up %s has already %s", t.ID, t.Status)
	}
	now := b.Now()
	b.Describe(w.ID, "auto top-up "+t.ID.String(), nil)
	saved := t.Topup
	s.topups.dirty[t] = struct{}{}
	b.OnUndo(func() { t.Topup = saved; delete(s.topups.dirty, t) })
	t.CompletedAt = &now
	if !o.confirm {
		t.Status, t.FailureReason = TopupFailed, o.reason
		s.setReactions(b, w, func(r *reactions) {
			if r.TopupInFlight != nil && *r.TopupInFlight == t.ID {
				r.TopupInFlight = nil
			}
			r.TopupFailures++
			retry := now.Add(topupBackoff(r.TopupFailures))
			r.TopupRetry = &retry
		})
		return t.Topup, b.Emit(TopicTopupFailed, w.ID, t.Topup)
	}
	funding, custom := o.sys.funding(t.Kind), false
	if t.Payment == PaymentImmediate {
		// Not paid yet: the customer owes it, on the next invoice.
		funding, custom = billableAccount(w.ID), true
	}
	meta, _ := json.Marshal(map[string]string{"topup_id": t.ID.String()}) // strings: cannot fail
	g, err := s.creditGrant(b, w, funding, custom, ledger.NewAccountID(), Grant{
		ID: GrantID(uuid.New()), Kind: t.Kind, Amount: t.Amount, Priority: 50, EffectiveAt: now,
		Description: "auto top-up", Metadata: meta, CostBasis: paidPrice(t.Kind, t.Price),
	})
	if err != nil {
		return nil, err
	}
	t.Status, t.GrantID = TopupSucceeded, &g.ID
	if t.Payment == PaymentImmediate {
		s.topups.billable[w.ID] = append(s.topups.billable[w.ID], t)
		b.OnUndo(func() { s.topups.billable[w.ID] = s.topups.billable[w.ID][:len(s.topups.billable[w.ID])-1] })
	}
	s.rearm(b, w)
	s.setReactions(b, w, func(r *reactions) {
		if r.TopupInFlight != nil && *r.TopupInFlight == t.ID {
			r.TopupInFlight = nil
		}
		r.TopupFailures, r.TopupRetry = 0, nil
	})
	return t.Topup, b.Emit(TopicTopupSucceeded, w.ID, t.Topup)
}

const topupSelect = `SELECT id, wallet_id, customer_id, asset, amount, kind, payment, status, available_at_request,
	grant_id, invoice_id, failure_reason, created_at, completed_at, price, currency FROM topups`

func scanTopup(row pgx.Row) (Topup, error) {
	var (
		t                     Topup
		kind, payment, status string
		reason                *string
	)
	if err := row.Scan(&t.ID, &t.WalletID, &t.CustomerID, &t.Asset, &t.Amount, &kind, &payment, &status, &t.AvailableAtRequest,
		&t.GrantID, &t.InvoiceID, &reason, &t.CreatedAt, &t.CompletedAt, &t.Price, &t.Currency); err != nil {
		return t, err
	}
	t.Kind, t.Payment, t.Status = GrantKind(kind), Payment(payment), TopupStatus(status)
	if reason != nil {
		t.FailureReason = *reason
	}
	t.CreatedAt = t.CreatedAt.UTC()
	if t.CompletedAt != nil {
		c := t.CompletedAt.UTC()
		t.CompletedAt = &c
	}
	return t, nil
}

// Topup reads a top-up.
func (s *Service) Topup(ctx context.Context, id TopupID) (Topup, error) {
	t, err := scanTopup(s.db.Pool.QueryRow(ctx, topupSelect+` WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Topup{}, fault.NotFoundf("no top-up %s", id)
	}
	if err != nil {
		return Topup{}, fmt.Errorf("read top-up: %w", err)
	}
	return t, nil
}

// Topups lists a wallet's top-ups, newest first, limit at a time, after
// the cursor (nil: from the newest). It returns the next page's cursor, or
// nil on the last page.
func (s *Service) Topups(ctx context.Context, id WalletID, after *cursor.Cursor, limit int) ([]Topup, *cursor.Cursor, error) {
	if _, err := s.walletRef(ctx, id); err != nil {
		return nil, nil, err
	}
	q, args := pageSQL(topupSelect+` WHERE wallet_id = $1`, []any{id}, after, limit)
	rows, err := s.db.Pool.Query(ctx, q, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("list top-ups: %w", err)
	}
	ts, err := collect(rows, scanTopup)
	if err != nil {
		return nil, nil, fmt.Errorf("list top-ups: %w", err)
	}
	ts, next := cursor.Page(ts, limit, func(t Topup) cursor.Cursor { return cursor.Cursor{At: t.CreatedAt, ID: uuid.UUID(t.ID)} })
	return ts, next, nil
}

// ConfirmTopup credits a requested top-up: the app has been paid. Confirming
// twice is a replay of the first; confirming a failed top-up is refused
// (topup_closed).
func (s *Service) ConfirmTopup(ctx context.Context, id TopupID) (ledger.Result[Topup], error) {
	return s.settleTopup(ctx, id, true, "")
}

// FailTopup records that a requested top-up could not be paid: the rule
// backs off before it tries again.
func (s *Service) FailTopup(ctx context.Context, id TopupID, reason string) (ledger.Result[Topup], error) {
	if err := checkText("reason", reason, 500); err != nil {
		return ledger.Result[Topup]{}, err
	}
	return s.settleTopup(ctx, id, false, reason)
}

func (s *Service) settleTopup(ctx context.Context, id TopupID, confirm bool, reason string) (ledger.Result[Topup], error) {
	t, err := s.Topup(ctx, id)
	if err != nil {
		return ledger.Result[Topup]{}, err
	}
	op, err := s.settleOp(ctx, t, confirm, reason)
	if err != nil {
		return ledger.Result[Topup]{}, err
	}
	return submit[Topup](ctx, s, op)
}

func (s *Service) settleOp(ctx context.Context, t Topup, confirm bool, reason string) (*settleTopupOp, error) {
	w, err := s.walletRef(ctx, t.WalletID)
	if err != nil {
		return nil, err
	}
	if err := s.EnsureAccounts(ctx, w); err != nil {
		return nil, err
	}
	sys, err := s.System(ctx, w.Asset)
	if err != nil {
		return nil, err
	}
	key := "topup-fail:" + t.ID.String()
	if confirm {
		key = "topup-confirm:" + t.ID.String()
	}
	return &settleTopupOp{base: base{key: key, walletID: w.ID, customer: w.CustomerID, sys: sys},
		topupID: t.ID, confirm: confirm, reason: reason}, nil
}

// HandleOutbox credits immediate top-ups as their topup.requested messages
// are relayed. It runs at least once per message; the op's key makes the
// credit happen once. All are enqueued before any is waited for, so they
// share batches while the relay's transaction stays open; one the app
// failed meanwhile is rejected (topup_closed) and skipped.
func (s *Service) HandleOutbox(ctx context.Context, _ pgx.Tx, msgs []ledger.OutboxMessage) error {
	var pend []*ledger.Pending
	for _, m := range msgs {
		if m.Topic != TopicTopupRequested {
			continue
		}
		var t Topup
		if err := json.Unmarshal(m.Payload, &t); err != nil {
			return fmt.Errorf("outbox %s: %w", m.ID, err)
		}
		if t.Payment != PaymentImmediate {
			continue
		}
		op, err := s.settleOp(ctx, t, true, "")
		if err != nil {
			return fmt.Errorf("credit top-up %s: %w", t.ID, err)
		}
		p, err := s.l.Enqueue(ctx, op)
		if err != nil {
			return fmt.Errorf("credit top-up %s: %w", t.ID, err)
		}
		pend = append(pend, p)
	}
	if _, err := ledger.WaitPosted(ctx, pend); err != nil {
		return fmt.Errorf("credit top-ups: %w", err)
	}
	return nil
}
