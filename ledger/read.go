package ledger

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
)

// HoldByID reads a hold.
func (l *Ledger) HoldByID(ctx context.Context, id HoldID) (Hold, error) {
	h, err := scanHold(l.db.Pool.QueryRow(ctx, holdSelect+` WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Hold{}, fault.NotFoundf("no hold %s", id)
	}
	return h, err
}

// Entry is a journal entry with its postings, as read back.
type Entry struct {
	ID          EntryID         `json:"id"`
	Kind        string          `json:"kind"`
	Status      Status          `json:"status"`
	Rejection   *Rejection      `json:"rejection,omitempty"`
	Owner       OwnerID         `json:"-"`
	Description string          `json:"description,omitempty"`
	Metadata    json.RawMessage `json:"metadata,omitempty"`
	CreatedAt   time.Time       `json:"created_at"`
	Postings    []EntryPosting  `json:"postings"`
}

// EntryPosting is one posting of an entry.
type EntryPosting struct {
	Account AccountID `json:"account_id"`
	Code    string    `json:"account_code"`
	Asset   string    `json:"asset"`
	Side    string    `json:"direction"`
	Pending bool      `json:"pending"`
	Amount  Amount    `json:"amount"`
	Hold    *HoldID   `json:"hold_id,omitempty"`
}

// EntriesOf lists an owner's entries, newest first, starting after cursor
// (nil: from the newest). It returns the cursor of the next page, or nil.
func (l *Ledger) EntriesOf(ctx context.Context, owner OwnerID, after *cursor.Cursor, limit int, withRejected bool) ([]Entry, *cursor.Cursor, error) {
	if limit <= 0 {
		limit = 50
	}
	args := []any{owner, limit + 1, withRejected}
	q := `SELECT id, kind, status, reject_code, reject_detail, description, metadata, created_at
		FROM ledger_entries WHERE owner_id = $1 AND ($3 OR status = 'posted')`
	if after != nil {
		q += ` AND (created_at, id) < ($4, $5)`
		args = append(args, after.At, after.ID)
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT $2`
	rows, err := l.db.Pool.Query(ctx, q, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("list entries: %w", err)
	}
	var out []Entry
	for rows.Next() {
		var (
			e            Entry
			status       string
			code, detail *string
			desc         *string
		)
		if err := rows.Scan(&e.ID, &e.Kind, &status, &code, &detail, &desc, &e.Metadata, &e.CreatedAt); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("scan entry: %w", err)
		}
		e.Status, e.Owner, e.CreatedAt = Status(status), owner, e.CreatedAt.UTC()
		if code != nil {
			e.Rejection = &Rejection{Code: *code}
			if detail != nil {
				e.Rejection.Detail = *detail
			}
		}
		if desc != nil {
			e.Description = *desc
		}
		e.Postings = []EntryPosting{}
		out = append(out, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	out, next := cursor.Page(out, limit, func(e Entry) cursor.Cursor { return cursor.Cursor{At: e.CreatedAt, ID: uuid.UUID(e.ID)} })
	if len(out) == 0 {
		return out, nil, nil
	}
	ids := make([]uuid.UUID, len(out))
	index := map[EntryID]int{}
	for i, e := range out {
		ids[i] = uuid.UUID(e.ID)
		index[e.ID] = i
	}
	prow, err := l.db.Pool.Query(ctx, `SELECT p.entry_id, p.account_id, a.code, p.asset, p.direction, p.pending, p.amount, p.hold_id
		FROM ledger_postings p JOIN ledger_accounts a ON a.id = p.account_id
		WHERE p.entry_id = ANY($1) ORDER BY p.entry_id, p.seq`, ids)
	if err != nil {
		return nil, nil, fmt.Errorf("list postings: %w", err)
	}
	defer prow.Close()
	for prow.Next() {
		var (
			eid EntryID
			p   EntryPosting
		)
		if err := prow.Scan(&eid, &p.Account, &p.Code, &p.Asset, &p.Side, &p.Pending, &p.Amount, &p.Hold); err != nil {
			return nil, nil, fmt.Errorf("scan posting: %w", err)
		}
		i := index[eid]
		out[i].Postings = append(out[i].Postings, p)
	}
	return out, next, prow.Err()
}
