// Command ledgerctl is the ledger's admin tool.
//
//	ledgerctl verify
//	ledgerctl keys create --scope admin|ingest|read|portal [--customer ID] [--name NAME]
//	ledgerctl keys list
//	ledgerctl keys revoke ID
//
// --customer binds a key to one customer: required for portal keys,
// optional for ingest keys (which may then send only that customer's
// events), refused for the others.
//
// It reads DATABASE_URL.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/creditledger/creditledger/apikey"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/wallet"
)

const defaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/ledger?sslmode=disable"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

const usage = `Usage:
  ledgerctl verify                      check every ledger invariant; exit 1 on a violation
  ledgerctl keys create --scope SCOPE [--customer ID] [--name NAME] [--ttl DURATION]
                                        make an API key and print it once; --customer is
                                        required for portal, optional for ingest keys
  ledgerctl keys list                   list keys (never their secrets)
  ledgerctl keys revoke ID              revoke a key by id

Environment: DATABASE_URL (default ` + defaultDatabaseURL + `)
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	url := getenv("DATABASE_URL")
	if url == "" {
		url = defaultDatabaseURL
	}
	connect := func() (*pg.DB, error) {
		db, err := pg.Open(ctx, url)
		if err != nil {
			return nil, fmt.Errorf("database: %w", err)
		}
		return db, nil
	}
	var err error
	code := 0
	switch args[0] {
	case "verify":
		code, err = verify(ctx, connect, stdout)
	case "keys":
		err = keys(ctx, connect, args[1:], stdout, stderr)
	default:
		err = fmt.Errorf("unknown command %q\n\n%s", args[0], usage)
		code = 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "ledgerctl: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

func verify(ctx context.Context, connect func() (*pg.DB, error), stdout io.Writer) (int, error) {
	db, err := connect()
	if err != nil {
		return 1, err
	}
	defer db.Close()
	r, err := ledger.Verify(ctx, db)
	if err != nil {
		return 1, err
	}
	r.Write(stdout)
	if !r.OK() {
		return 1, nil
	}
	return 0, nil
}

func keys(ctx context.Context, connect func() (*pg.DB, error), args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("keys needs create, list or revoke\n\n%s", usage)
	}
	db, err := connect()
	if err != nil {
		return err
	}
	defer db.Close()
	store := apikey.NewStore(db)
	switch args[0] {
	case "create":
		fs := flag.NewFlagSet("keys create", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		scope := fs.String("scope", "", "admin, ingest, read or portal")
		customer := fs.String("customer", "", "the customer a portal key sees, or an ingest key may send events for")
		name := fs.String("name", "", "a label for humans")
		ttl := fs.Duration("ttl", 0, "lifetime (0: no expiry)")
		if err := fs.Parse(args[1:]); err != nil {
			return fmt.Errorf("keys create: %w", err)
		}
		if apikey.Scope(*scope).MayHaveCustomer() && *customer != "" {
			ok, err := wallet.CustomerExists(ctx, db, *customer)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("keys create: no customer %q", *customer)
			}
		}
		plain, k, err := store.Create(ctx, apikey.NewKey{Scope: apikey.Scope(*scope), CustomerID: *customer, Name: *name, TTL: *ttl})
		if err != nil {
			return fmt.Errorf("keys create: %w", err)
		}
		fmt.Fprintf(stdout, "%s\n", plain)
		fmt.Fprintf(stderr, "created %s key %s; the key above is shown only once\n", k.Scope, k.ID)
		return nil
	case "list":
		list, _, err := store.List(ctx, apikey.ListOptions{Limit: 500})
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSCOPE\tCUSTOMER\tNAME\tCREATED\tREVOKED")
		for _, k := range list {
			revoked := ""
			if k.RevokedAt != nil {
				revoked = k.RevokedAt.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Scope, k.CustomerID, k.Name, k.CreatedAt.Format(time.RFC3339), revoked)
		}
		return tw.Flush()
	case "revoke":
		if len(args) != 2 {
			return fmt.Errorf("keys revoke needs one key id")
		}
		if _, err := store.Revoke(ctx, args[1]); err != nil {
			return fmt.Errorf("keys revoke: %w", err)
		}
		fmt.Fprintf(stdout, "revoked %s\n", args[1])
		return nil
	}
	return fmt.Errorf("unknown keys command %q", args[0])
}
