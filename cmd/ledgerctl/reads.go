package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/billing"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/metering"
	"github.com/creditledger/creditledger/wallet"
	"github.com/creditledger/creditledger/webhook"
)

// services are the read sides of the ledger's modules, on a poster of one
// shard that ledgerctl never feeds (the reads run no operations).
type services struct {
	db      *pg.DB
	l       *ledger.Ledger
	wallets *wallet.Service
	meters  *metering.Service
	bills   *billing.Service
}

func openServices(e *env) (*services, error) {
	db, err := e.connect()
	if err != nil {
		return nil, err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	l, err := ledger.New(db, ledger.Options{Shards: 1, Log: quiet,
		Modules: []ledger.Module{metering.Module(), billing.Module(), wallet.Module()}})
	if err != nil {
		db.Close()
		return nil, err
	}
	w := wallet.NewService(l)
	m := metering.NewService(l, w, quiet)
	return &services{db: db, l: l, wallets: w, meters: m, bills: billing.NewService(l, w, m, quiet)}, nil
}

func (s *services) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.l.Close(ctx)
	s.db.Close()
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

const customersUsage = `Usage:
  ledgerctl customers list [--query Q] [--limit N]   newest first; Q matches the start of id, name or email
  ledgerctl customers show ID                        the customer and its wallets with their balances
`

func customers(ctx context.Context, e *env, args []string) error {
	return group(args, customersUsage, map[string]func([]string) error{
		"list": func(args []string) error {
			fs := flag.NewFlagSet("customers list", flag.ContinueOnError)
			q := fs.String("query", "", "prefix of id, name or email")
			limit := fs.Int("limit", 100, "most customers listed (1-500)")
			if _, err := parse(fs, customersUsage, args, 0); err != nil {
				return err
			}
			if *limit < 1 || *limit > 500 {
				return &usageError{"--limit must be 1 to 500", customersUsage}
			}
			s, err := openServices(e)
			if err != nil {
				return err
			}
			defer s.close()
			list, next, err := s.wallets.Customers(ctx, *q, "", *limit)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tEMAIL\tCREATED")
			for _, c := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.ID, c.Name, c.Email, ts(c.CreatedAt))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if next != "" {
				fmt.Fprintf(e.stderr, "more customers: raise --limit or narrow --query\n")
			}
			return nil
		},
		"show": func(args []string) error {
			pos, err := parse(flag.NewFlagSet("customers show", flag.ContinueOnError), customersUsage, args, 1)
			if err != nil {
				return err
			}
			s, err := openServices(e)
			if err != nil {
				return err
			}
			defer s.close()
			c, err := s.wallets.Customer(ctx, pos[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "customer  %s\nname      %s\nemail     %s\ncreated   %s\n", c.ID, c.Name, c.Email, ts(c.CreatedAt))
			if len(c.Metadata) > 0 {
				fmt.Fprintf(e.stdout, "metadata  %s\n", c.Metadata)
			}
			ws, err := s.wallets.WalletsOf(ctx, c.ID)
			if err != nil {
				return err
			}
			fmt.Fprintln(e.stdout)
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "WALLET\tASSET\tPOLICY\tAVAILABLE\tHELD\tOVERAGE")
			for _, w := range ws {
				b, err := s.wallets.Balance(ctx, w.ID, nil)
				if err != nil {
					return err
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", w.ID, w.Asset, w.OveragePolicy, b.Available, b.Held, b.Overage)
			}
			return tw.Flush()
		},
	})
}

const walletsUsage = `Usage:
  ledgerctl wallets show ID   the wallet, its balance and its grants
`

func wallets(ctx context.Context, e *env, args []string) error {
	return group(args, walletsUsage, map[string]func([]string) error{
		"show": func(args []string) error {
			pos, err := parse(flag.NewFlagSet("wallets show", flag.ContinueOnError), walletsUsage, args, 1)
			if err != nil {
				return err
			}
			id, err := wallet.ParseWalletID(pos[0])
			if err != nil {
				return fmt.Errorf("wallets show: %q is not a wallet id", pos[0])
			}
			s, err := openServices(e)
			if err != nil {
				return err
			}
			defer s.close()
			w, err := s.wallets.Wallet(ctx, id)
			if err != nil {
				return err
			}
			b, err := s.wallets.Balance(ctx, id, nil)
			if err != nil {
				return err
			}
			limit := "none"
			if w.OverageLimit != nil {
				limit = w.OverageLimit.String()
			}
			fmt.Fprintf(e.stdout, "wallet     %s\ncustomer   %s\nasset      %s\npolicy     %s (overage limit %s)\ncreated    %s\n\n",
				w.ID, w.CustomerID, w.Asset, w.OveragePolicy, limit, ts(w.CreatedAt))
			fmt.Fprintf(e.stdout, "available  %s\nheld       %s\noverage    %s\ngranted    %s\nconsumed   %s\nexpired    %s\nvoided     %s\nas of      %s\n",
				b.Available, b.Held, b.Overage, b.Granted, b.Consumed, b.Expired, b.Voided, ts(b.AsOf))
			if len(b.Grants) > 0 {
				fmt.Fprintln(e.stdout)
				tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "GRANT\tREMAINING\tPRIORITY\tEXPIRES")
				for _, g := range b.Grants {
					exp := "never"
					if g.ExpiresAt != nil {
						exp = ts(*g.ExpiresAt)
					}
					fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", g.ID, g.Remaining, g.Priority, exp)
				}
				return tw.Flush()
			}
			return nil
		},
	})
}

const eventsUsage = `Usage:
  ledgerctl events rejected [--customer ID] [--limit N]   usage events refused for good, newest first
`

func events(ctx context.Context, e *env, args []string) error {
	return group(args, eventsUsage, map[string]func([]string) error{
		"rejected": func(args []string) error {
			fs := flag.NewFlagSet("events rejected", flag.ContinueOnError)
			customer := fs.String("customer", "", "only this customer's")
			limit := fs.Int("limit", 50, "most events listed (1-500)")
			if _, err := parse(fs, eventsUsage, args, 0); err != nil {
				return err
			}
			if *limit < 1 || *limit > 500 {
				return &usageError{"--limit must be 1 to 500", eventsUsage}
			}
			s, err := openServices(e)
			if err != nil {
				return err
			}
			defer s.close()
			list, _, err := s.meters.Rejections(ctx, *customer, "", *limit)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "RECEIVED\tSOURCE\tCUSTOMER\tEVENT\tCODE\tDETAIL")
			for _, r := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", ts(r.ReceivedAt), r.Source, r.CustomerID, r.EventID, r.Code, r.Detail)
			}
			return tw.Flush()
		},
	})
}

const webhooksUsage = `Usage:
  ledgerctl webhooks resend DELIVERY-ID   make a delivery pending and due now (same webhook-id)
`

func webhooks(ctx context.Context, e *env, args []string) error {
	return group(args, webhooksUsage, map[string]func([]string) error{
		"resend": func(args []string) error {
			pos, err := parse(flag.NewFlagSet("webhooks resend", flag.ContinueOnError), webhooksUsage, args, 1)
			if err != nil {
				return err
			}
			id, err := uuid.Parse(pos[0])
			if err != nil {
				return fmt.Errorf("webhooks resend: %q is not a delivery id", pos[0])
			}
			db, err := e.connect()
			if err != nil {
				return err
			}
			defer db.Close()
			d, err := webhook.New(db, webhook.Options{}).Resend(ctx, id)
			if err != nil {
				return fmt.Errorf("webhooks resend: %w", err)
			}
			fmt.Fprintf(e.stdout, "delivery %s (%s, event %s) is %s; a running ledgerd sends it within seconds\n", d.ID, d.EventType, d.EventID, d.Status)
			return nil
		},
	})
}

const invoicesUsage = `Usage:
  ledgerctl invoices list [--customer ID] [--status issued|paid|void] [--limit N]   newest first
`

func invoices(ctx context.Context, e *env, args []string) error {
	return group(args, invoicesUsage, map[string]func([]string) error{
		"list": func(args []string) error {
			fs := flag.NewFlagSet("invoices list", flag.ContinueOnError)
			customer := fs.String("customer", "", "only this customer's")
			status := fs.String("status", "", "issued, paid or void")
			limit := fs.Int("limit", 50, "most invoices listed (1-500)")
			if _, err := parse(fs, invoicesUsage, args, 0); err != nil {
				return err
			}
			if *limit < 1 || *limit > 500 {
				return &usageError{"--limit must be 1 to 500", invoicesUsage}
			}
			s, err := openServices(e)
			if err != nil {
				return err
			}
			defer s.close()
			list, _, err := s.bills.ListInvoices(ctx, billing.InvoiceFilter{CustomerID: *customer, Status: *status}, nil, *limit)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "INVOICE\tNUMBER\tCUSTOMER\tPERIOD\tCURRENCY\tTOTAL\tSTATUS")
			for _, inv := range list {
				number := "-"
				if inv.Number != nil {
					number = *inv.Number
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s..%s\t%s\t%s\t%s\n", inv.ID, number, inv.CustomerID,
					inv.PeriodStart.UTC().Format(time.DateOnly), inv.PeriodEnd.UTC().Format(time.DateOnly), inv.Currency, inv.Total, inv.Status)
			}
			return tw.Flush()
		},
	})
}
