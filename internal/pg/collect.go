package pg

import "github.com/jackc/pgx/v5"

// Collect reads every row with scan; an empty result is an empty slice
// (JSON []), not nil.
func Collect[T any](rows pgx.Rows, scan func(pgx.Row) (T, error)) ([]T, error) {
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (T, error) { return scan(r) })
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []T{}
	}
	return out, nil
}
