package main

import (
	"context"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/creditledger/creditledger/apikey"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/metering"
	"github.com/creditledger/creditledger/wallet"
)

const verifyUsage = `Usage: ledgerctl verify

Checks every ledger invariant (balanced entries, counters equal to the sum
of postings, ...) and prints a report; exit 1 on a violation.
`

func verify(ctx context.Context, e *env, args []string) (int, error) {
	if _, err := parse(flag.NewFlagSet("verify", flag.ContinueOnError), verifyUsage, args, 0); err != nil {
		return 2, err
	}
	db, err := e.connect()
	if err != nil {
		return 1, err
	}
	defer db.Close()
	r, err := ledger.Verify(ctx, db, metering.Checks()...)
	if err != nil {
		return 1, err
	}
	r.Write(e.stdout)
	if !r.OK() {
		return 1, nil
	}
	return 0, nil
}

const keysUsage = `Usage:
  ledgerctl keys create --scope admin|ingest|read|portal [--customer ID] [--name NAME] [--ttl DURATION]
  ledgerctl keys list
  ledgerctl keys revoke ID

create prints the new key once. --customer binds a key to one customer:
required for portal keys, optional for ingest keys (which may then send
only that customer's events), refused for the others.
`

func keys(ctx context.Context, e *env, args []string) error {
	return group(args, keysUsage, map[string]func([]string) error{
		"create": func(args []string) error {
			fs := flag.NewFlagSet("keys create", flag.ContinueOnError)
			scope := fs.String("scope", "", "admin, ingest, read or portal")
			customer := fs.String("customer", "", "the customer a portal key sees, or an ingest key may send events for")
			name := fs.String("name", "", "a label for humans")
			ttl := fs.Duration("ttl", 0, "lifetime (0: no expiry)")
			if _, err := parse(fs, keysUsage, args, 0); err != nil {
				return err
			}
			db, err := e.connect()
			if err != nil {
				return err
			}
			defer db.Close()
			if apikey.Scope(*scope).MayHaveCustomer() && *customer != "" {
				ok, err := wallet.CustomerExists(ctx, db, *customer)
				if err != nil {
					return err
				}
				if !ok {
					return fmt.Errorf("keys create: no customer %q", *customer)
				}
			}
			plain, k, err := apikey.NewStore(db).Create(ctx, apikey.NewKey{Scope: apikey.Scope(*scope), CustomerID: *customer, Name: *name, TTL: *ttl})
			if err != nil {
				return fmt.Errorf("keys create: %w", err)
			}
			fmt.Fprintf(e.stdout, "%s\n", plain)
			fmt.Fprintf(e.stderr, "created %s key %s; the key above is shown only once\n", k.Scope, k.ID)
			return nil
		},
		"list": func(args []string) error {
			if _, err := parse(flag.NewFlagSet("keys list", flag.ContinueOnError), keysUsage, args, 0); err != nil {
				return err
			}
			db, err := e.connect()
			if err != nil {
				return err
			}
			defer db.Close()
			list, _, err := apikey.NewStore(db).List(ctx, apikey.ListOptions{Limit: 500})
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSCOPE\tCUSTOMER\tNAME\tCREATED\tREVOKED")
			for _, k := range list {
				revoked := ""
				if k.RevokedAt != nil {
					revoked = k.RevokedAt.Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Scope, k.CustomerID, k.Name, k.CreatedAt.Format(time.RFC3339), revoked)
			}
			return tw.Flush()
		},
		"revoke": func(args []string) error {
			pos, err := parse(flag.NewFlagSet("keys revoke", flag.ContinueOnError), keysUsage, args, 1)
			if err != nil {
				return err
			}
			db, err := e.connect()
			if err != nil {
				return err
			}
			defer db.Close()
			if _, err := apikey.NewStore(db).Revoke(ctx, pos[0]); err != nil {
				return fmt.Errorf("keys revoke: %w", err)
			}
			fmt.Fprintf(e.stdout, "revoked %s\n", pos[0])
			return nil
		},
	})
}
