package wallet

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/ledger"
)

// Changing a wallet's settings (PATCH /v1/wallets/{id}): its overage policy,
// overage limit and alert thresholds.
//
// The settings decide debits, holds and alerts, so a change is a wallet op
// (updateWalletOp), not an UPDATE beside the poster:
//
//   - Routed by the customer like every wallet op, it is applied in order
//     with the wallet's debits on its shard: a debit enqueued before the
//     change is decided by the old policy, one after by the new, never by a
//     mix of both within a batch (the stage's walletState is what every op
//     of the batch reads, and the change is made there).
//   - The wallet stage loads the wallet row in every batch (loadWallets)
//     and the batch locks the wallet's accounts FOR UPDATE, the change's
//     batch too. So a batch of another ledgerd process that touches the
//     wallet either waits for the change to commit or is aborted (40001)
//     and rerun, and then reads the new row: no process keeps deciding
//     with a stale policy. The Service's wallet map (walletCache) holds
//     only what never changes (customer, asset, overage account); answers
//     read the row (Service.Wallet), decisions read the stage's.
//   - Its result is the wallet after the change, stored under its key, so
//     an Idempotency-Key replay answers the same bytes. It posts nothing;
//     its entry (kind wallet_update, owned by the wallet) is the audit
//     trail of the change.
//
// Thresholds: the wallet remembers how many of its thresholds, in
// ascending order, fired for the current reference (reactions.Fired). New
// thresholds at or below the highest one already fired count as fired — an
// alert at least as high went out, and it is not sent again — and those
// above it that the balance has already crossed fire once, in the change's
// own batch, as they would have had they been there all along.

// KindWalletUpdate is the journal kind of a change of a wallet's settings.
const KindWalletUpdate = "wallet_update"

// WalletPatch is what UpdateWallet changes; a field left nil (absent from
// the request) stays as it is.
type WalletPatch struct {
	OveragePolicy *Policy `json:"overage_policy"`
	// OverageLimit: a decimal string sets it, null removes it.
	OverageLimit    OptionalAmount `json:"overage_limit"`
	AlertThresholds *[]int         `json:"alert_thresholds"`
}

// OptionalAmount is an amount that may be absent, null or set: JSON null is
// "remove", which a *ledger.Amount cannot tell from absent.
type OptionalAmount struct {
	Set   bool           // the field was sent
	Value *ledger.Amount // nil: null
}

// UnmarshalJSON is called for a present field only, null included.
func (o *OptionalAmount) UnmarshalJSON(b []byte) error {
	o.Set, o.Value = true, nil
	if string(b) == "null" {
		return nil
	}
	var a ledger.Amount
	if err := json.Unmarshal(b, &a); err != nil {
		return err
	}
	o.Value = &a
	return nil
}

// MarshalJSON writes the value (null when absent or removed).
func (o OptionalAmount) MarshalJSON() ([]byte, error) { return json.Marshal(o.Value) }

// updateWalletOp changes a wallet's settings in the batch.
type updateWalletOp struct {
	base
	patch WalletPatch
}

func (o *updateWalletOp) Kind() string { return KindWalletUpdate }

func (o *updateWalletOp) Fingerprint() []byte {
	return ledger.Fingerprint(o.Kind(), struct {
		W        WalletID
		Policy   *Policy
		LimitSet bool
		Limit    *ledger.Amount
		Th       *[]int
	}{o.walletID, o.patch.OveragePolicy, o.patch.OverageLimit.Set, o.patch.OverageLimit.Value, o.patch.AlertThresholds})
}

func (o *updateWalletOp) Declare(*ledger.Decl) {}

func (o *updateWalletOp) Apply(_ context.Context, b ledger.Batch) (any, error) {
	s, w, err := walletFor(b, o.walletID)
	if err != nil {
		return nil, err
	}
	next := w.Wallet
	next.AlertThresholds = slices.Clone(w.AlertThresholds)
	if p := o.patch.OveragePolicy; p != nil {
		next.OveragePolicy = *p
	}
	if l := o.patch.OverageLimit; l.Set {
		next.OverageLimit = l.Value
	}
	if th := o.patch.AlertThresholds; th != nil {
		next.AlertThresholds = slices.Clone(*th)
	}
	// CreateWallet's rule, on the wallet as it is in this batch (the
	// service checked the request alone; the current row is only known
	// here). Not a rejection: the request is wrong, nothing is recorded.
	if next.OverageLimit != nil && next.OveragePolicy != PolicyAllow {
		field := "overage_limit"
		if o.patch.OveragePolicy != nil && !o.patch.OverageLimit.Set {
			field = "overage_policy"
		}
		return nil, fault.Invalidf(field, "an overage_limit is only allowed with overage_policy allow; send \"overage_limit\": null to remove it")
	}
	b.Describe(w.ID, "wallet settings", nil)
	saved := w.Wallet
	_, was := s.settings[w]
	b.OnUndo(func() {
		w.Wallet = saved
		if !was {
			delete(s.settings, w)
		}
	})
	old := w.AlertThresholds
	w.Wallet = next
	if s.settings == nil {
		s.settings = map[*walletState]struct{}{}
	}
	s.settings[w] = struct{}{}
	if !slices.Equal(old, next.AlertThresholds) {
		fired := refired(old, w.react.Fired, next.AlertThresholds)
		if fired != w.react.Fired {
			s.setReactions(b, w, func(r *reactions) { r.Fired = fired })
		}
		if r := w.react.Reference; r != nil && r.IsPositive() {
			if err := s.fireThresholds(b, w, available(b, w)); err != nil {
				return nil, err
			}
		}
	}
	out := w.Wallet
	out.AlertThresholds = slices.Clone(out.AlertThresholds)
	return out, nil
}

// refired is how many of the sorted thresholds now count as fired, when
// fired of the sorted old ones had: every new one at or below the highest
// fired.
func refired(old []int, fired int, now []int) int {
	if fired <= 0 || len(old) == 0 {
		return 0
	}
	highest := old[min(fired, len(old))-1]
	n := 0
	for _, t := range now {
		if t <= highest {
			n++
		}
	}
	return n
}

// flushSettings writes the settings the batch's updateWalletOps changed.
func (s *stage) flushSettings(ctx context.Context, b ledger.StageBatch) error {
	if len(s.settings) == 0 {
		return nil
	}
	var (
		ids        []uuid.UUID
		policies   []string
		limits     []*string
		thresholds []string
	)
	for w := range s.settings {
		th, err := json.Marshal(w.AlertThresholds)
		if err != nil {
			return fmt.Errorf("wallet %s thresholds: %w", w.ID, err)
		}
		var l *string
		if w.OverageLimit != nil {
			v := w.OverageLimit.String()
			l = &v
		}
		ids, policies, limits, thresholds = append(ids, uuid.UUID(w.ID)), append(policies, string(w.OveragePolicy)), append(limits, l), append(thresholds, string(th))
	}
	if _, err := b.Tx().Exec(ctx, `UPDATE wallets AS w SET overage_policy = u.p, overage_limit = u.l::NUMERIC,
			alert_thresholds = u.t::JSONB
		FROM unnest($1::UUID[], $2::TEXT[], $3::TEXT[], $4::TEXT[]) AS u(id, p, l, t)
		WHERE w.id = u.id`, ids, policies, limits, thresholds); err != nil {
		return fmt.Errorf("update wallet settings: %w", err)
	}
	return nil
}

// UpdateWallet changes a wallet's overage policy, overage limit and alert
// thresholds, validated as CreateWallet validates them, through the poster
// (see updateWalletOp). key is an idempotency key ("" makes a fresh one);
// the result is the wallet after the change.
func (s *Service) UpdateWallet(ctx context.Context, key string, id WalletID, p WalletPatch) (ledger.Result[Wallet], error) {
	if pol := p.OveragePolicy; pol != nil && *pol != PolicyBlock && *pol != PolicyAllow {
		return ledger.Result[Wallet]{}, fault.Invalidf("overage_policy", "must be block or allow")
	}
	if l := p.OverageLimit.Value; l != nil {
		if l.IsNegative() {
			return ledger.Result[Wallet]{}, fault.Invalidf("overage_limit", "must not be negative")
		}
		if pol := p.OveragePolicy; pol != nil && *pol != PolicyAllow {
			return ledger.Result[Wallet]{}, fault.Invalidf("overage_limit", "only with overage_policy allow")
		}
	}
	if th := p.AlertThresholds; th != nil {
		sorted, err := validThresholds(*th)
		if err != nil {
			return ledger.Result[Wallet]{}, err
		}
		p.AlertThresholds = &sorted
	}
	w, _, err := s.walletRow(ctx, id) // its customer routes the op; never stale
	if err != nil {
		return ledger.Result[Wallet]{}, err
	}
	res, err := submit[Wallet](ctx, s, &updateWalletOp{base: base{key: newKey(key), walletID: id, customer: w.CustomerID}, patch: p})
	if err == nil && !res.Replayed {
		// This process's map is kept as the row; other processes' maps are
		// never asked for settings (see walletCache).
		s.wallets.invalidate(id)
	}
	return res, err
}
