package wallet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/cursor"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// CreateCustomer stores a customer; ErrExists if the id is taken. An empty
// id gets a generated one.
func (s *Service) CreateCustomer(ctx context.Context, c Customer) (Customer, error) {
	if c.ID == "" {
		c.ID = "cus_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	}
	if !customerIDPattern.MatchString(c.ID) {
		return Customer{}, fault.Invalidf("id", "1 to 128 characters: letters, digits and _ . : @ -, starting with a letter or digit")
	}
	if err := checkText("name", c.Name, 200); err != nil {
		return Customer{}, err
	}
	if err := checkText("email", c.Email, 254); err != nil {
		return Customer{}, err
	}
	if c.Email != "" && !strings.Contains(c.Email, "@") {
		return Customer{}, fault.Invalidf("email", "not an email address")
	}
	if err := validMetadata("metadata", c.Metadata); err != nil {
		return Customer{}, err
	}
	c.CreatedAt = s.now().Truncate(time.Microsecond)
	tag, err := s.db.Pool.Exec(ctx, `INSERT INTO customers (id, name, email, metadata, created_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (id) DO NOTHING`, c.ID, nullText(c.Name), nullText(c.Email), nullText(string(c.Metadata)), c.CreatedAt)
	if err != nil {
		return Customer{}, fmt.Errorf("create customer: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return Customer{}, fault.Existsf("a customer with id %q exists already", c.ID)
	}
	return s.Customer(ctx, c.ID)
}

// CustomerExists reports whether a customer exists.
func (s *Service) CustomerExists(ctx context.Context, id string) (bool, error) {
	return CustomerExists(ctx, s.db, id)
}

// CustomerExists reports whether a customer exists, for tools that have a
// database but no poster (ledgerctl).
func CustomerExists(ctx context.Context, db *pg.DB, id string) (bool, error) {
	if !customerIDPattern.MatchString(id) {
		return false, nil // and PostgreSQL is not asked about a NUL
	}
	var one int
	err := db.Pool.QueryRow(ctx, `SELECT 1 FROM customers WHERE id = $1`, id).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up customer: %w", err)
	}
	return true, nil
}

// CustomerPatch is what UpdateCustomer changes; a field left nil (absent
// from the request) stays as it is. An empty name or email removes it, as
// CreateCustomer stores none; metadata null removes the metadata.
type CustomerPatch struct {
	Name     *string         `json:"name"`
	Email    *string         `json:"email"`
	Metadata json.RawMessage `json:"metadata"` // nil: absent; "null": remove
}

// UpdateCustomer changes a customer's name, email or metadata, validated as
// CreateCustomer validates them, and answers the customer as it is after.
// Customers move no money and no operation reads these fields, so a plain
// UPDATE serves: the last write wins.
func (s *Service) UpdateCustomer(ctx context.Context, id string, p CustomerPatch) (Customer, error) {
	if !customerIDPattern.MatchString(id) {
		return Customer{}, fault.NotFoundf("no customer %q", id)
	}
	var (
		sets []string
		args = []any{id}
	)
	set := func(column string, v any) {
		args = append(args, v)
		sets = append(sets, fmt.Sprintf("%s = $%d", column, len(args)))
	}
	if p.Name != nil {
		if err := checkText("name", *p.Name, 200); err != nil {
			return Customer{}, err
		}
		set("name", nullText(*p.Name))
	}
	if p.Email != nil {
		if err := checkText("email", *p.Email, 254); err != nil {
			return Customer{}, err
		}
		if *p.Email != "" && !strings.Contains(*p.Email, "@") {
			return Customer{}, fault.Invalidf("email", "not an email address")
		}
		set("email", nullText(*p.Email))
	}
	if p.Metadata != nil {
		if string(p.Metadata) == "null" {
			set("metadata", nil)
		} else {
			if err := validMetadata("metadata", p.Metadata); err != nil {
				return Customer{}, err
			}
			set("metadata", string(p.Metadata))
		}
	}
	if len(sets) == 0 {
		return s.Customer(ctx, id)
	}
	tag, err := s.db.Pool.Exec(ctx, `UPDATE customers SET `+strings.Join(sets, ", ")+` WHERE id = $1`, args...)
	if err != nil {
		return Customer{}, fmt.Errorf("update customer: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return Customer{}, fault.NotFoundf("no customer %q", id)
	}
	return s.Customer(ctx, id)
}

// Customers lists customers newest first, a page of limit after the
// cursor from the previous page ("" for the first); the returned cursor is
// "" on the last page. A non-empty q keeps those whose id, name or email
// starts with it, ignoring case: a filter over the newest-first walk of
// customers_created_idx, which needs no index of its own on either engine
// (an index on lower(name) would serve only PostgreSQL's plans, and a
// search is an operator's, not a hot path).
func (s *Service) Customers(ctx context.Context, q, after string, limit int) ([]Customer, string, error) {
	if limit <= 0 || limit > 500 {
		limit = 50
	}
	if err := checkText("q", q, 254); err != nil {
		return nil, "", err
	}
	sql := `SELECT id, name, email, metadata, created_at FROM customers WHERE TRUE`
	var args []any
	if q != "" {
		args = append(args, likePrefix(q))
		sql += ` AND (id ILIKE $1 OR name ILIKE $1 OR email ILIKE $1)`
	}
	if after != "" {
		k, err := cursor.ParseKey(after)
		if err != nil {
			return nil, "", fault.Invalidf("cursor", "is not a cursor this list returned")
		}
		args = append(args, k.At, k.ID)
		sql += fmt.Sprintf(` AND (created_at, id) < ($%d, $%d)`, len(args)-1, len(args))
	}
	args = append(args, limit+1)
	sql += fmt.Sprintf(` ORDER BY created_at DESC, id DESC LIMIT $%d`, len(args))
	rows, err := s.db.Pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list customers: %w", err)
	}
	cs, err := collect(rows, scanCustomer)
	if err != nil {
		return nil, "", fmt.Errorf("list customers: %w", err)
	}
	if len(cs) <= limit {
		return cs, "", nil
	}
	cs = cs[:limit]
	last := cs[limit-1]
	return cs, cursor.Key{At: last.CreatedAt, ID: last.ID}.String(), nil
}

// likePrefix is the (I)LIKE pattern of the values starting with p: its
// wildcards and the escape character taken literally.
func likePrefix(p string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(p) + "%"
}

// Customer reads a customer.
func (s *Service) Customer(ctx context.Context, id string) (Customer, error) {
	if !customerIDPattern.MatchString(id) {
		// No customer has such an id, and PostgreSQL would refuse to look
		// for one holding a NUL or invalid UTF-8.
		return Customer{}, fault.NotFoundf("no customer %q", id)
	}
	c, err := scanCustomer(s.db.Pool.QueryRow(ctx, `SELECT id, name, email, metadata, created_at FROM customers WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Customer{}, fault.NotFoundf("no customer %q", id)
	}
	if err != nil {
		return Customer{}, fmt.Errorf("read customer: %w", err)
	}
	return c, nil
}

// scanCustomer reads id, name, email, metadata, created_at.
func scanCustomer(r pgx.Row) (Customer, error) {
	var (
		c           Customer
		name, email *string
	)
	if err := r.Scan(&c.ID, &name, &email, &c.Metadata, &c.CreatedAt); err != nil {
		return Customer{}, err
	}
	if name != nil {
		c.Name = *name
	}
	if email != nil {
		c.Email = *email
	}
	c.CreatedAt = c.CreatedAt.UTC()
	return c, nil
}

var (
	customerIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$`)
	assetPattern      = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,15}$`)
)

// Customer is the app's customer, under the app's own id.
type Customer struct {
	ID        string          `json:"id"`
	Name      string          `json:"name,omitempty"`
	Email     string          `json:"email,omitempty"`
	Metadata  json.RawMessage `json:"metadata,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
}
