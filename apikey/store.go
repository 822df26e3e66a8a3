// Package apikey is the service's API keys: four scopes, keys issued,
// listed and revoked, stored hashed in api_keys, and the check that a
// presented key string authenticates. It knows nothing of HTTP: api/auth
// is the middleware that turns a bearer key into a caller with it.
//
// Its errors are of the fault vocabulary: a key that does not authenticate
// is fault.Unauthorized, a request it refuses is fault.Invalid naming the
// field (several joined with errors.Join), an unknown key id is
// fault.NotFound.
package apikey

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/cursor"
	"github.com/creditledger/creditledger/internal/pg"
)

const (
	defaultCacheTTL  = 30 * time.Second
	defaultCacheSize = 10000
)

// unknownKey is why a presented key does not authenticate: malformed, never
// issued, wrong secret, revoked or expired. Callers are not told which.
func unknownKey() error {
	return fault.New(fault.Unauthorized, "unknown, revoked or expired API key")
}

// Store keeps API keys in the api_keys table.
//
// Authenticate caches rows for CacheTTL so a request does not cost a query.
// A key revoked through this Store stops working at once in this process;
// revoked through another process (or ledgerctl), it may keep working here
// for up to CacheTTL.
type Store struct {
	DB        *pg.DB
	CacheTTL  time.Duration    // default 30s; negative disables the cache
	CacheSize int              // most keys cached, default 10,000
	Now       func() time.Time // default time.Now; tests move the clock

	mu    sync.Mutex
	cache map[string]cached // by key id
	gen   uint64            // bumped by every revoke; see Authenticate
}

type cached struct {
	rec     record
	fetched time.Time
}

// record is a row: the Key and the hash its secret must match.
type record struct {
	Key
	hash []byte
}

// NewStore returns a Store with default settings. Set the exported fields
// before first use, if at all.
func NewStore(db *pg.DB) *Store { return &Store{DB: db} }

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// Create issues a key and returns its plaintext, which is not stored and
// cannot be shown again. It refuses what NewKey.Check refuses. Whether the
// key's customer exists is the caller's to check first: customers belong
// to the wallet layer.
func (s *Store) Create(ctx context.Context, req NewKey) (string, Key, error) {
	if err := req.Check(); err != nil {
		return "", Key{}, err
	}
	plaintext, keyID, hash, err := newKey(req.Scope)
	if err != nil {
		return "", Key{}, err
	}
	// Microseconds: what the database keeps, so the Key returned here equals
	// the one List returns later.
	now := s.now().Truncate(time.Microsecond)
	k := Key{ID: uuid.NewString(), KeyID: keyID, Scope: req.Scope, CustomerID: req.CustomerID, Name: req.Name, CreatedAt: now}
	if req.TTL > 0 {
		exp := now.Add(req.TTL).Truncate(time.Microsecond)
		k.ExpiresAt = &exp
	}
	_, err = s.DB.Pool.Exec(ctx, `INSERT INTO api_keys (id, key_id, secret_hash, scope, customer_id, name, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		k.ID, k.KeyID, hash, string(k.Scope), nullable(k.CustomerID), nullable(k.Name), k.CreatedAt, k.ExpiresAt)
	if err != nil {
		return "", Key{}, fmt.Errorf("create API key: %w", err)
	}
	return plaintext, k, nil
}

// BootstrapAdmin stores key as an admin key if, and only if, the key table
// is empty, and reports whether it did. The key may have any format (see
// split). Processes starting at once are safe: the emptiness check and the
// insert are one serializable transaction, so one wins and the others see
// its row when they retry; the same key twice also collides on key_id.
func (s *Store) BootstrapAdmin(ctx context.Context, key string) (bool, error) {
	if key == "" || len(key) > maxPresented {
		return false, fault.Invalidf("key", "must be 1 to %d bytes", maxPresented)
	}
	keyID, secret := split(key)
	id, now := uuid.NewString(), s.now().Truncate(time.Microsecond)
	var created bool
	err := s.DB.RunTx(ctx, pg.TxOptions{}, func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO api_keys (id, key_id, secret_hash, scope, name, created_at)
			SELECT $1, $2, $3, 'admin', 'bootstrap (LEDGER_ADMIN_KEY)', $4
			WHERE NOT EXISTS (SELECT 1 FROM api_keys)
			ON CONFLICT (key_id) DO NOTHING`,
			id, keyID, hashSecret(secret), now)
		if err != nil {
			return err
		}
		created = tag.RowsAffected() == 1
		return nil
	})
	if pg.IsUnique(err, "") {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("bootstrap admin key: %w", err)
	}
	return created, nil
}

// Authenticate returns the key that presented (the whole key string) names,
// or a fault.Unauthorized error.
func (s *Store) Authenticate(ctx context.Context, presented string) (Key, error) {
	if presented == "" || len(presented) > maxPresented {
		return Key{}, unknownKey()
	}
	keyID, secret := split(presented)
	now := s.now()
	rec, ok := s.cached(keyID, now)
	if !ok {
		// A revoke that lands between this read and the cache fill bumps gen,
		// and the row read before it is then not cached.
		s.mu.Lock()
		gen := s.gen
		s.mu.Unlock()
		var err error
		rec, err = s.load(ctx, keyID)
		if errors.Is(err, pgx.ErrNoRows) {
			return Key{}, unknownKey()
		}
		if err != nil {
			return Key{}, fmt.Errorf("authenticate: %w", err)
		}
		s.remember(rec, gen, now)
	}
	if subtle.ConstantTimeCompare(hashSecret(secret), rec.hash) != 1 {
		return Key{}, unknownKey()
	}
	if rec.RevokedAt != nil || (rec.ExpiresAt != nil && !now.Before(*rec.ExpiresAt)) {
		return Key{}, unknownKey()
	}
	return rec.Key, nil
}

const keyColumns = `id, key_id, secret_hash, scope, customer_id, name, created_at, expires_at, revoked_at`

func scanKey(row pgx.Row) (record, error) {
	var (
		r              record
		scope          string
		customer, name *string
	)
	err := row.Scan(&r.ID, &r.KeyID, &r.hash, &scope, &customer, &name, &r.CreatedAt, &r.ExpiresAt, &r.RevokedAt)
	if err != nil {
		return record{}, err
	}
	r.Scope = Scope(scope)
	if customer != nil {
		r.CustomerID = *customer
	}
	if name != nil {
		r.Name = *name
	}
	r.CreatedAt = r.CreatedAt.UTC()
	r.ExpiresAt = utc(r.ExpiresAt)
	r.RevokedAt = utc(r.RevokedAt)
	return r, nil
}

func (s *Store) load(ctx context.Context, keyID string) (record, error) {
	return scanKey(s.DB.Pool.QueryRow(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE key_id = $1`, keyID))
}

func (s *Store) ttl() time.Duration {
	if s.CacheTTL == 0 {
		return defaultCacheTTL
	}
	return s.CacheTTL
}

func (s *Store) cached(keyID string, now time.Time) (record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.cache[keyID]
	if !ok || now.Sub(c.fetched) >= s.ttl() {
		return record{}, false
	}
	return c.rec, true
}

func (s *Store) remember(rec record, gen uint64, now time.Time) {
	if s.ttl() < 0 {
		return
	}
	size := s.CacheSize
	if size <= 0 {
		size = defaultCacheSize
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gen {
		return
	}
	if s.cache == nil {
		s.cache = make(map[string]cached)
	}
	if len(s.cache) >= size {
		for id, c := range s.cache {
			if now.Sub(c.fetched) >= s.ttl() {
				delete(s.cache, id)
			}
		}
		// Still full: drop arbitrary entries. They cost one query to reload.
		for id := range s.cache {
			if len(s.cache) < size {
				break
			}
			delete(s.cache, id)
		}
	}
	// The key id comes from a request; own the string, not the request's bytes.
	s.cache[strings.Clone(rec.KeyID)] = cached{rec: rec, fetched: now}
}

// Revoke stops key id (the UUID) from authenticating and returns it.
// Revoking a revoked key changes nothing and is not an error; an id that
// names no key is fault.NotFound.
func (s *Store) Revoke(ctx context.Context, id string) (Key, error) {
	if _, err := uuid.Parse(id); err != nil {
		return Key{}, fault.NotFoundf("API key %q", id)
	}
	// COALESCE keeps the first revocation time.
	rec, err := scanKey(s.DB.Pool.QueryRow(ctx, `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2)
		WHERE id = $1 RETURNING `+keyColumns, id, s.now().Truncate(time.Microsecond)))
	if errors.Is(err, pgx.ErrNoRows) {
		return Key{}, fault.NotFoundf("API key %q", id)
	}
	if err != nil {
		return Key{}, fmt.Errorf("revoke API key: %w", err)
	}
	s.mu.Lock()
	s.gen++
	delete(s.cache, rec.KeyID)
	s.mu.Unlock()
	return rec.Key, nil
}

// ListOptions select a page of keys.
type ListOptions struct {
	Limit  int    // 1 to 500, default 50
	Cursor string // from the previous page; "" for the first
	Scope  Scope  // only keys of this scope, if set
}

// List returns keys newest first, and the cursor of the next page ("" when
// this is the last).
func (s *Store) List(ctx context.Context, opts ListOptions) ([]Key, string, error) {
	limit := opts.Limit
	if limit == 0 {
		limit = 50
	}
	if limit < 1 || limit > 500 {
		return nil, "", fault.Invalidf("limit", "must be from 1 to 500")
	}
	if opts.Scope != "" && !opts.Scope.Valid() {
		return nil, "", fault.Invalidf("scope", "%s", scopeChoices)
	}
	q := `SELECT ` + keyColumns + ` FROM api_keys WHERE ($1 = '' OR scope = $1)`
	args := []any{string(opts.Scope), limit + 1}
	if opts.Cursor != "" {
		c, err := cursor.Parse(opts.Cursor)
		if err != nil {
			return nil, "", fault.Invalidf("cursor", "is not a cursor this list returned")
		}
		q += ` AND (created_at, id) < ($3, $4)`
		args = append(args, c.At, c.ID.String())
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT $2`
	rows, err := s.DB.Pool.Query(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list API keys: %w", err)
	}
	defer rows.Close()
	keys := []Key{}
	for rows.Next() {
		r, err := scanKey(rows)
		if err != nil {
			return nil, "", fmt.Errorf("list API keys: %w", err)
		}
		keys = append(keys, r.Key)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list API keys: %w", err)
	}
	keys, next := cursor.Page(keys, limit, func(k Key) cursor.Cursor {
		return cursor.Cursor{At: k.CreatedAt, ID: uuid.MustParse(k.ID)}
	})
	return keys, cursor.Next(next), nil
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
