package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/creditledger/creditledger/internal/pg"
)

// Batch is what an operation may do while the poster applies it: read the
// accounts it declared, open new ones, post balanced transfers, place and
// close holds, emit outbox messages (written in the same transaction), take
// back its own changes if it fails, and reach its module's state. It runs
// no SQL: what a batch needs from the database, the modules' stages load
// before any operation applies (see Stage). The poster's batch implements
// it over a transaction; Memory implements it with no database, for tests
// of operations' rules.
type Batch interface {
	// Now is the batch's clock: one instant for every op of the batch.
	Now() time.Time
	// EntryID is the id the current op's journal entry will have.
	EntryID() EntryID
	// Describe sets the current op's entry's owner, description and metadata.
	Describe(owner OwnerID, description string, metadata json.RawMessage)
	// Account is a declared (or created) account with its balance as the
	// batch has it; false for an account the op may not read (undeclared,
	// or hot: a hot account's balance lives in rows other shards write).
	Account(id AccountID) (Account, bool)
	// CreateAccount opens an account, inserted with the batch.
	CreateAccount(spec AccountSpec) (Account, error)
	// Post writes balanced postings: all of them apply, or none. An
	// overdraft or a counter limit is a *Rejection; an unbalanced set an
	// error.
	Post(ps ...Posting) error
	// PlaceHold reserves each leg's amount on the pending counters.
	PlaceHold(spec HoldSpec) (Hold, error)
	// CaptureHold posts amount of a hold (all of it when nil) and releases
	// the rest.
	CaptureHold(id HoldID, amount *Amount) (Hold, error)
	// VoidHold releases a hold; expired marks the expiry sweeper's release.
	VoidHold(id HoldID, expired bool) (Hold, error)
	// Emit writes an outbox message in the batch's transaction: the side
	// effect exists exactly when the change that causes it commits.
	Emit(topic string, owner OwnerID, payload any) error
	// OnUndo registers f to run if the current op fails after this point,
	// so a stage can take back what the op changed in its own state.
	OnUndo(f func())
	// Stage is the batch's stage of module m.
	Stage(m Module) Stage
}

// StageBatch is the batch as a module's stage sees it while loading and
// flushing: the Batch, the transaction to read and write its own tables
// with, and the declarations of what the batch must lock.
type StageBatch interface {
	Batch
	// Tx is the batch's transaction. Stages query it once per batch in
	// Load and write with it once per table in Flush, never per op.
	Tx() pgx.Tx
	// DeclareOwner adds an owner whose accounts the batch locks (an op
	// that learns its wallet while loading: a usage event names a
	// customer).
	DeclareOwner(id OwnerID)
	// DeclareAccount adds an account the batch locks.
	DeclareAccount(id AccountID)
	// Engine is the SQL engine behind Tx, for a write that is faster in
	// a form only one engine has (COPY on PostgreSQL).
	Engine() pg.Engine
}

// Stage is a batch's participant from a layer above the ledger (wallets,
// metering): it loads what the batch's ops need with a few queries before
// they apply, and writes its own rows after, in the same transaction.
type Stage interface {
	// Load runs before the ledger locks accounts; it may declare owners and
	// accounts to lock, and hand work to the stages of the modules its
	// module feeds.
	Load(ctx context.Context, b StageBatch, ops []Op) error
	// Flush runs after the ledger wrote its rows.
	Flush(ctx context.Context, b StageBatch) error
}

// Committer is a Stage that learns that its batch committed: Committed is
// called once, after COMMIT succeeded and before any caller of the batch is
// answered, on the stage of the attempt that committed (never on one whose
// attempt rolled back). It must not fail or block: it is for in-process
// state that must never run ahead of the database or behind an answer
// (the wallet's balance cache), and for handing work on.
type Committer interface {
	Committed()
}

// Module is a layer above the ledger that takes part in batches: a fresh
// Stage for each transaction attempt.
type Module interface {
	Name() string
	// Feeds names the modules this one hands work to while loading
	// (metering tells the wallet module which wallets a batch's events
	// charge): New refuses a ledger without them, and their stages load
	// after this one's.
	Feeds() []string
	NewStage() Stage
}

// ModuleOp is implemented by ops that need a module's stage: Enqueue
// refuses one whose module is not registered, rather than letting it fail
// inside a batch.
type ModuleOp interface {
	Op
	Module() string
}

// registered is a module as the ledger runs it, its name and feeds read
// once by New.
type registered struct {
	Module
	name  string
	feeds []string
}

// orderModules checks that module names are unique and that every module a
// module feeds is registered, and returns them in load order: a module
// before those it feeds, otherwise as given.
func orderModules(mods []Module) ([]registered, error) {
	byName := map[string]Module{}
	for _, m := range mods {
		if _, dup := byName[m.Name()]; dup {
			return nil, fmt.Errorf("ledger: module %q registered twice", m.Name())
		}
		byName[m.Name()] = m
	}
	for _, m := range mods {
		for _, f := range m.Feeds() {
			if _, ok := byName[f]; !ok {
				return nil, fmt.Errorf("ledger: module %q feeds module %q, which is not registered; register both", m.Name(), f)
			}
		}
	}
	// A module loads once every module that feeds it has.
	var out []Module
	placed := map[string]bool{}
	for len(out) < len(mods) {
		progress := false
		for _, m := range mods {
			if placed[m.Name()] || !allFeedersPlaced(m, mods, placed) {
				continue
			}
			out, placed[m.Name()], progress = append(out, m), true, true
		}
		if !progress {
			return nil, fmt.Errorf("ledger: modules feed each other in a circle")
		}
	}
	regs := make([]registered, len(out))
	for i, m := range out {
		regs[i] = registered{Module: m, name: m.Name(), feeds: m.Feeds()}
	}
	return regs, nil
}

func allFeedersPlaced(m Module, mods []Module, placed map[string]bool) bool {
	for _, o := range mods {
		for _, f := range o.Feeds() {
			if f == m.Name() && !placed[o.Name()] {
				return false
			}
		}
	}
	return true
}
