package ledger

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/internal/testdb"
)

// testModule is a module whose stages record which batches loaded and
// flushed them.
type testModule struct {
	name  string
	feeds []string
	log   *stageLog
}

type stageLog struct {
	mu     sync.Mutex
	events []string // "load m", "flush m"
}

func (l *stageLog) add(e string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func (l *stageLog) take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := strings.Join(l.events, ", ")
	l.events = nil
	return s
}

func (m testModule) Name() string    { return m.name }
func (m testModule) Feeds() []string { return m.feeds }
func (m testModule) NewStage() Stage { return testStage(m) }

type testStage testModule

func (s testStage) Load(context.Context, StageBatch, []Op) error {
	s.log.add("load " + s.name)
	return nil
}

func (s testStage) Flush(context.Context, StageBatch) error {
	s.log.add("flush " + s.name)
	return nil
}

// moduleOp is a transfer that belongs to a module.
type moduleOp struct {
	*TransferOp
	module string
}

func (o moduleOp) Module() string { return o.module }

func names(rs []registered) string {
	var out []string
	for _, r := range rs {
		out = append(out, r.name)
	}
	return strings.Join(out, ",")
}

func TestOrderModules(t *testing.T) {
	m := func(name string, feeds ...string) Module { return testModule{name: name, feeds: feeds} }
	for _, tc := range []struct {
		name    string
		mods    []Module
		want    string // load order, or the error's text
		wantErr bool
	}{
		{"none", nil, "", false},
		{"as given when nothing feeds", []Module{m("a"), m("b")}, "a,b", false},
		{"a feeder first whatever the order given", []Module{m("wallet"), m("metering", "wallet")}, "metering,wallet", false},
		{"a chain", []Module{m("c"), m("b", "c"), m("a", "b")}, "a,b,c", false},
		{"two feeders of one module", []Module{m("w"), m("x", "w"), m("y", "w")}, "x,y,w", false},
		{"registered twice", []Module{m("a"), m("a")}, `module "a" registered twice`, true},
		{"feeds a module not registered", []Module{m("metering", "wallet")}, `feeds module "wallet", which is not registered`, true},
		{"a circle", []Module{m("a", "b"), m("b", "a")}, "in a circle", true},
		{"feeds itself", []Module{m("a", "a")}, "in a circle", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := orderModules(tc.mods)
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err = %v, want one saying %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if names(got) != tc.want {
				t.Fatalf("order = %q, want %q", names(got), tc.want)
			}
		})
	}
}

// A batch runs the stages of its ops' modules and of the modules they
// feed, in load order, and no other: a batch of debits never loads
// metering's stage.
func TestActiveModules(t *testing.T) {
	regs, err := orderModules([]Module{testModule{name: "wallet"}, testModule{name: "metering", feeds: []string{"wallet"}},
		testModule{name: "other"}})
	if err != nil {
		t.Fatal(err)
	}
	l := &Ledger{mods: regs}
	op := func(module string) Op { return moduleOp{&TransferOp{}, module} }
	for _, tc := range []struct {
		name string
		ops  []Op
		want string
	}{
		{"no ops", nil, ""},
		{"ledger ops only", []Op{&TransferOp{}}, ""},
		{"a wallet op", []Op{op("wallet")}, "wallet"},
		{"a metering op brings the module it feeds", []Op{op("metering")}, "metering,wallet"},
		{"both, in load order", []Op{op("wallet"), op("metering")}, "metering,wallet"},
		{"an unrelated module alone", []Op{op("other"), &TransferOp{}}, "other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := names(l.activeModules(tc.ops)); got != tc.want {
				t.Fatalf("active = %q, want %q", got, tc.want)
			}
		})
	}
}

// Through PostgreSQL: the poster loads and flushes exactly those stages,
// and refuses at Enqueue an op whose module it was not built with.
func TestStagesOfABatch(t *testing.T) {
	testdb.Require(t, dsn)
	log := &stageLog{}
	e := newEnv(t, Options{Shards: 1, Modules: []Module{
		testModule{name: "wallet", log: log}, testModule{name: "metering", feeds: []string{"wallet"}, log: log},
	}})
	ctx := context.Background()
	owner := OwnerID(uuid.New())
	acc := e.openAccount(t, owner, "a")
	transfer := func(key string) *TransferOp {
		return &TransferOp{IdempotencyKey: key + owner.String(), Owner: owner,
			Postings: Postings(Transfer{Debit: e.funding.ID, Credit: acc.ID, Amount: MustAmount("1")})}
	}
	for _, tc := range []struct {
		name string
		op   Op
		want string
	}{
		{"a ledger op", transfer("plain"), ""},
		{"a wallet op", moduleOp{transfer("w"), "wallet"}, "load wallet, flush wallet"},
		{"a metering op", moduleOp{transfer("m"), "metering"}, "load metering, load wallet, flush metering, flush wallet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if out, err := e.l.Submit(ctx, tc.op); err != nil || out.Rejection != nil {
				t.Fatal(err, out.Rejection)
			}
			if got := log.take(); got != tc.want {
				t.Fatalf("stages: %q, want %q", got, tc.want)
			}
		})
	}
	if _, err := e.l.Enqueue(ctx, moduleOp{transfer("x"), "invoicing"}); err == nil || !strings.Contains(err.Error(), `module "invoicing"`) {
		t.Fatalf("Enqueue of an op of an unregistered module: %v", err)
	}
}
