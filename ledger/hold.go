package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// HoldLeg is one reservation of a hold: Amount pending from Debit to Credit.
// The rows are the counter rows the reservation went to (non-zero only on
// hot accounts); the release must take it off the same rows.
type HoldLeg struct {
	Debit     AccountID `json:"debit_account_id"`
	Credit    AccountID `json:"credit_account_id"`
	Amount    Amount    `json:"amount"`
	DebitRow  int       `json:"debit_row,omitempty"`
	CreditRow int       `json:"credit_row,omitempty"`
}

// Hold is a pending transfer.
type Hold struct {
	ID        HoldID          `json:"id"`
	Owner     OwnerID         `json:"owner_id"`
	EntryID   EntryID         `json:"entry_id"`
	Asset     string          `json:"asset"`
	Amount    Amount          `json:"amount"`
	Captured  Amount          `json:"captured"`
	Status    HoldStatus      `json:"status"`
	Legs      []HoldLeg       `json:"legs"`
	ExpiresAt *time.Time      `json:"expires_at,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
	ClosedAt  *time.Time      `json:"closed_at,omitempty"`
	ClosedBy  *EntryID        `json:"closed_by,omitempty"`
	Metadata  json.RawMessage `json:"metadata,omitempty"`
}

// HoldStatus is a hold's state.
type HoldStatus string

const (
	HoldPending  HoldStatus = "pending"
	HoldCaptured HoldStatus = "captured"
	HoldVoided   HoldStatus = "voided"
	HoldExpired  HoldStatus = "expired"
)

type holdState struct {
	Hold
	isNew bool
	dirty bool
}

// Hold returns a locked hold.
func (b *batch) Hold(id HoldID) (Hold, bool) {
	h, ok := b.holds[id]
	if !ok {
		return Hold{}, false
	}
	return h.Hold, true
}

// HoldSpec describes a hold to place.
type HoldSpec struct {
	ID        HoldID
	Owner     OwnerID
	Legs      []HoldLeg
	ExpiresAt *time.Time
	Metadata  json.RawMessage
}

// PlaceHold reserves each leg's amount on the pending counters.
func (b *batch) PlaceHold(spec HoldSpec) (Hold, error) {
	if len(spec.Legs) == 0 {
		return Hold{}, fmt.Errorf("hold %s has no legs", spec.ID)
	}
	if _, exists := b.holds[spec.ID]; exists {
		return Hold{}, fmt.Errorf("hold %s exists", spec.ID)
	}
	var (
		total Amount
		asset string
		touch []*acct
	)
	for i, leg := range spec.Legs {
		if !leg.Amount.IsPositive() {
			return Hold{}, fmt.Errorf("hold leg %d: amount must be positive", i)
		}
		d, err := b.lookup(leg.Debit)
		if err != nil {
			return Hold{}, err
		}
		c, err := b.lookup(leg.Credit)
		if err != nil {
			return Hold{}, err
		}
		if d.Asset != c.Asset || (asset != "" && d.Asset != asset) {
			return Hold{}, fmt.Errorf("%w: hold legs mix assets", ErrUnbalanced)
		}
		asset = d.Asset
		total = total.Add(leg.Amount)
		touch = append(touch, d, c)
	}
	id := spec.ID
	m := b.mark()
	legs := make([]HoldLeg, len(spec.Legs))
	for i, leg := range spec.Legs {
		d, c := touch[2*i], touch[2*i+1]
		leg.DebitRow, leg.CreditRow = d.row, c.row
		legs[i] = leg
		b.stage(d, Debit, true, leg.Amount, &id)
		b.stage(c, Credit, true, leg.Amount, &id)
	}
	spec.Legs = legs
	if rej := b.checkAccounts(touch); rej != nil {
		b.rollbackTo(m)
		return Hold{}, rej
	}
	h := &holdState{isNew: true, dirty: true, Hold: Hold{
		ID: id, Owner: spec.Owner, EntryID: b.cur.entry.id, Asset: asset, Amount: total,
		Status: HoldPending, Legs: spec.Legs, ExpiresAt: spec.ExpiresAt, CreatedAt: b.now, Metadata: spec.Metadata,
	}}
	b.holds[id] = h
	b.cur.createdHold = append(b.cur.createdHold, id)
	return h.Hold, nil
}

func (b *batch) openHold(id HoldID) (*holdState, error) {
	h, ok := b.holds[id]
	if !ok {
		return nil, Reject(CodeHoldNotFound, "hold %s not found", id)
	}
	if h.Status != HoldPending {
		return nil, Reject(CodeHoldClosed, "hold %s is already %s", id, h.Status)
	}
	return h, nil
}

func (b *batch) saveHold(h *holdState) {
	if _, ok := b.cur.savedHolds[h]; !ok {
		b.cur.savedHolds[h] = h.Hold
	}
}

// release takes every leg's reservation off the pending counters, on the
// rows that reserved it. An account of a leg the batch cannot reach is an
// error before anything moved.
func (b *batch) release(h *holdState) ([]*acct, error) {
	accts := make([]*acct, 0, 2*len(h.Legs))
	for _, leg := range h.Legs {
		d, err := b.lookup(leg.Debit)
		if err != nil {
			return nil, err
		}
		c, err := b.lookup(leg.Credit)
		if err != nil {
			return nil, err
		}
		accts = append(accts, d, c)
	}
	id := h.ID
	for i, leg := range h.Legs {
		b.stageRow(accts[2*i], leg.DebitRow, Debit, true, leg.Amount.Neg(), &id)
		b.stageRow(accts[2*i+1], leg.CreditRow, Credit, true, leg.Amount.Neg(), &id)
	}
	return accts, nil
}

// CaptureHold posts amount of the hold (all of it when amount is nil),
// spread over its legs in order, and releases the rest. A hold past its
// expiry can no longer be captured.
func (b *batch) CaptureHold(id HoldID, amount *Amount) (Hold, error) {
	h, err := b.openHold(id)
	if err != nil {
		return Hold{}, err
	}
	if h.ExpiresAt != nil && !b.now.Before(*h.ExpiresAt) {
		return Hold{}, Reject(CodeHoldClosed, "hold %s expired at %s", id, h.ExpiresAt.Format(time.RFC3339))
	}
	want := h.Amount
	if amount != nil {
		want = *amount
	}
	if want.IsNegative() {
		return Hold{}, fmt.Errorf("capture amount must not be negative")
	}
	if want.Cmp(h.Amount) > 0 {
		return Hold{}, Reject(CodeHoldExceeded, "capture %s exceeds the held %s", want, h.Amount)
	}
	m := b.mark()
	touch, err := b.release(h)
	if err != nil {
		return Hold{}, err
	}
	left := want
	for _, leg := range h.Legs {
		if !left.IsPositive() {
			break
		}
		part := leg.Amount.Min(left)
		left = left.Sub(part)
		b.stage(b.accounts[leg.Debit], Debit, false, part, nil)
		b.stage(b.accounts[leg.Credit], Credit, false, part, nil)
	}
	if rej := b.checkAccounts(touch); rej != nil {
		b.rollbackTo(m)
		return Hold{}, rej
	}
	b.closeHold(h, HoldCaptured, want)
	return h.Hold, nil
}

// VoidHold releases the whole hold. expired marks a release by the expiry
// sweeper rather than by a caller.
func (b *batch) VoidHold(id HoldID, expired bool) (Hold, error) {
	h, err := b.openHold(id)
	if err != nil {
		return Hold{}, err
	}
	if _, err := b.release(h); err != nil {
		return Hold{}, err
	}
	st := HoldVoided
	if expired {
		st = HoldExpired
	}
	b.closeHold(h, st, Zero)
	return h.Hold, nil
}

func (b *batch) closeHold(h *holdState, st HoldStatus, captured Amount) {
	b.saveHold(h)
	now, entry := b.now, b.cur.entry.id
	h.Status, h.Captured, h.ClosedAt, h.ClosedBy, h.dirty = st, captured, &now, &entry, true
}

func (l *Ledger) writeHolds(ctx context.Context, b *batch) error {
	var fresh, changed []*holdState
	for _, h := range b.holds {
		switch {
		case h.isNew:
			fresh = append(fresh, h)
		case h.dirty:
			changed = append(changed, h)
		}
	}
	if len(fresh) > 0 {
		n := len(fresh)
		ids, entries := make([]uuid.UUID, n), make([]uuid.UUID, n)
		owners := make([]*uuid.UUID, n)
		assets, statuses, legs := make([]string, n), make([]string, n), make([]string, n)
		amounts, captured := make([]Amount, n), make([]Amount, n)
		expires := make([]*time.Time, n)
		closedAt := make([]*time.Time, n)
		closedBy := make([]*uuid.UUID, n)
		metas := make([]*string, n)
		for i, h := range fresh {
			metas[i] = nullableText(h.Metadata)
			raw, err := json.Marshal(h.Legs)
			if err != nil {
				return err
			}
			ids[i], entries[i], owners[i] = uuid.UUID(h.ID), uuid.UUID(h.EntryID), nullableOwner(h.Owner)
			assets[i], statuses[i], legs[i] = h.Asset, string(h.Status), string(raw)
			amounts[i], captured[i], expires[i], closedAt[i] = h.Amount, h.Captured, h.ExpiresAt, h.ClosedAt
			if h.ClosedBy != nil {
				u := uuid.UUID(*h.ClosedBy)
				closedBy[i] = &u
			}
		}
		if _, err := b.tx.Exec(ctx, `INSERT INTO ledger_holds (id, owner_id, entry_id, asset, amount, captured, status, legs, expires_at, created_at, closed_at, closed_by, metadata)
			SELECT u.id, u.o, u.e, u.asset, u.amt, u.cap, u.st, u.legs::JSONB, u.exp, $12, u.ca, u.cb, u.meta::JSONB
			FROM unnest($1::UUID[], $2::UUID[], $3::UUID[], $4::TEXT[], $5::NUMERIC[], $6::NUMERIC[], $7::TEXT[], $8::TEXT[], $9::TIMESTAMPTZ[], $10::TIMESTAMPTZ[], $11::UUID[], $13::TEXT[])
				AS u(id, o, e, asset, amt, cap, st, legs, exp, ca, cb, meta)`,
			ids, owners, entries, assets, amounts, captured, statuses, legs, expires, closedAt, closedBy, b.now, metas); err != nil {
			return fmt.Errorf("insert holds: %w", err)
		}
	}
	if len(changed) > 0 {
		n := len(changed)
		ids, statuses := make([]uuid.UUID, n), make([]string, n)
		captured := make([]Amount, n)
		closedAt := make([]*time.Time, n)
		closedBy := make([]*uuid.UUID, n)
		for i, h := range changed {
			ids[i], statuses[i], captured[i], closedAt[i] = uuid.UUID(h.ID), string(h.Status), h.Captured, h.ClosedAt
			if h.ClosedBy != nil {
				u := uuid.UUID(*h.ClosedBy)
				closedBy[i] = &u
			}
		}
		if _, err := b.tx.Exec(ctx, `UPDATE ledger_holds AS h SET status = u.st, captured = u.cap, closed_at = u.ca, closed_by = u.cb
			FROM unnest($1::UUID[], $2::TEXT[], $3::NUMERIC[], $4::TIMESTAMPTZ[], $5::UUID[]) AS u(id, st, cap, ca, cb)
			WHERE h.id = u.id`, ids, statuses, captured, closedAt, closedBy); err != nil {
			return fmt.Errorf("update holds: %w", err)
		}
	}
	return nil
}

func (l *Ledger) lockHolds(ctx context.Context, b *batch) error {
	ids := make([]uuid.UUID, 0, len(b.holdIDs))
	for id := range b.holdIDs {
		ids = append(ids, uuid.UUID(id))
	}
	rows, err := b.tx.Query(ctx, `SELECT id, owner_id, entry_id, asset, amount, captured, status, legs, expires_at, created_at, closed_at, closed_by
		, metadata FROM ledger_holds WHERE id = ANY($1) ORDER BY id FOR UPDATE`, ids)
	if err != nil {
		return fmt.Errorf("lock holds: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		h, err := scanHold(rows)
		if err != nil {
			return err
		}
		b.holds[h.ID] = &holdState{Hold: h}
		if !h.Owner.IsZero() {
			b.owners[h.Owner] = struct{}{}
		}
		for _, leg := range h.Legs {
			b.declared[leg.Debit] = struct{}{}
			b.declared[leg.Credit] = struct{}{}
		}
	}
	return rows.Err()
}

const holdSelect = `SELECT id, owner_id, entry_id, asset, amount, captured, status, legs, expires_at, created_at, closed_at, closed_by, metadata FROM ledger_holds`

func scanHold(r rowScanner) (Hold, error) {
	var (
		h      Hold
		owner  *OwnerID
		status string
		legs   []byte
	)
	if err := r.Scan(&h.ID, &owner, &h.EntryID, &h.Asset, &h.Amount, &h.Captured, &status, &legs, &h.ExpiresAt, &h.CreatedAt, &h.ClosedAt, &h.ClosedBy, &h.Metadata); err != nil {
		return Hold{}, fmt.Errorf("scan hold: %w", err)
	}
	if owner != nil {
		h.Owner = *owner
	}
	h.Status = HoldStatus(status)
	if err := json.Unmarshal(legs, &h.Legs); err != nil {
		return Hold{}, fmt.Errorf("hold %s legs: %w", h.ID, err)
	}
	h.CreatedAt = h.CreatedAt.UTC()
	return h, nil
}
