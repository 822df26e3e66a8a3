package apikey

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/internal/testdb"
)

var dsn string

func TestMain(m *testing.M) { os.Exit(testdb.Main(m, &dsn)) }

func openDB(t *testing.T, url string) *pg.DB {
	t.Helper()
	testdb.Require(t, url)
	db, err := pg.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}

// clock is a settable time source for Store.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestSplit(t *testing.T) {
	plain, id, hash, err := newKey(Read)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(plain, "lk_read_"+id+"_") {
		t.Fatalf("key %q does not carry its scope and id %q", plain, id)
	}
	gotID, secret := split(plain)
	if gotID != id || string(hashSecret(secret)) != string(hash) {
		t.Fatalf("split(%q) = %q, %q", plain, gotID, secret)
	}
	// Anything else is looked up under a key id derived from its hash.
	for _, s := range []string{"changeme", "lk_read_short_secret", plain + "x", strings.ToUpper(plain)} {
		id, secret := split(s)
		if !strings.HasPrefix(id, derivedPrefix) || len(id) != len(derivedPrefix)+16 || secret != s {
			t.Errorf("split(%q) = %q, %q; want a derived id and the whole string", s, id, secret)
		}
	}
}

func TestCreateAndAuthenticate(t *testing.T) {
	ctx := context.Background()
	s := NewStore(openDB(t, dsn))
	for _, tc := range []struct {
		scope    Scope
		customer string
	}{{Admin, ""}, {Ingest, ""}, {Ingest, "cus_1"}, {Read, ""}, {Portal, "cus_1"}} {
		plain, k, err := s.Create(ctx, NewKey{Scope: tc.scope, CustomerID: tc.customer, Name: "test " + string(tc.scope)})
		if err != nil {
			t.Fatalf("create %s: %v", tc.scope, err)
		}
		got, err := s.Authenticate(ctx, plain)
		if err != nil {
			t.Fatalf("authenticate %s: %v", tc.scope, err)
		}
		if got.ID != k.ID || got.Scope != tc.scope || got.CustomerID != tc.customer || !got.CreatedAt.Equal(k.CreatedAt) {
			t.Errorf("authenticate %s = %+v, want %+v", tc.scope, got, k)
		}
		// A fresh store reads the row from the database, not the cache.
		if got, err := NewStore(s.DB).Authenticate(ctx, plain); err != nil || got.ID != k.ID {
			t.Errorf("authenticate %s uncached = %+v, %v", tc.scope, got, err)
		}
		last := "a"
		if strings.HasSuffix(plain, "a") {
			last = "b"
		}
		wrong := plain[:len(plain)-1] + last
		if _, err := s.Authenticate(ctx, wrong); !errors.Is(err, fault.Unauthorized) {
			t.Errorf("wrong secret: err = %v, want fault.Unauthorized", err)
		}
	}
	for _, bad := range []string{"", "nope", strings.Repeat("x", 10000), "lk_admin_aaaaaaaaaaaaaaaa_" + strings.Repeat("a", 52)} {
		if _, err := s.Authenticate(ctx, bad); !errors.Is(err, fault.Unauthorized) {
			t.Errorf("authenticate %.20q: err = %v, want fault.Unauthorized", bad, err)
		}
	}
}

func TestCreateRejects(t *testing.T) {
	s := NewStore(openDB(t, dsn))
	for _, tc := range []struct {
		name   string
		req    NewKey
		fields []string // every field refused, in order
	}{
		{"no scope", NewKey{}, []string{"scope"}},
		{"unknown scope", NewKey{Scope: "root"}, []string{"scope"}},
		{"portal without customer", NewKey{Scope: Portal}, []string{"customer_id"}},
		{"admin with customer", NewKey{Scope: Admin, CustomerID: "cus_1"}, []string{"customer_id"}},
		{"read with customer", NewKey{Scope: Read, CustomerID: "cus_1"}, []string{"customer_id"}},
		{"customer id too long", NewKey{Scope: Ingest, CustomerID: strings.Repeat("c", MaxCustomerIDLen+1)}, []string{"customer_id"}},
		{"negative ttl", NewKey{Scope: Read, TTL: -time.Second}, []string{"expires_in_seconds"}},
		{"customer with NUL", NewKey{Scope: Portal, CustomerID: "cus\x00"}, []string{"customer_id"}},
		{"customer not UTF-8", NewKey{Scope: Portal, CustomerID: "cus\xff"}, []string{"customer_id"}},
		{"name with NUL", NewKey{Scope: Read, Name: "ci\x00"}, []string{"name"}},
		{"name not UTF-8", NewKey{Scope: Read, Name: "ci \xc3"}, []string{"name"}},
		{"name too long", NewKey{Scope: Read, Name: strings.Repeat("n", MaxNameLen+1)}, []string{"name"}},
		{"everything", NewKey{Scope: "root", CustomerID: "c\x00", Name: "\x00", TTL: -1}, []string{"scope", "customer_id", "name", "expires_in_seconds"}},
	} {
		_, _, err := s.Create(context.Background(), tc.req)
		if !errors.Is(err, fault.Invalid) {
			t.Errorf("%s: err = %v, want fault.Invalid", tc.name, err)
			continue
		}
		if got := invalidFields(err); !slices.Equal(got, tc.fields) {
			t.Errorf("%s: refused fields %v, want %v", tc.name, got, tc.fields)
		}
		if err := tc.req.Check(); err == nil {
			t.Errorf("%s: Check accepts what Create refuses", tc.name)
		}
	}
	if err := (NewKey{Scope: Portal, CustomerID: "cus_1", Name: "dashboard", TTL: time.Hour}).Check(); err != nil {
		t.Errorf("Check refuses a good request: %v", err)
	}
}

// invalidFields are the fields of the Invalid faults err joins.
func invalidFields(err error) []string {
	var out []string
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, invalidFields(e)...)
		}
		return out
	}
	if fe, ok := fault.As(err); ok && fe.Kind == fault.Invalid {
		out = append(out, fe.Field)
	}
	return out
}

// The table holds the rule too, for keys written by anything but Create.
func TestCustomerScopeConstraint(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, dsn)
	for _, tc := range []struct {
		scope    Scope
		customer *string
		ok       bool
	}{
		{Portal, ptr("cus_1"), true},
		{Portal, nil, false},
		{Ingest, ptr("cus_1"), true},
		{Ingest, nil, true},
		{Read, ptr("cus_1"), false},
		{Read, nil, true},
		{Admin, ptr("cus_1"), false},
		{Admin, nil, true},
	} {
		_, _, hash, err := newKey(tc.scope)
		if err != nil {
			t.Fatal(err)
		}
		keyID := uuid.NewString()
		_, err = db.Pool.Exec(ctx, `INSERT INTO api_keys (id, key_id, secret_hash, scope, customer_id, created_at)
			VALUES ($1, $2, $3, $4, $5, now())`, uuid.NewString(), keyID, hash, string(tc.scope), tc.customer)
		var pgErr *pgconn.PgError
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s key with customer %v refused: %v", tc.scope, tc.customer != nil, err)
		case !tc.ok && !(errors.As(err, &pgErr) && pgErr.Code == "23514"):
			t.Errorf("%s key with customer %v: err = %v, want a check violation", tc.scope, tc.customer != nil, err)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestExpiry(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Now()}
	s := NewStore(openDB(t, dsn))
	s.Now = clk.Now
	plain, _, err := s.Create(ctx, NewKey{Scope: Read, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, plain); err != nil {
		t.Fatalf("fresh key: %v", err)
	}
	clk.Add(time.Minute)
	// Still cached, but expiry is checked on every call.
	if _, err := s.Authenticate(ctx, plain); !errors.Is(err, fault.Unauthorized) {
		t.Fatalf("expired key: err = %v, want fault.Unauthorized", err)
	}
}

func TestRevoke(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Now()}
	db := openDB(t, dsn)
	here, there := NewStore(db), NewStore(db) // two processes
	here.Now, there.Now = clk.Now, clk.Now
	plain, k, err := here.Create(ctx, NewKey{Scope: Ingest})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Store{here, there} {
		if _, err := s.Authenticate(ctx, plain); err != nil { // now cached in both
			t.Fatal(err)
		}
	}
	revoked, err := here.Revoke(ctx, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	if revoked.RevokedAt == nil {
		t.Fatal("Revoke returned a key without revoked_at")
	}
	if _, err := here.Authenticate(ctx, plain); !errors.Is(err, fault.Unauthorized) {
		t.Fatalf("revoked here, authenticated here: err = %v, want fault.Unauthorized", err)
	}
	// The other process learns of it when its cache entry runs out.
	if _, err := there.Authenticate(ctx, plain); err != nil {
		t.Fatalf("revoked elsewhere, within the cache TTL: err = %v; the documented behaviour changed", err)
	}
	clk.Add(defaultCacheTTL)
	if _, err := there.Authenticate(ctx, plain); !errors.Is(err, fault.Unauthorized) {
		t.Fatalf("revoked elsewhere, after the cache TTL: err = %v, want fault.Unauthorized", err)
	}
	// Revoking again keeps the first time; unknown ids are not found.
	again, err := here.Revoke(ctx, k.ID)
	if err != nil || !again.RevokedAt.Equal(*revoked.RevokedAt) {
		t.Fatalf("revoke again = %v, %v; want revoked_at %v", again.RevokedAt, err, revoked.RevokedAt)
	}
	for _, id := range []string{"00000000-0000-0000-0000-000000000000", "not-a-uuid"} {
		if _, err := here.Revoke(ctx, id); !errors.Is(err, fault.NotFound) {
			t.Errorf("revoke %q: err = %v, want fault.NotFound", id, err)
		}
	}
}

func TestCacheIsBounded(t *testing.T) {
	ctx := context.Background()
	s := NewStore(openDB(t, dsn))
	s.CacheSize = 3
	for range 10 {
		plain, _, err := s.Create(ctx, NewKey{Scope: Read})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Authenticate(ctx, plain); err != nil {
			t.Fatal(err)
		}
	}
	s.mu.Lock()
	n := len(s.cache)
	s.mu.Unlock()
	if n > 3 {
		t.Fatalf("cache holds %d keys, limit 3", n)
	}
}

func TestList(t *testing.T) {
	testdb.Require(t, dsn)
	ctx := context.Background()
	url, drop, err := testdb.Create(ctx, "apikey_list")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := drop(context.Background()); err != nil {
			t.Errorf("drop: %v", err)
		}
	})
	clk := &clock{t: time.Now()}
	s := NewStore(openDB(t, url))
	s.Now = clk.Now
	var created []Key
	for i := range 7 {
		scope, customer := Read, ""
		if i%2 == 1 {
			scope, customer = Portal, "cus_1"
		}
		_, k, err := s.Create(ctx, NewKey{Scope: scope, CustomerID: customer})
		if err != nil {
			t.Fatal(err)
		}
		created = append(created, k)
		if i != 3 { // two keys share a created_at: id breaks the tie
			clk.Add(time.Second)
		}
	}
	slices.SortFunc(created, func(a, b Key) int { // newest first
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	var want []string
	for _, k := range created {
		want = append(want, k.ID)
	}
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		keys, next, err := s.List(ctx, ListOptions{Limit: 3, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			got = append(got, k.ID)
		}
		if next == "" {
			break
		}
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		cursor = next
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("listed\n%v\nwant\n%v", got, want)
	}
	portal, _, err := s.List(ctx, ListOptions{Scope: Portal})
	if err != nil || len(portal) != 3 {
		t.Fatalf("portal keys: %d, %v; want 3", len(portal), err)
	}
	for _, tc := range []struct {
		opts  ListOptions
		field string
	}{
		{ListOptions{Cursor: "garbage"}, "cursor"},
		{ListOptions{Scope: "root"}, "scope"},
		{ListOptions{Limit: 501}, "limit"},
	} {
		if _, _, err := s.List(ctx, tc.opts); !errors.Is(err, fault.Invalid) || fault.FieldOf(err) != tc.field {
			t.Errorf("List(%+v): err = %v, want Invalid on %s", tc.opts, err, tc.field)
		}
	}
}

func TestBootstrapAdmin(t *testing.T) {
	testdb.Require(t, dsn)
	ctx := context.Background()
	url, drop, err := testdb.Create(ctx, "apikey_bootstrap")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := drop(context.Background()); err != nil {
			t.Errorf("drop: %v", err)
		}
	})
	db := openDB(t, url)
	count := func() int {
		t.Helper()
		var n int
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM api_keys`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	s := NewStore(db)
	created, err := s.BootstrapAdmin(ctx, "correct horse battery staple")
	if err != nil || !created {
		t.Fatalf("first bootstrap = %v, %v; want created", created, err)
	}
	k, err := s.Authenticate(ctx, "correct horse battery staple")
	if err != nil || k.Scope != Admin {
		t.Fatalf("authenticate bootstrap key = %+v, %v", k, err)
	}
	for _, key := range []string{"correct horse battery staple", "another key"} {
		if created, err := s.BootstrapAdmin(ctx, key); err != nil || created {
			t.Fatalf("bootstrap %q on a non-empty table = %v, %v; want not created", key, created, err)
		}
	}
	if _, err := s.Authenticate(ctx, "another key"); !errors.Is(err, fault.Unauthorized) {
		t.Fatalf("key offered to a non-empty table authenticates: %v", err)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d keys, want 1", n)
	}

	// Processes starting together, with the same key or different ones:
	// exactly one row.
	const procs = 8
	stores := make([]*Store, procs)
	for i := range stores {
		stores[i] = NewStore(openDB(t, url))
	}
	for round := range 6 {
		if _, err := db.Pool.Exec(ctx, `DELETE FROM api_keys`); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		results := make([]bool, procs)
		errs := make([]error, procs)
		start := make(chan struct{})
		for i := range procs {
			key := "shared-admin-key"
			if round%2 == 1 {
				key = "admin-key-" + string(rune('a'+i))
			}
			wg.Go(func() {
				<-start
				results[i], errs[i] = stores[i].BootstrapAdmin(ctx, key)
			})
		}
		close(start)
		wg.Wait()
		winners := 0
		for i := range procs {
			if errs[i] != nil {
				t.Fatalf("round %d: bootstrap %d: %v", round, i, errs[i])
			}
			if results[i] {
				winners++
			}
		}
		if n := count(); winners != 1 || n != 1 {
			t.Fatalf("round %d: %d bootstraps reported creating, %d rows; want 1 and 1", round, winners, n)
		}
	}
}
