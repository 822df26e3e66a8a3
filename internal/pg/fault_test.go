package pg

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/creditledger/creditledger/fault"
)

func TestKindOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want fault.Kind
	}{
		{"serialization failure", &pgconn.PgError{Code: "40001"}, fault.Retry},
		{"deadlock", &pgconn.PgError{Code: "40P01"}, fault.Retry},
		{"numeric overflow", fmt.Errorf("update: %w", &pgconn.PgError{Code: "22003"}), fault.Invalid},
		{"NUL in JSON", &pgconn.PgError{Code: "22P05"}, fault.Invalid},
		{"bad UTF-8", &pgconn.PgError{Code: "22021"}, fault.Invalid},
		{"check violation", &pgconn.PgError{Code: "23514"}, fault.Invalid},
		{"index row too large", &pgconn.PgError{Code: "54000"}, fault.Invalid},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, fault.Unavailable},
		{"too many connections", &pgconn.PgError{Code: "53300"}, fault.Unavailable},
		{"connection failure", &pgconn.PgError{Code: "08006"}, fault.Unavailable},
		{"statement cancelled", &pgconn.PgError{Code: "57014"}, fault.Unavailable},
		{"syntax error (a bug)", &pgconn.PgError{Code: "42601"}, fault.Internal},
		{"internal error", &pgconn.PgError{Code: "XX000"}, fault.Internal},
		{"a kind of its own", fmt.Errorf("enqueue: %w", fault.New(fault.Unavailable, "poster closed")), fault.Unavailable},
		{"batch timeout", fmt.Errorf("tx: %w", context.DeadlineExceeded), fault.Unavailable},
		{"connection refused", errors.New("failed to connect to `host=127.0.0.1`: dial error (connection refused)"), fault.Unavailable},
		{"an invalid field", fault.Invalidf("amount", "too much"), fault.Invalid},
		{"anything else", errors.New("surprise"), fault.Internal},
	} {
		if got := KindOf(tc.err); got != tc.want {
			t.Errorf("%s: KindOf(%v) = %s, want %s", tc.name, tc.err, got, tc.want)
		}
	}
}
