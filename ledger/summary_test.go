package ledger

import (
	"context"
	"errors"
	"testing"
	"time"
)

// keeperModule is a module that keeps its ops' keys (KeyKeeper); the
// collapse below never asks it for any.
type keeperModule struct{}

func (keeperModule) Name() string          { return "keeper" }
func (keeperModule) Feeds() []string       { return nil }
func (keeperModule) NewStage() Stage       { return nil }
func (keeperModule) KeyConstraint() string { return "kept_pkey" }
func (keeperModule) LookupKeys(context.Context, Querier, []string) (map[string]StoredKey, error) {
	return nil, nil
}

// sumOp moves amount from one account to another for owner; summarized
// when its module keeps keys; fail makes it fail after posting.
type sumOp struct {
	key        string
	owner      OwnerID
	from, to   AccountID
	amount     string
	summarized bool
	fail       bool
}

func (o *sumOp) Key() string         { return o.key }
func (o *sumOp) Fingerprint() []byte { return []byte(o.key) }
func (o *sumOp) Kind() string        { return "usage" }
func (o *sumOp) ShardKey() uint64    { return 0 }
func (o *sumOp) Declare(*Decl)       {}
func (o *sumOp) Module() string      { return "keeper" }
func (o *sumOp) Summarized() bool    { return o.summarized }
func (o *sumOp) Apply(_ context.Context, b Batch) (any, error) {
	if err := b.Post(Posting{Account: o.from, Side: Debit, Amount: MustAmount(o.amount)},
		Posting{Account: o.to, Side: Credit, Amount: MustAmount(o.amount)}); err != nil {
		return nil, err
	}
	b.Describe(o.owner, "usage: "+o.key, nil)
	if o.fail {
		return nil, errors.New("fails after posting")
	}
	return o.key, nil
}

// A batch's summarized ops share one entry per kind and owner, their
// postings summed per account and side; an op that failed leaves nothing
// in its summary, and a summary all of whose ops failed is not written;
// ops that are not summarized keep their own entries.
func TestSummaryEntries(t *testing.T) {
	l := &Ledger{mods: []registered{{Module: keeperModule{}, name: "keeper"}}, limits: Limits{}.withDefaults()}
	b := newBatch(l, nil, 0, time.Now())
	acct := func(code string, normal Side) AccountID {
		a := &acct{Account: Account{ID: NewAccountID(), Code: code, Asset: "CREDITS", Normal: normal, Shards: 1}}
		b.accounts[a.ID] = a
		return a.ID
	}
	gx, gy, rev := acct("grant:x", Credit), acct("grant:y", Credit), acct("revenue:usage", Credit)
	x, y, z := OwnerID(NewAccountID()), OwnerID(NewAccountID()), OwnerID(NewAccountID())
	ops := []*sumOp{
		{key: "e1", owner: x, from: gx, to: rev, amount: "1.5", summarized: true},
		{key: "e2", owner: y, from: gy, to: rev, amount: "2", summarized: true},
		{key: "e3", owner: x, from: gx, to: rev, amount: "0.25", summarized: true},
		{key: "d1", owner: x, from: gx, to: rev, amount: "7"}, // its own entry
		{key: "e4", owner: x, from: gx, to: rev, amount: "100", summarized: true, fail: true},
		{key: "e5", owner: z, from: gy, to: rev, amount: "3", summarized: true, fail: true},
	}
	ids := map[string]EntryID{}
	for _, op := range ops {
		r := b.applyOne(context.Background(), op)
		if op.fail != (r.err != nil) {
			t.Fatalf("%s: %v", op.key, r.err)
		}
		ids[op.key] = r.out.EntryID
	}
	if ids["e1"] != ids["e3"] || ids["e1"] == ids["e2"] || ids["d1"] == ids["e1"] {
		t.Fatalf("entries %v: e1 and e3 (owner x) share one, e2 (owner y) and d1 (not summarized) their own", ids)
	}
	b.collapse()
	if err := b.checkBalanced(); err != nil {
		t.Fatal(err)
	}
	type row struct {
		owner OwnerID
		ops   string
	}
	got := map[EntryID]row{}
	for _, e := range b.entries {
		if e.summarized {
			t.Fatalf("an op's record %s is left to write", e.key)
		}
		got[e.id] = row{e.owner, string(e.metadata)}
	}
	want := map[EntryID]row{
		ids["e1"]: {x, `{"ops":2}`},
		ids["e2"]: {y, `{"ops":1}`},
		ids["d1"]: {x, ""},
	}
	if len(got) != len(want) {
		t.Fatalf("entries %v, want %v", got, want)
	}
	for id, w := range want {
		if got[id] != w {
			t.Fatalf("entry %s: %v, want %v", id, got[id], w)
		}
	}
	sums := map[EntryID]map[AccountID]string{}
	for _, p := range b.postings {
		if sums[p.entry] == nil {
			sums[p.entry] = map[AccountID]string{}
		}
		if _, dup := sums[p.entry][p.account]; dup {
			t.Fatalf("entry %s has two postings on %s", p.entry, p.account)
		}
		sums[p.entry][p.account] = p.side.String() + " " + p.amount.String()
	}
	for id, w := range map[EntryID]map[AccountID]string{
		ids["e1"]: {gx: "debit 1.75", rev: "credit 1.75"},
		ids["e2"]: {gy: "debit 2", rev: "credit 2"},
		ids["d1"]: {gx: "debit 7", rev: "credit 7"},
	} {
		for a, s := range w {
			if sums[id][a] != s {
				t.Fatalf("entry %s account %s: %q, want %q (all: %v)", id, a, sums[id][a], s, sums)
			}
		}
	}
	// The failed op's 100 is undone on the account too.
	if got := b.accounts[gx].DebitsPosted.String(); got != "8.75" {
		t.Fatalf("grant x debited %s, want 8.75", got)
	}
}
