package wallet

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditledger/creditledger/ledger"
)

// Outbox topics of the wallet's reactions. Each is written in the batch
// that caused it, so it is sent exactly when that change commits.
const (
	TopicThresholdReached = "wallet.threshold_reached"
	TopicDepleted         = "wallet.depleted"
	TopicOverageStarted   = "wallet.overage_started"
)

// reactions is what a wallet's alerts and auto top-up remember between
// batches (wallets.reactions). Only the poster writes it, inside the batch
// whose change it reacts to, so two batches cannot both fire one alert: the
// second is serialized behind the first by the locks on the wallet's
// accounts and sees what the first wrote (or is retried if it read before).
type reactions struct {
	// Reference is the available balance right after the latest credit;
	// nil until the first one.
	Reference *ledger.Amount `json:"reference,omitempty"`
	// Fired counts the thresholds (in ascending order) fired for Reference.
	Fired    int  `json:"fired,omitempty"`
	Depleted bool `json:"depleted,omitempty"`
	// Overage is set by the first uncovered usage and cleared when the
	// receivable is back to zero (settled into an invoice or credited back).
	Overage bool `json:"overage,omitempty"`

	TopupInFlight *TopupID   `json:"topup_in_flight,omitempty"`
	TopupDay      string     `json:"topup_day,omitempty"` // UTC date TopupsToday counts
	TopupsToday   int        `json:"topups_today,omitempty"`
	TopupFailures int        `json:"topup_failures,omitempty"` // consecutive
	TopupRetry    *time.Time `json:"topup_retry_after,omitempty"`
}

// setReactions changes w's reactions for the op being applied: undone with
// the op if it fails, written by Flush if it succeeds.
func (s *stage) setReactions(b ledger.Batch, w *walletState, change func(*reactions)) {
	saved := w.react
	_, was := s.topups.reacted[w]
	b.OnUndo(func() {
		w.react = saved
		if !was {
			delete(s.topups.reacted, w)
		}
	})
	change(&w.react)
	s.topups.reacted[w] = struct{}{}
}

// rearm starts a new reference after a credit: percent used is 0 again and
// every threshold may fire once more.
func (s *stage) rearm(b ledger.Batch, w *walletState) {
	ref := available(b, w)
	s.setReactions(b, w, func(r *reactions) {
		r.Reference, r.Fired, r.Depleted = &ref, 0, false
	})
}

// ThresholdReached is the data of a wallet.threshold_reached event.
type ThresholdReached struct {
	WalletID    WalletID        `json:"wallet_id"`
	CustomerID  string          `json:"customer_id"`
	Asset       string          `json:"asset"`
	Threshold   int             `json:"threshold"`
	PercentUsed decimal.Decimal `json:"percent_used"`
	Available   ledger.Amount   `json:"available"`
	Reference   ledger.Amount   `json:"reference"`
}

// WalletEvent is the data of wallet.depleted and wallet.overage_started.
type WalletEvent struct {
	WalletID   WalletID      `json:"wallet_id"`
	CustomerID string        `json:"customer_id"`
	Asset      string        `json:"asset"`
	Available  ledger.Amount `json:"available"`
	Overage    ledger.Amount `json:"overage"`
}

// fireThresholds emits wallet.threshold_reached for every threshold not
// yet fired that the use of w's reference has reached. Once all have fired
// (most usage events after the last one) it costs nothing.
func (s *stage) fireThresholds(b ledger.Batch, w *walletState, avail ledger.Amount) error {
	r := w.react
	if r.Fired >= len(w.AlertThresholds) {
		return nil
	}
	ref := r.Reference.Decimal()
	used := ref.Sub(avail.Decimal()).Mul(decimal.NewFromInt(100))
	fired := r.Fired
	for fired < len(w.AlertThresholds) {
		th := w.AlertThresholds[fired]
		// used/ref >= th/100, without dividing.
		if used.Cmp(ref.Mul(decimal.NewFromInt(int64(th)))) < 0 {
			break
		}
		if err := b.Emit(TopicThresholdReached, w.ID, ThresholdReached{
			WalletID: w.ID, CustomerID: w.CustomerID, Asset: w.Asset, Threshold: th,
			PercentUsed: used.DivRound(ref, 2), Available: avail, Reference: *r.Reference,
		}); err != nil {
			return err
		}
		fired++
	}
	if fired != r.Fired {
		s.setReactions(b, w, func(r *reactions) { r.Fired = fired })
	}
	return nil
}

// react runs after every op that may lower w's available balance or raise
// its overage: it fires the thresholds the balance has crossed since the
// reference (all of them, in ascending order, however far one op jumped),
// wallet.depleted, wallet.overage_started, and starts an auto top-up.
func (s *stage) react(b ledger.Batch, w *walletState) error {
	avail := available(b, w)
	var overage ledger.Amount
	if acc, ok := b.Account(w.overage); ok {
		overage = acc.Posted(ledger.Debit)
	}
	r := w.react
	ev := WalletEvent{WalletID: w.ID, CustomerID: w.CustomerID, Asset: w.Asset, Available: avail, Overage: overage}
	if r.Reference != nil && r.Reference.IsPositive() {
		if err := s.fireThresholds(b, w, avail); err != nil {
			return err
		}
		if !avail.IsPositive() && !r.Depleted {
			if err := b.Emit(TopicDepleted, w.ID, ev); err != nil {
				return err
			}
			s.setReactions(b, w, func(r *reactions) { r.Depleted = true })
		}
	}
	switch {
	case overage.IsPositive() && !r.Overage:
		if err := b.Emit(TopicOverageStarted, w.ID, ev); err != nil {
			return err
		}
		s.setReactions(b, w, func(r *reactions) { r.Overage = true })
	case overage.IsZero() && r.Overage:
		s.setReactions(b, w, func(r *reactions) { r.Overage = false })
	}
	return s.autoTopup(b, w, avail)
}

func decodeReactions(raw []byte) (reactions, error) {
	var r reactions
	if len(raw) == 0 {
		return r, nil
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return r, fmt.Errorf("wallet reactions: %w", err)
	}
	return r, nil
}
