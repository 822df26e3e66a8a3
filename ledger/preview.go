package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// ErrApplied is Preview's answer for an op whose key was applied before:
// submitting it would replay the stored result, changing nothing.
var ErrApplied = errors.New("ledger: the operation's key was applied before")

// errPreviewed ends a preview's transaction: returned by its body so that
// the transaction rolls back (RunTx never retries it).
var errPreviewed = errors.New("ledger: preview done; rolled back")

// Preview applies op alone as its poster shard would — the stages load,
// the accounts are locked, the op applies, the batch is checked and
// written, the stages flush — inside a transaction that is always rolled
// back, and returns what the op's Apply returned (a rejection as the
// error). It answers "what would this op do now?" with nothing stored:
//
//   - its idempotency key is never recorded; a key applied before is
//     ErrApplied (the op would only be replayed: nothing new to show);
//   - its outbox rows, entries and counter changes roll back with the rest;
//   - the poster's memory is not touched beyond what any reader does: hot
//     rows the preview's writes would take to the roll-over mark are not
//     rolled (that happens only after a commit), and the account metadata
//     it may cache was read from committed rows.
//
// A preview runs beside the shard's own batches, in its own transaction:
// it takes the same row locks (so it waits for, and briefly holds up, a
// batch of the same owner) and is retried like one on a conflict.
func (l *Ledger) Preview(ctx context.Context, op Op) (any, error) {
	if m, ok := op.(ModuleOp); ok && !l.modules[m.Module()] {
		return nil, fmt.Errorf("ledger: a %s op needs module %q, which this ledger was not built with", op.Kind(), m.Module())
	}
	ctx, cancel := context.WithTimeout(ctx, l.opts.BatchTimeout)
	defer cancel()
	stored, err := l.lookupKeys(ctx, []Op{op})
	if err != nil {
		return nil, err
	}
	if _, ok := stored[op.Key()]; ok {
		return nil, fmt.Errorf("preview %s: %w", op.Kind(), ErrApplied)
	}
	shardIdx := int(op.ShardKey() % uint64(len(l.shards)))
	var (
		value any
		res   opResult
	)
	txo := l.opts.Tx
	txo.OnRetry = nil // a preview's retries are not the poster's
	err = l.db.RunTx(ctx, txo, func(ctx context.Context, tx pgx.Tx) error {
		b, results, err := l.apply(ctx, tx, shardIdx, []Op{op}, nil, 1)
		if err != nil {
			return err
		}
		value, res = b.value, results[0]
		return errPreviewed
	})
	if !errors.Is(err, errPreviewed) {
		return nil, fmt.Errorf("preview %s: %w", op.Kind(), err)
	}
	if res.err != nil {
		return nil, res.err
	}
	if res.out.Rejection != nil {
		return nil, res.out.Rejection
	}
	return value, nil
}
