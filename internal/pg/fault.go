package pg

import (
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/creditledger/creditledger/fault"
)

// KindOf classifies err for callers that must decide between "run it
// again", "refuse it" and "wait": the kind the error carries (fault.Of), or
// else what the database, or the way to it, said. Every such decision in
// the service — the poster's, the consumer's, a handler's — asks here, so it
// is made once.
//
//   - fault.Retry: a serialization failure or deadlock (40001, 40P01); the
//     transaction runs again (RunTx does).
//   - fault.Invalid: the database refused the data itself — class 22 (a NUL,
//     bad UTF-8, an overflow), 23 (a constraint), 54 (a value too large):
//     the same operation fails the same way every time.
//   - fault.Unavailable: the database unreachable, shutting down, out of
//     connections or disk (08, 53, 57, 58), a cancelled statement, a broken
//     connection: nothing is wrong with the operation.
//   - fault.Internal: anything else — a bug, a schema that does not match.
func KindOf(err error) fault.Kind {
	if err == nil {
		return fault.Internal
	}
	if k := fault.Of(err); k != fault.Internal {
		return k
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return kindOfState(pgErr.Code)
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		pgconn.Timeout(err), pgconn.SafeToRetry(err),
		errors.As(err, &connErr), errors.As(err, &netErr):
		return fault.Unavailable
	}
	// pgx reports a connection that broke under it in words only.
	msg := err.Error()
	for _, s := range []string{"conn closed", "connection reset", "broken pipe", "connection refused", "closed pool", "failed to connect"} {
		if strings.Contains(msg, s) {
			return fault.Unavailable
		}
	}
	return fault.Internal
}

// kindOfState classifies an SQLSTATE by its class (its first two
// characters), as the PostgreSQL manual groups them; CockroachDB uses the
// same codes.
func kindOfState(code string) fault.Kind {
	switch code {
	case "40001", "40P01":
		return fault.Retry
	case "57014":
		// query_canceled: our own context or statement timeout, not the data.
		return fault.Unavailable
	}
	if len(code) < 2 {
		return fault.Internal
	}
	switch code[:2] {
	case "22", // data exception: numeric overflow, bad encoding, NUL in text
		"23", // integrity constraint violation
		"54": // program limit exceeded: an index row or value too large
		return fault.Invalid
	case "08", // connection exception
		"53", // insufficient resources: disk full, too many connections
		"57", // operator intervention: shutdown, crash recovery
		"58": // system error: I/O
		return fault.Unavailable
	}
	return fault.Internal
}

// Message is what the database said of a refused statement, in its own
// words (never the SQL), with the SQLSTATE; "" when err is not the
// database's.
func Message(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Message + " (SQLSTATE " + pgErr.Code + ")"
	}
	return ""
}

// IsUnique reports whether err is a unique violation (23505), of constraint
// when it is not "".
func IsUnique(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && (constraint == "" || pgErr.ConstraintName == constraint)
}
