package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// A summarized op does not get a journal entry of its own. Every applied op
// of a batch with the same kind and owner posts into one summary entry,
// whose postings are summed per account, row, side, phase and hold: a
// thousand usage events of one wallet in a batch write one entry and a few
// postings instead of a thousand entries and two thousand postings. Every
// balance change is still a balanced entry (the batch checks each summary
// before writing it, as it checks any entry), and each op's own row — the
// module's, e.g. the event — names the summary entry it went into, so the
// journal still explains every unit: Verify's checks of that module (see
// Check) prove that the rows add up to their entries.
//
// The ledger does not record a summarized op's key in ledger_entries: the
// op's module keeps it in its own row, under a unique constraint, and
// finds it again for the poster (KeyKeeper). Like KeyOnlyIfApplied ops, a
// summarized op's refusals are its error and take no key.

// Summarized is implemented by ops whose entry may be their batch's
// summary. It is honoured only when the op's module is a KeyKeeper;
// otherwise the op gets an entry of its own, keyed as usual.
type Summarized interface {
	Summarized() bool
}

// KeyKeeper is a module that keeps the keys of its summarized ops in its
// own rows.
type KeyKeeper interface {
	Module
	// LookupKeys finds which of keys were applied before, outside any
	// transaction (see transact).
	LookupKeys(ctx context.Context, q Querier, keys []string) (map[string]StoredKey, error)
	// KeyConstraint is the unique constraint that holds the keys: a batch
	// that loses a race on one runs again and finds it.
	KeyConstraint() string
}

// Querier is what a KeyKeeper reads with.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// StoredKey is a summarized op applied before: the entry it went into,
// its fingerprint (a replay with another is a conflict), its stored result
// (nil when the module keeps none: the replay then answers no result) and
// when it was applied.
type StoredKey struct {
	Entry       EntryID
	Fingerprint []byte
	Result      json.RawMessage
	CreatedAt   time.Time
}

// summaryKey is what ops share an entry by.
type summaryKey struct {
	kind  string
	owner OwnerID
}

// summaryEntry is one summary entry of a batch, with the number of ops in
// it and the description they gave.
type summaryEntry struct {
	id          EntryID
	key         summaryKey
	ops         int
	description string
	mixed       bool // its ops described themselves differently
}

// keeper is the KeyKeeper of op's module, if op is summarized.
func (l *Ledger) keeper(op Op) KeyKeeper {
	s, ok := op.(Summarized)
	if !ok || !s.Summarized() {
		return nil
	}
	mo, ok := op.(ModuleOp)
	if !ok {
		return nil
	}
	for _, m := range l.mods {
		if m.name == mo.Module() {
			k, _ := m.Module.(KeyKeeper)
			return k
		}
	}
	return nil
}

// summarize moves the current op into the summary entry of its kind and
// owner: its postings and outbox rows so far are retagged, and whatever it
// stages after goes there directly. Undone with the op.
func (b *batch) summarize(owner OwnerID, description string) {
	c := b.cur
	if !c.summarized || c.summary != nil {
		return
	}
	k := summaryKey{kind: c.entry.kind, owner: owner}
	s := b.summaries[k]
	if s == nil {
		s = &summaryEntry{id: NewEntryID(), key: k, description: description}
		b.summaries[k] = s
		b.summaryOrder = append(b.summaryOrder, s)
	}
	if s.description != description {
		s.mixed = true
	}
	s.ops++
	c.undo = append(c.undo, func() { s.ops-- })
	c.summary = s
	for i := c.nPostings; i < len(b.postings); i++ {
		b.postings[i].entry = s.id
	}
	for i := c.nOutbox; i < len(b.outbox); i++ {
		b.outbox[i].entry = s.id
	}
	for _, id := range c.createdHold {
		if h := b.holds[id]; h != nil && h.EntryID == c.entry.id {
			h.EntryID = s.id
		}
	}
	for h := range c.savedHolds {
		if h.ClosedBy != nil && *h.ClosedBy == c.entry.id {
			id := s.id
			h.ClosedBy = &id
		}
	}
	c.entry.id = s.id
	c.entry.owner = owner
}

// collapse turns the batch's summarized ops into their summary entries:
// the ops' own rows leave the entries to write, each summary with ops in
// it joins them, and the postings of a summary are summed per account,
// row, side, phase and hold, in the order they were first staged.
func (b *batch) collapse() {
	if len(b.summaryOrder) == 0 {
		return
	}
	entries := b.entries[:0:0]
	for _, e := range b.entries {
		if !e.summarized {
			entries = append(entries, e)
		}
	}
	inSummary := map[EntryID]bool{}
	for _, s := range b.summaryOrder {
		if s.ops == 0 {
			continue // every op of it failed and was undone
		}
		inSummary[s.id] = true
		desc := s.description
		if s.ops > 1 && s.mixed {
			desc = fmt.Sprintf("%s: %d operations", s.key.kind, s.ops)
		}
		meta, _ := json.Marshal(struct {
			Ops int `json:"ops"`
		}{s.ops}) // a plain struct: cannot fail
		entries = append(entries, entryRow{
			id: s.id, key: "summary:" + s.id.String(), fingerprint: []byte{}, kind: s.key.kind,
			status: StatusPosted, owner: s.key.owner, description: desc, metadata: meta,
		})
	}
	b.entries = entries
	type pkey struct {
		entry   EntryID
		account AccountID
		shard   int
		side    Side
		pending bool
		hold    HoldID
	}
	at := map[pkey]int{}
	seq := map[EntryID]int{}
	out := b.postings[:0]
	for _, p := range b.postings {
		if !inSummary[p.entry] {
			out = append(out, p)
			continue
		}
		k := pkey{entry: p.entry, account: p.account, shard: p.shard, side: p.side, pending: p.pending}
		if p.hold != nil {
			k.hold = *p.hold
		}
		if i, ok := at[k]; ok {
			out[i].amount = out[i].amount.Add(p.amount)
			continue
		}
		p.seq = seq[p.entry]
		seq[p.entry]++
		at[k] = len(out)
		out = append(out, p)
	}
	b.postings = out
}
