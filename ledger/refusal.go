package ledger

import (
	"errors"
	"strings"

	"github.com/creditledger/creditledger/internal/pg"
)

// DataRefusal turns data the database refused (pg.KindOf: fault.Invalid)
// into the rejection an operation gets: it names the database's reason in
// its own words (never SQL), with the SQLSTATE, so an operator can tell a
// NUL character from an overflow.
func DataRefusal(err error) *Rejection {
	var rej *Rejection
	if errors.As(err, &rej) {
		return rej
	}
	detail := "the database refused this operation's data"
	if m := pg.Message(err); m != "" {
		detail += ": " + m
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
