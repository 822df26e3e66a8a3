package wallet

import (
	"fmt"

	"github.com/creditledger/creditledger/internal/cursor"
	"github.com/jackc/pgx/v5"
)

// pageSQL appends to q (whose arguments are args) the page after the
// cursor, newest first, one row more than limit so cursor.Page can tell
// whether another page follows.
func pageSQL(q string, args []any, after *cursor.Cursor, limit int) (string, []any) {
	if after != nil {
		q += fmt.Sprintf(` AND (created_at, id) < ($%d, $%d)`, len(args)+1, len(args)+2)
		args = append(args, after.At, after.ID)
	}
	q += fmt.Sprintf(` ORDER BY created_at DESC, id DESC LIMIT $%d`, len(args)+1)
	return q, append(args, limit+1)
}

// collect reads every row with scan; an empty result is an empty slice
// (JSON []), not nil.
func collect[T any](rows pgx.Rows, scan func(pgx.Row) (T, error)) ([]T, error) {
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (T, error) { return scan(r) })
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []T{}
	}
	return out, nil
}
