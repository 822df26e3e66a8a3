package ledger

import (
	"bytes"
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// apply is one transaction attempt for a batch.
func (l *Ledger) apply(ctx context.Context, tx pgx.Tx, shardIdx int, ops []Op, stored map[string]storedEntry, attempt int) (*batch, []opResult, error) {
	b := newBatch(l, tx, shardIdx, l.Now())
	var todo []Op
	for _, op := range ops {
		if _, ok := stored[op.Key()]; ok {
			continue
		}
		todo = append(todo, op)
		var d Decl
		op.Declare(&d)
		for _, o := range d.owners {
			b.owners[o] = struct{}{}
		}
		for _, a := range d.accounts {
			b.declared[a] = struct{}{}
		}
		for _, h := range d.holds {
			b.holdIDs[h] = struct{}{}
		}
	}
	// Every stage exists before the first loads, so an earlier stage can
	// hand a later one work (metering tells wallets which wallets a usage
	// event will charge).
	for _, m := range l.opts.Modules {
		b.stages[m.Name()] = m.NewStage()
	}
	for _, m := range l.opts.Modules {
		if err := b.stages[m.Name()].Load(ctx, b, todo); err != nil {
			return b, nil, fmt.Errorf("load %s: %w", m.Name(), err)
		}
	}
	if err := l.lockHolds(ctx, b); err != nil {
		return b, nil, err
	}
	if err := l.lockAccounts(ctx, b); err != nil {
		return b, nil, err
	}

	now := b.now
	results := make([]opResult, len(ops))
	seen := map[string]int{} // key -> index of the entry recorded in this batch
	for i, op := range ops {
		key := op.Key()
		if s, ok := stored[key]; ok {
			results[i] = replay(s, op)
			continue
		}
		if j, ok := seen[key]; ok {
			e := b.entries[j]
			results[i] = replay(storedEntry{id: e.id, fingerprint: e.fingerprint, status: e.status,
				rejection: e.rejection, result: e.result, createdAt: now}, op)
			continue
		}
		results[i] = b.applyOne(ctx, op)
		if results[i].err == nil {
			seen[key] = len(b.entries) - 1
		}
	}
	if err := b.checkBalanced(); err != nil {
		return b, nil, err
	}
	if err := l.flush(ctx, b); err != nil {
		return b, nil, err
	}
	for _, m := range l.opts.Modules {
		if err := b.stages[m.Name()].Flush(ctx, b); err != nil {
			return b, nil, fmt.Errorf("flush %s: %w", m.Name(), err)
		}
	}
	if l.opts.beforeCommit != nil {
		if err := l.opts.beforeCommit(ctx, tx, attempt); err != nil {
			return b, nil, err
		}
	}
	return b, results, nil
}

func replay(s storedEntry, op Op) opResult {
	if !bytes.Equal(s.fingerprint, op.Fingerprint()) {
		return opResult{err: fmt.Errorf("%w: key %q", ErrIdempotencyConflict, op.Key())}
	}
	return opResult{out: s.outcome()}
}
