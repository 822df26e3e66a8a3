package ledger

import (
	"encoding/json"
	"fmt"
)

// Result is an op's stored result as its caller gets it: the JSON the
// poster encoded once and stored with the entry — an HTTP handler sends
// these bytes as they are, the same for a replay — and the value they
// hold, decoded only when a Go caller asks.
type Result[T any] struct {
	JSON     json.RawMessage
	Replayed bool // the key was applied before: this is the stored answer
}

// Value decodes the result.
func (r Result[T]) Value() (T, error) {
	var v T
	if err := json.Unmarshal(r.JSON, &v); err != nil {
		return v, fmt.Errorf("decode stored result: %w", err)
	}
	return v, nil
}

// Answer turns what the poster said of an op into its Result: a recorded
// rejection becomes the error (a replayed one keeps Replayed, so a retried
// refusal is marked as a replay too).
func Answer[T any](out Outcome, err error) (Result[T], error) {
	if err != nil {
		return Result[T]{}, err
	}
	r := Result[T]{JSON: out.Result, Replayed: out.Replayed}
	if out.Rejection != nil {
		return Result[T]{Replayed: out.Replayed}, out.Rejection
	}
	return r, nil
}

// Unpack is a Result as (value, replayed, error), for Go callers that want
// the value: Unpack(svc.Debit(ctx, key, id, d)).
func Unpack[T any](r Result[T], err error) (T, bool, error) {
	if err != nil {
		var zero T
		return zero, r.Replayed, err
	}
	v, err := r.Value()
	return v, r.Replayed, err
}
