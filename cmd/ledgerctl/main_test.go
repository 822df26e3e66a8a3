package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/apikey"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/internal/testdb"
	"github.com/creditledger/creditledger/ledger"
)

var dsn string

func TestMain(m *testing.M) { os.Exit(testdb.Main(m, &dsn)) }

func ctl(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := func(k string) string {
		if k == "DATABASE_URL" {
			return dsn
		}
		return ""
	}
	code := run(context.Background(), args, env, &out, &errb)
	return code, out.String(), errb.String()
}

// verify exits 0 on a sound ledger and 1, naming the violation, once a
// counter is corrupted on purpose.
func TestVerifyExitCodes(t *testing.T) {
	testdb.Require(t, dsn)
	ctx := context.Background()
	db, err := pg.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l, err := ledger.New(db, ledger.Options{Shards: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(ctx)
	funding, err := l.EnsureAccount(ctx, ledger.AccountSpec{Code: "funding:paid", Asset: "CREDITS", Normal: ledger.Debit, Hot: true})
	if err != nil {
		t.Fatal(err)
	}
	owner := ledger.OwnerID(uuid.New())
	grant := ledger.AccountSpec{ID: ledger.NewAccountID(), Code: "grant:1", Asset: "CREDITS", Owner: owner, Normal: ledger.Credit, NoOverdraft: true}
	for _, op := range []ledger.Op{
		&ledger.CreateAccountOp{IdempotencyKey: "open", Spec: grant},
		&ledger.TransferOp{IdempotencyKey: "fund", Owner: owner, Postings: ledger.Postings(ledger.Transfer{Debit: funding.ID, Credit: grant.ID, Amount: ledger.MustAmount("25")})},
	} {
		if out, err := l.Submit(ctx, op); err != nil || out.Rejection != nil {
			t.Fatal(err, out.Rejection)
		}
	}
	if code, out, errs := ctl(t, "verify"); code != 0 || !strings.Contains(out, "OK") {
		t.Fatalf("sound ledger: exit %d\n%s%s", code, out, errs)
	}
	if _, err := db.Pool.Exec(ctx, `UPDATE ledger_balances SET credits_posted = credits_posted + 1 WHERE account_id = $1`, grant.ID); err != nil {
		t.Fatal(err)
	}
	code, out, _ := ctl(t, "verify")
	if code != 1 || !strings.Contains(out, "counters equal the sum of postings") || !strings.Contains(out, grant.ID.String()) {
		t.Fatalf("corrupted ledger: exit %d, want 1 naming the account\n%s", code, out)
	}
	if _, err := db.Pool.Exec(ctx, `UPDATE ledger_balances SET credits_posted = credits_posted - 1 WHERE account_id = $1`, grant.ID); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := ctl(t, "verify"); code != 0 {
		t.Fatalf("repaired ledger: exit %d\n%s", code, out)
	}
}

func TestKeysCreateListRevoke(t *testing.T) {
	testdb.Require(t, dsn)
	ctx := context.Background()
	code, out, errs := ctl(t, "keys", "create", "--scope", "read", "--name", "dashboard")
	if code != 0 {
		t.Fatalf("create: exit %d: %s", code, errs)
	}
	plain := strings.TrimSpace(out)
	db, err := pg.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	k, err := apikey.NewStore(db).Authenticate(ctx, plain)
	if err != nil || k.Scope != apikey.Read {
		t.Fatalf("printed key does not authenticate as read: %+v %v", k, err)
	}
	if code, out, _ := ctl(t, "keys", "list"); code != 0 || !strings.Contains(out, "dashboard") || strings.Contains(out, plain) {
		t.Fatalf("list: exit %d (must show the key but not its secret)\n%s", code, out)
	}
	if code, _, errs := ctl(t, "keys", "create", "--scope", "portal"); code == 0 {
		t.Fatalf("portal key without a customer must fail: %s", errs)
	}
	if code, _, errs := ctl(t, "keys", "create", "--scope", "portal", "--customer", "ghost"); code == 0 || !strings.Contains(errs, "no customer") {
		t.Fatalf("portal key for an unknown customer must fail: exit %d %s", code, errs)
	}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO customers (id, created_at) VALUES ('real', now())`); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := ctl(t, "keys", "create", "--scope", "portal", "--customer", "real"); code != 0 || !strings.HasPrefix(out, "lk_portal_") {
		t.Fatalf("portal key: exit %d %s %s", code, out, errs)
	}
	// An ingest key may belong to one customer, which must exist; list
	// shows whose it is.
	if code, _, errs := ctl(t, "keys", "create", "--scope", "ingest", "--customer", "ghost"); code == 0 || !strings.Contains(errs, "no customer") {
		t.Fatalf("ingest key for an unknown customer must fail: exit %d %s", code, errs)
	}
	code, out, errs = ctl(t, "keys", "create", "--scope", "ingest", "--customer", "real", "--name", "edge-real")
	if code != 0 || !strings.HasPrefix(out, "lk_ingest_") || !strings.Contains(errs, "created ingest key") {
		t.Fatalf("bound ingest key: exit %d %s %s", code, out, errs)
	}
	bound, err := apikey.NewStore(db).Authenticate(ctx, strings.TrimSpace(out))
	if err != nil || bound.Scope != apikey.Ingest || bound.CustomerID != "real" {
		t.Fatalf("bound ingest key authenticates as %+v, %v", bound, err)
	}
	if code, out, _ := ctl(t, "keys", "list"); code != 0 || !regexp.MustCompile(`(?m)^`+bound.ID+`\s+ingest\s+real\s+edge-real\s`).MatchString(out) {
		t.Fatalf("list does not show the ingest key's customer: exit %d\n%s", code, out)
	}
	if code, _, errs := ctl(t, "keys", "create", "--scope", "read", "--customer", "real"); code == 0 || !strings.Contains(errs, "portal and ingest") {
		t.Fatalf("read key with a customer must fail: exit %d %s", code, errs)
	}
	if code, _, errs := ctl(t, "keys", "revoke", k.ID); code != 0 {
		t.Fatalf("revoke: %s", errs)
	}
	if _, err := apikey.NewStore(db).Authenticate(ctx, plain); err == nil {
		t.Fatal("revoked key still authenticates")
	}
	if code, _, _ := ctl(t, "bogus"); code != 2 {
		t.Fatalf("unknown command: exit %d, want 2", code)
	}
}
