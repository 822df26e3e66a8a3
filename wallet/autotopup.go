package wallet

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/ledger"
	"github.com/jackc/pgx/v5"
)

// Payment is how a top-up is paid for.
type Payment string

const (
	// PaymentConfirm: topup.requested goes to the app, which charges the
	// customer and confirms (or fails) the top-up; credits arrive then.
	PaymentConfirm Payment = "confirm"
	// PaymentImmediate: credited at once, owed on the next invoice.
	PaymentImmediate Payment = "immediate"
)

// defaultTopupsPerDay caps a rule that names no cap: a runaway loop of
// top-ups is the expensive failure of auto top-up.
const defaultTopupsPerDay = 10

// AutoTopup is a wallet's auto top-up rule: when the available balance falls
// below Threshold, buy Amount (in as many multiples as it takes to get back
// to the threshold) or whatever brings the balance up to TargetBalance.
type AutoTopup struct {
	WalletID      WalletID       `json:"wallet_id"`
	Enabled       bool           `json:"enabled"`
	Threshold     ledger.Amount  `json:"threshold"`
	Amount        *ledger.Amount `json:"amount,omitempty"`
	TargetBalance *ledger.Amount `json:"target_balance,omitempty"`
	Kind          GrantKind      `json:"kind"`
	Payment       Payment        `json:"payment"`
	MaxPerDay     int            `json:"max_per_day"`
	UpdatedAt     time.Time      `json:"updated_at"`
	State         AutoTopupState `json:"state"`
}

// AutoTopupState is what the rule is doing now.
type AutoTopupState struct {
	InFlight            *TopupID   `json:"in_flight,omitempty"`
	Day                 string     `json:"day,omitempty"`
	TopupsToday         int        `json:"topups_today"`
	ConsecutiveFailures int        `json:"consecutive_failures"`
	RetryAfter          *time.Time `json:"retry_after,omitempty"`
}

// NewAutoTopup is what SetAutoTopup needs.
type NewAutoTopup struct {
	Enabled       *bool          `json:"enabled,omitempty"` // default true
	Threshold     *ledger.Amount `json:"threshold"`
	Amount        *ledger.Amount `json:"amount,omitempty"`
	TargetBalance *ledger.Amount `json:"target_balance,omitempty"`
	Kind          GrantKind      `json:"kind,omitempty"`    // default paid
	Payment       Payment        `json:"payment,omitempty"` // default confirm
	MaxPerDay     *int           `json:"max_per_day,omitempty"`
}

// SetAutoTopup creates or replaces a wallet's auto top-up rule.
func (s *Service) SetAutoTopup(ctx context.Context, id WalletID, req NewAutoTopup) (AutoTopup, error) {
	r := AutoTopup{WalletID: id, Enabled: true, Kind: Paid, Payment: PaymentConfirm, MaxPerDay: defaultTopupsPerDay}
	if req.Enabled != nil {
		r.Enabled = *req.Enabled
	}
	if req.Threshold == nil || req.Threshold.IsNegative() {
		return AutoTopup{}, fault.Invalidf("threshold", "required, zero or more")
	}
	if ledger.CheckOpAmount(*req.Threshold) != nil {
		return AutoTopup{}, fault.Invalidf("threshold", "at most %s", ledger.MaxOpAmount)
	}
	r.Threshold = *req.Threshold
	switch {
	case (req.Amount == nil) == (req.TargetBalance == nil):
		return AutoTopup{}, fault.Invalidf("amount", "give exactly one of amount and target_balance")
	case req.Amount != nil:
		if err := opAmount("amount", *req.Amount); err != nil {
			return AutoTopup{}, err
		}
	case req.TargetBalance != nil && ledger.CheckOpAmount(*req.TargetBalance) != nil:
		return AutoTopup{}, fault.Invalidf("target_balance", "at most %s", ledger.MaxOpAmount)
	case req.TargetBalance != nil && req.TargetBalance.Cmp(r.Threshold) <= 0:
		return AutoTopup{}, fault.Invalidf("target_balance", "must be above the threshold")
	}
	r.Amount, r.TargetBalance = req.Amount, req.TargetBalance
	switch req.Kind {
	case "":
	case Paid, Promotional:
		r.Kind = req.Kind
	default:
		return AutoTopup{}, fault.Invalidf("kind", "must be paid or promotional")
	}
	switch req.Payment {
	case "":
	case PaymentConfirm, PaymentImmediate:
		r.Payment = req.Payment
	default:
		return AutoTopup{}, fault.Invalidf("payment", "must be confirm or immediate")
	}
	if req.MaxPerDay != nil {
		if *req.MaxPerDay < 1 || *req.MaxPerDay > 1000 {
			return AutoTopup{}, fault.Invalidf("max_per_day", "from 1 to 1000")
		}
		r.MaxPerDay = *req.MaxPerDay
	}
	w, err := s.walletRef(ctx, id)
	if err != nil {
		return AutoTopup{}, err
	}
	if err := s.EnsureAccounts(ctx, w); err != nil {
		return AutoTopup{}, err
	}
	r.UpdatedAt = s.now()
	if _, err := s.db.Pool.Exec(ctx, `INSERT INTO auto_topup_rules (wallet_id, enabled, threshold, amount, target_balance, kind, payment, max_per_day, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (wallet_id) DO UPDATE SET enabled = excluded.enabled, threshold = excluded.threshold, amount = excluded.amount,
			target_balance = excluded.target_balance, kind = excluded.kind, payment = excluded.payment,
			max_per_day = excluded.max_per_day, updated_at = excluded.updated_at`,
		id, r.Enabled, r.Threshold, r.Amount, r.TargetBalance, string(r.Kind), string(r.Payment), r.MaxPerDay, r.UpdatedAt); err != nil {
		return AutoTopup{}, fmt.Errorf("save auto top-up: %w", err)
	}
	return s.AutoTopup(ctx, id)
}

// AutoTopup reads a wallet's rule and what it is doing; ErrNotFound when the
// wallet has none.
func (s *Service) AutoTopup(ctx context.Context, id WalletID) (AutoTopup, error) {
	var (
		rs    ruleScan
		react []byte
	)
	err := s.db.Pool.QueryRow(ctx, `SELECT w.reactions, `+ruleColumns+`
		FROM wallets w LEFT JOIN auto_topup_rules r ON r.wallet_id = w.id WHERE w.id = $1`, id).
		Scan(append([]any{&react}, rs.dest()...)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return AutoTopup{}, fault.NotFoundf("no wallet %s", id)
	}
	if err != nil {
		return AutoTopup{}, fmt.Errorf("read auto top-up: %w", err)
	}
	r := rs.rule(id)
	if r == nil {
		return AutoTopup{}, fault.NotFoundf("wallet %s has no auto top-up rule", id)
	}
	st, err := decodeReactions(react)
	if err != nil {
		return AutoTopup{}, err
	}
	r.State = AutoTopupState{InFlight: st.TopupInFlight, Day: st.TopupDay, TopupsToday: st.TopupsToday,
		ConsecutiveFailures: st.TopupFailures, RetryAfter: st.TopupRetry}
	if st.TopupDay != s.now().Format(time.DateOnly) {
		r.State.Day, r.State.TopupsToday = "", 0
	}
	return *r, nil
}
