package billing

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/creditledger/creditledger/ledger"
)

// Invoice numbers: ACME-0003 is the third invoice numbered with prefix
// ACME. The prefix comes from the customer id; a counter row per prefix
// (invoice_counters) holds the last number issued, so customers whose ids
// map to one prefix share one sequence: numbers stay unique (a UNIQUE index
// on invoices.number is the last word) and each customer's increase.
//
// Any op that issues an invoice asks for its customer's counter in its
// needs (wantNumber); the billing stage locks the batch's counters FOR
// UPDATE in Load with one query, in prefix order so two batches wanting the
// same prefixes queue rather than deadlock; issue assigns the next number
// (taken back if the op fails) and Flush writes the counters back. A new
// prefix has no row to lock: two batches that both insert it conflict on
// its primary key, and the later one is aborted (40001 under snapshot
// isolation) and runs again, finding the row.

// maxPrefix bounds a number's prefix, in characters.
const maxPrefix = 12

// NumberPrefix is the prefix of customer id's invoice numbers: the id's
// ASCII letters and digits, upper-cased, at most 12; "INV" if it has none.
func NumberPrefix(customerID string) string {
	var b strings.Builder
	for i := 0; i < len(customerID) && b.Len() < maxPrefix; i++ {
		c := customerID[i]
		switch {
		case c >= 'a' && c <= 'z':
			b.WriteByte(c - 'a' + 'A')
		case c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
			b.WriteByte(c)
		}
	}
	if b.Len() == 0 {
		return "INV"
	}
	return b.String()
}

// FormatNumber is the n-th number of prefix: at least four digits, more
// once a prefix passes 9999.
func FormatNumber(prefix string, n int64) string {
	return fmt.Sprintf("%s-%04d", prefix, n)
}

// numberBook is the stage's view of the counters its batch locked.
type numberBook struct {
	wanted  map[string]bool  // prefixes the batch's ops will number
	last    map[string]int64 // last number per locked prefix (0: no row yet)
	changed map[string]bool  // prefixes whose counter moved
}

// wantNumber asks the billing stage of batch b to lock the counter of
// customerID's invoice numbers: every op that issues an invoice calls it
// from its needs.
func wantNumber(b ledger.StageBatch, customerID string) error {
	s, err := stageOf(b)
	if err != nil {
		return err
	}
	s.wantNumber(customerID)
	return nil
}

func (s *stage) wantNumber(customerID string) {
	if s.numbers.wanted == nil {
		s.numbers.wanted = map[string]bool{}
	}
	s.numbers.wanted[NumberPrefix(customerID)] = true
}

// loadNumbers locks the wanted counters, in prefix order, with one query.
func (s *stage) loadNumbers(ctx context.Context, b ledger.StageBatch) error {
	n := &s.numbers
	n.last, n.changed = map[string]int64{}, map[string]bool{}
	if len(n.wanted) == 0 {
		return nil
	}
	prefixes := make([]string, 0, len(n.wanted))
	for p := range n.wanted {
		prefixes = append(prefixes, p)
		n.last[p] = 0
	}
	slices.Sort(prefixes)
	rows, err := b.Tx().Query(ctx, `SELECT prefix, last_number FROM invoice_counters WHERE prefix = ANY($1)
		ORDER BY prefix FOR UPDATE`, prefixes)
	if err != nil {
		return fmt.Errorf("lock invoice counters: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			p    string
			last int64
		)
		if err := rows.Scan(&p, &last); err != nil {
			return fmt.Errorf("lock invoice counters: %w", err)
		}
		n.last[p] = last
	}
	return rows.Err()
}

// assignNumber gives inv the next number of its customer's prefix; the
// counter goes back if the op fails.
func (s *stage) assignNumber(b ledger.Batch, inv *Invoice) error {
	p := NumberPrefix(inv.CustomerID)
	last, ok := s.numbers.last[p]
	if !ok {
		return fmt.Errorf("billing: invoice of customer %q numbered without wantNumber in the op's needs", inv.CustomerID)
	}
	wasChanged := s.numbers.changed[p]
	s.numbers.last[p], s.numbers.changed[p] = last+1, true
	num := FormatNumber(p, last+1)
	inv.Number = &num
	b.OnUndo(func() { s.numbers.last[p], s.numbers.changed[p] = last, wasChanged })
	return nil
}

// flushNumbers writes the counters that moved, in prefix order, with one
// statement.
func (s *stage) flushNumbers(ctx context.Context, b ledger.StageBatch) error {
	var (
		prefixes []string
		lasts    []int64
	)
	for p, moved := range s.numbers.changed {
		if moved {
			prefixes = append(prefixes, p)
		}
	}
	if len(prefixes) == 0 {
		return nil
	}
	slices.Sort(prefixes)
	for _, p := range prefixes {
		lasts = append(lasts, s.numbers.last[p])
	}
	if _, err := b.Tx().Exec(ctx, `INSERT INTO invoice_counters (prefix, last_number)
		SELECT u.p, u.n FROM unnest($1::TEXT[], $2::BIGINT[]) AS u(p, n)
		ON CONFLICT (prefix) DO UPDATE SET last_number = excluded.last_number`, prefixes, lasts); err != nil {
		return fmt.Errorf("write invoice counters: %w", err)
	}
	return nil
}

// numberOf is an invoice number's position in its prefix's sequence, for
// tests and tools: ACME-0012 → 12.
func numberOf(number string) (int64, bool) {
	i := strings.LastIndexByte(number, '-')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(number[i+1:], 10, 64)
	return n, err == nil
}
