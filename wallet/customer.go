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

// Customer reads a customer.
func (s *Service) Customer(ctx context.Context, id string) (Customer, error) {
	if !customerIDPattern.MatchString(id) {
		// No customer has such an id, and PostgreSQL would refuse to look
		// for one holding a NUL or invalid UTF-8.
		return Customer{}, fault.NotFoundf("no customer %q", id)
	}
	var (
		c           Customer
		name, email *string
	)
	err := s.db.Pool.QueryRow(ctx, `SELECT id, name, email, metadata, created_at FROM customers WHERE id = $1`, id).
		Scan(&c.ID, &name, &email, &c.Metadata, &c.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Customer{}, fault.NotFoundf("no customer %q", id)
	}
	if err != nil {
		return Customer{}, fmt.Errorf("read customer: %w", err)
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
