package ledger

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Fault is how an error of the database (or of the way to it) must be
// treated. Every caller that decides between "retry", "reject" and "wait"
// asks FaultOf, so the decision is made once, here.
type Fault int

const (
	// FaultUnknown is an error nobody classified: a bug, a schema that
	// does not match the code. Retry it a bounded number of times, then
	// park what caused it where an operator sees it.
	FaultUnknown Fault = iota
	// FaultConflict is a serialization failure or deadlock (40001,
	// 40P01): the database chose a victim, nothing of the transaction
	// survived, and running it again succeeds. RunTx retries these itself.
	FaultConflict
	// FaultUnavailable means the database could not be reached, was
	// shutting down or ran out of a resource (connections, disk). Nothing
	// is wrong with the operations: wait and retry them, never give up on
	// them.
	FaultUnavailable
	// FaultData means the database refused the data itself (a value out of
	// range, a character it cannot store, a constraint): the same
	// operation fails the same way every time. It is a rejection of the
	// operation at fault, never a retry.
	FaultData
)

func (f Fault) String() string {
	switch f {
	case FaultConflict:
		return "conflict"
	case FaultUnavailable:
		return "unavailable"
	case FaultData:
		return "data"
	}
	return "unknown"
}

// FaultOf classifies err. nil is FaultUnknown; ask only about errors.
func FaultOf(err error) Fault {
	var rej *Rejection
	if errors.As(err, &rej) {
		return FaultData
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return faultOfState(pgErr.Code)
	}
	switch {
	case errors.Is(err, ErrClosed),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		pgconn.Timeout(err), pgconn.SafeToRetry(err):
		return FaultUnavailable
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	if errors.As(err, &connErr) || errors.As(err, &netErr) {
		return FaultUnavailable
	}
	// pgx reports a connection that broke under it in words only.
	msg := err.Error()
	for _, s := range []string{"conn closed", "connection reset", "broken pipe", "connection refused", "closed pool", "failed to connect"} {
		if strings.Contains(msg, s) {
			return FaultUnavailable
		}
	}
	return FaultUnknown
}

// faultOfState classifies an SQLSTATE by its class (its first two
// characters), as the PostgreSQL manual groups them; CockroachDB uses the
// same codes.
func faultOfState(code string) Fault {
	switch code {
	case "40001", "40P01":
		return FaultConflict
	case "57014":
		// query_canceled: our own context or statement timeout, not the data.
		return FaultUnavailable
	}
	if len(code) < 2 {
		return FaultUnknown
	}
	switch code[:2] {
	case "22", // data exception: numeric overflow, bad encoding, NUL in text
		"23", // integrity constraint violation
		"54": // program limit exceeded: an index row or value too large
		return FaultData
	case "08", // connection exception
		"53", // insufficient resources: disk full, too many connections
		"57", // operator intervention: shutdown, crash recovery
		"58": // system error: I/O
		return FaultUnavailable
	}
	return FaultUnknown
}

// DataRefusal turns a data fault into the rejection an operation gets: it
// names the database's reason in its own words (never SQL), with the
// SQLSTATE, so an operator can tell a NUL character from an overflow.
func DataRefusal(err error) *Rejection {
	var rej *Rejection
	if errors.As(err, &rej) {
		return rej
	}
	detail := "the database refused this operation's data"
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		detail += ": " + pgErr.Message + " (SQLSTATE " + pgErr.Code + ")"
	}
	return &Rejection{Code: CodeInvalidData, Detail: cleanText(detail, 500)}
}

// cleanText makes s safe to store and show: valid UTF-8, no NUL, at most
// max bytes.
func cleanText(s string, max int) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD")
	if len(s) > max {
		s = strings.ToValidUTF8(s[:max], "")
	}
	return s
}
