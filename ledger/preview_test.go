package ledger

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/google/uuid"
)

// previewOp is a transfer that also emits an outbox row, so a preview has
// every kind of row to leave behind.
type previewOp struct{ TransferOp }

func (o *previewOp) Apply(ctx context.Context, b Batch) (any, error) {
	res, err := o.TransferOp.Apply(ctx, b)
	if err != nil {
		return nil, err
	}
	return res, b.Emit("test.previewed", o.Owner, map[string]string{"key": o.IdempotencyKey})
}

// footprint is what a preview must not change: the rows the journal and
// the outbox hold for a key and an owner, and the accounts' balances.
type footprint struct {
	entries, postings, outbox int
	balances                  string
}

func takeFootprint(t *testing.T, e *env, key string, owner OwnerID, accts ...AccountID) footprint {
	t.Helper()
	ctx := context.Background()
	var f footprint
	if err := e.db.Pool.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM ledger_entries WHERE idempotency_key = $1 OR owner_id = $2),
			(SELECT count(*) FROM ledger_postings p JOIN ledger_entries le ON le.id = p.entry_id WHERE le.owner_id = $2),
			(SELECT count(*) FROM outbox WHERE owner_id = $2)`, key, owner).Scan(&f.entries, &f.postings, &f.outbox); err != nil {
		t.Fatal(err)
	}
	for _, id := range accts {
		a, err := e.l.Account(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		f.balances += fmt.Sprintf("%s:%s/%s ", id, a.DebitsPosted, a.CreditsPosted)
	}
	return f
}

func TestPreviewLeavesNothing(t *testing.T) {
	ctx := context.Background()
	// A low roll-over mark: the previewed transfer takes funding's row past
	// it, which a commit would act on (the shard moves to the next row).
	limits := Limits{HotRowRoll: MustAmount("100"), HotBatchDelta: MustAmount("200")}
	e := newEnv(t, Options{Shards: 1, Limits: limits})
	owner := OwnerID(uuid.New())
	grant := e.openAccount(t, owner, "grant")
	key := "preview-" + owner.String()
	op := &previewOp{TransferOp{IdempotencyKey: key, Owner: owner,
		Postings: Postings(Transfer{Debit: e.funding.ID, Credit: grant.ID, Amount: MustAmount("150")})}}

	before := takeFootprint(t, e, key, owner, grant.ID, e.funding.ID)
	row := e.l.hotRow(e.funding, 0)
	v, err := e.l.Preview(ctx, op)
	if err != nil {
		t.Fatal(err)
	}
	if res, ok := v.(TransferResult); !ok || res.EntryID == (EntryID{}) {
		t.Fatalf("preview answered %#v, want the op's TransferResult", v)
	}
	if after := takeFootprint(t, e, key, owner, grant.ID, e.funding.ID); after != before {
		t.Fatalf("after the preview %+v, before %+v", after, before)
	}
	if got := e.l.hotRow(e.funding, 0); got != row {
		t.Fatalf("the preview moved the shard's hot row from %d to %d", row, got)
	}

	// Nothing of the preview is in the way of the real thing: the key was
	// not taken, and the op applies as new.
	out, err := e.l.Submit(ctx, op)
	if err != nil || out.Status != StatusPosted || out.Replayed {
		t.Fatalf("submit after the preview: %+v %v", out, err)
	}
	if after := takeFootprint(t, e, key, owner, grant.ID); after.outbox != before.outbox+1 || after.entries != before.entries+1 {
		t.Fatalf("after the submit %+v, before %+v", after, before)
	}
	// Once applied, a preview has nothing new to show.
	if _, err := e.l.Preview(ctx, op); !errors.Is(err, ErrApplied) {
		t.Fatalf("preview of an applied key: %v, want ErrApplied", err)
	}

	// A refusal is the preview's error, and is not recorded either.
	overdraw := &TransferOp{IdempotencyKey: "preview-overdraw-" + owner.String(), Owner: owner,
		Postings: Postings(Transfer{Debit: grant.ID, Credit: e.revenue.ID, Amount: MustAmount("1000")})}
	before = takeFootprint(t, e, overdraw.IdempotencyKey, owner, grant.ID)
	var rej *Rejection
	if _, err := e.l.Preview(ctx, overdraw); !errors.As(err, &rej) || rej.Code != CodeOverdraft {
		t.Fatalf("preview of an overdraft: %v", err)
	}
	if after := takeFootprint(t, e, overdraw.IdempotencyKey, owner, grant.ID); after != before {
		t.Fatalf("after the refused preview %+v, before %+v", after, before)
	}
	mustVerify(t, e.db)
}
