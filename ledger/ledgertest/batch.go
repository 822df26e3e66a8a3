// Package ledgertest is the ledger's test support, as net/http/httptest is
// net/http's. Two tools:
//
//   - NewBatch runs ledger operations in memory, for unit tests of their
//     rules, in the spirit of database/sql's fakedb: a ledger.Memory — the
//     poster's own batch code, with no database behind it — with helpers
//     that stop the test on failure. The tests of the SQL stay on
//     PostgreSQL; these prove the rules (burn-down, limits, alerts, sizing,
//     rounding) in milliseconds, with nothing to start.
//   - Verify is the check every test package's TestMain runs on its
//     database: every ledger invariant holds after its tests.
package ledgertest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/creditledger/creditledger/ledger"
)

// Batch is a ledger.Memory for one test.
type Batch struct {
	*ledger.Memory
	t testing.TB
}

// New is an empty in-memory batch at now.
func NewBatch(t testing.TB, now time.Time) *Batch {
	return &Batch{Memory: ledger.NewMemory(now), t: t}
}

// Open adds an account holding bal, as if the batch had locked it.
func (b *Batch) Open(spec ledger.AccountSpec, bal ledger.Balance) ledger.Account {
	b.t.Helper()
	a, err := b.Memory.Open(spec, bal)
	if err != nil {
		b.t.Fatalf("open %s: %v", spec.Code, err)
	}
	return a
}

// Apply applies op; an error (not a recorded rejection) stops the test.
func (b *Batch) Apply(op ledger.Op) ledger.Outcome {
	b.t.Helper()
	out, err := b.Memory.Apply(context.Background(), op)
	if err != nil {
		b.t.Fatalf("%s %s: %v", op.Kind(), op.Key(), err)
	}
	return out
}

// Posted applies op and decodes its result; a rejection stops the test.
func Posted[T any](b *Batch, op ledger.Op) T {
	b.t.Helper()
	out := b.Apply(op)
	if out.Rejection != nil {
		b.t.Fatalf("%s %s was rejected: %v", op.Kind(), op.Key(), out.Rejection)
	}
	var v T
	if err := json.Unmarshal(out.Result, &v); err != nil {
		b.t.Fatalf("%s %s: decode result: %v", op.Kind(), op.Key(), err)
	}
	return v
}

// Rejected applies op and returns the code of its recorded rejection, or ""
// if it posted.
func (b *Batch) Rejected(op ledger.Op) string {
	b.t.Helper()
	out := b.Apply(op)
	if out.Rejection == nil {
		return ""
	}
	return out.Rejection.Code
}

// Available is an account's available balance as the batch has it.
func (b *Batch) Available(a ledger.Account) ledger.Amount {
	b.t.Helper()
	bal, ok := b.Balance(a.ID)
	if !ok {
		b.t.Fatalf("account %s is not in the batch", a.Code)
	}
	return bal.Available(a.Normal)
}

// Topics are the topics of what the batch emitted, in order.
func (b *Batch) Topics() []string {
	var out []string
	for _, m := range b.Outbox() {
		out = append(out, m.Topic)
	}
	return out
}
