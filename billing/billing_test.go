package billing

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/internal/testdb"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/ledger/ledgertest"
	"github.com/creditledger/creditledger/metering"
	"github.com/creditledger/creditledger/pricing"
	"github.com/creditledger/creditledger/wallet"
)

var dsn string

// After the package's tests, the whole journal they wrote must verify.
func TestMain(m *testing.M) {
	os.Exit(testdb.Main(m, &dsn, ledgertest.VerifyWith(metering.Checks()...)))
}

// clock is a settable time source shared by the ledger and the services.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// world is a ledger with the metering, billing and wallet modules on the
// package's database, with its services and a clock the test moves.
type world struct {
	l       *ledger.Ledger
	db      *pg.DB
	clock   *clock
	wallets *wallet.Service
	meters  *metering.Service
	bills   *Service
}

func newWorld(t *testing.T) *world {
	testdb.Require(t, dsn)
	t.Helper()
	ctx := context.Background()
	db, err := pg.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return worldOn(t, db)
}

func worldOn(t *testing.T, db *pg.DB) *world {
	t.Helper()
	c := &clock{t: time.Now().UTC().Truncate(time.Second)}
	l, err := ledger.New(db, ledger.Options{Shards: 4, Clock: c.Now,
		Modules: []ledger.Module{metering.Module(), Module(), wallet.Module()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close(context.Background()) })
	ws := wallet.NewService(l)
	ms := metering.NewService(l, ws, nil)
	return &world{l: l, db: db, clock: c, wallets: ws, meters: ms, bills: NewService(l, ws, ms, nil)}
}

// unique makes names that do not collide between tests sharing a database.
func unique(prefix string) string { return prefix + strings.ReplaceAll(uuid.NewString()[:8], "-", "") }

// wallet makes a customer and a CREDITS wallet for one test.
func (w *world) wallet(t *testing.T, policy wallet.Policy) wallet.Wallet {
	t.Helper()
	ctx := context.Background()
	c, err := w.wallets.CreateCustomer(ctx, wallet.Customer{ID: unique("cus-")})
	if err != nil {
		t.Fatal(err)
	}
	wl, err := w.wallets.CreateWallet(ctx, wallet.NewWallet{CustomerID: c.ID, Asset: "CREDITS", OveragePolicy: policy})
	if err != nil {
		t.Fatal(err)
	}
	return wl
}

func (w *world) grant(t *testing.T, id wallet.WalletID, amount string) wallet.Grant {
	t.Helper()
	g, _, err := ledger.Unpack(w.wallets.AddGrant(context.Background(), "", id, wallet.NewGrant{Amount: ledger.MustAmount(amount), Kind: wallet.Paid}))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func (w *world) mustDebit(t *testing.T, id wallet.WalletID, amount string) wallet.Debit {
	t.Helper()
	d, _, err := ledger.Unpack(w.wallets.Debit(context.Background(), "", id, wallet.NewDebit{Amount: ledger.MustAmount(amount)}))
	if err != nil {
		t.Fatalf("debit %s: %v", amount, err)
	}
	return d
}

func (w *world) balance(t *testing.T, id wallet.WalletID) wallet.Balance {
	t.Helper()
	b, err := w.wallets.Balance(context.Background(), id, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (w *world) closeCycle(t *testing.T, id wallet.WalletID) Invoice {
	t.Helper()
	inv, _, err := ledger.Unpack(w.bills.CloseCycle(context.Background(), id))
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// topic is an outbox message as a test reads it.
type topic struct {
	Topic string
	Data  map[string]any
}

// outbox lists the messages of owner, oldest first, of the topics given
// (all when none).
func (w *world) outbox(t *testing.T, owner ledger.OwnerID, topics ...string) []topic {
	t.Helper()
	rows, err := w.db.Pool.Query(context.Background(),
		`SELECT topic, payload FROM outbox WHERE owner_id = $1 ORDER BY created_at, id`, owner)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []topic
	for rows.Next() {
		var (
			e   topic
			raw []byte
		)
		if err := rows.Scan(&e.Topic, &raw); err != nil {
			t.Fatal(err)
		}
		if len(topics) > 0 && !slices.Contains(topics, e.Topic) {
			continue
		}
		if err := json.Unmarshal(raw, &e.Data); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// meter makes a meter with a fresh code and event name.
func (w *world) meter(t *testing.T, m metering.Meter) metering.Meter {
	t.Helper()
	m.Code = unique(m.Code)
	if m.EventName == "" {
		m.EventName = unique("ev")
	}
	out, err := w.meters.CreateMeter(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// price prices meter m in asset from a JSON spec.
func (w *world) price(t *testing.T, m metering.Meter, asset, spec string) {
	t.Helper()
	var p pricing.Price
	if err := json.Unmarshal([]byte(spec), &p); err != nil {
		t.Fatalf("price %s: %v", spec, err)
	}
	if _, _, err := w.meters.CreatePrice(context.Background(), "", metering.NewPrice{MeterCode: m.Code, Asset: asset, Price: p}); err != nil {
		t.Fatal(err)
	}
}

// ingest applies raw events; every one must be accepted.
func (w *world) ingest(t *testing.T, events ...map[string]any) {
	t.Helper()
	raws := make([]json.RawMessage, len(events))
	for i, e := range events {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		raws[i] = b
	}
	res, err := w.meters.Ingest(context.Background(), raws, metering.IngestOptions{})
	if err != nil || res.Accepted != len(events) {
		t.Fatalf("ingest: %+v %v", res, err)
	}
}

// usageEvent is an event as an app sends it.
func usageEvent(id, customer, name string, props map[string]any) map[string]any {
	return map[string]any{"event_id": id, "customer_id": customer, "event_name": name, "properties": props}
}
