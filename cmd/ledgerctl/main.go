// Command ledgerctl is the ledger's operator tool. `ledgerctl help` lists
// its commands; each takes -h/--help, which prints its usage and does
// nothing else. Unknown flags and extra arguments exit 2.
//
// It reads the configuration ledgerd reads (internal/config): the database
// is DATABASE_URL, else the one ledgerd last used (<LEDGER_DATA_DIR>/database.url,
// which `make run` leaves), else the local default; NATS is NATS_URL, else
// <LEDGER_DATA_DIR>/nats.url (ledgerd's embedded server), else
// nats://127.0.0.1:4222. So in the shell where `make run` was started,
// `bin/ledgerctl verify` needs no settings.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/creditledger/creditledger/internal/config"
	"github.com/creditledger/creditledger/internal/pg"
)

const defaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/ledger?sslmode=disable"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

const usage = `Usage: ledgerctl COMMAND [ARGS]

  verify                                check every ledger invariant; exit 1 on a violation
  keys create --scope SCOPE [--customer ID] [--name NAME] [--ttl DURATION]
                                        make an API key and print it once; --customer is
                                        required for portal, optional for ingest keys
  keys list                             list keys (never their secrets)
  keys revoke ID                        revoke a key by id
  customers list [--query Q] [--limit N]
                                        customers, newest first
  customers show ID                     a customer and its wallets with their balances
  wallets show ID                       a wallet and its balance, grant by grant
  events rejected [--customer ID] [--limit N]
                                        usage events refused for good, newest first
  webhooks resend DELIVERY-ID           send a webhook delivery again, due now
  invoices list [--customer ID] [--status issued|paid|void] [--limit N]
                                        invoices, newest first
  publish --customer ID --event NAME [--properties JSON] [--id ID] [--timestamp RFC3339]
                                        send one usage event over NATS (with Nats-Msg-Id)
  version                               the build's version and Go version

Every command takes -h or --help. Configuration as ledgerd's: DATABASE_URL
(else <LEDGER_DATA_DIR>/database.url, written by ledgerd, else
` + defaultDatabaseURL + `), NATS_URL (else <LEDGER_DATA_DIR>/nats.url, else
nats://127.0.0.1:4222), LEDGER_NATS_SUBJECT_PREFIX, LEDGER_DATA_DIR (./data).
`

// env is what the commands need from the configuration.
type env struct {
	cfg     config.Config
	stdout  io.Writer
	stderr  io.Writer
	connect func() (*pg.DB, error)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "-help", "help":
		if len(args) > 1 && args[0] == "help" {
			// `ledgerctl help keys`: the command's own usage.
			return run(ctx, []string{args[1], "--help"}, getenv, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return 0
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		fmt.Fprintf(stderr, "ledgerctl: %v\n", err)
		return 2
	}
	e := &env{cfg: cfg, stdout: stdout, stderr: stderr}
	e.connect = func() (*pg.DB, error) {
		url := databaseURL(cfg)
		db, err := pg.Open(ctx, url)
		if err != nil {
			return nil, fmt.Errorf("database %s: %w", redact(url), err)
		}
		return db, nil
	}
	code := 0
	switch args[0] {
	case "verify":
		code, err = verify(ctx, e, args[1:])
	case "keys":
		err = keys(ctx, e, args[1:])
	case "customers":
		err = customers(ctx, e, args[1:])
	case "wallets":
		err = wallets(ctx, e, args[1:])
	case "events":
		err = events(ctx, e, args[1:])
	case "webhooks":
		err = webhooks(ctx, e, args[1:])
	case "invoices":
		err = invoices(ctx, e, args[1:])
	case "publish":
		err = publish(ctx, e, args[1:])
	case "version":
		err = version(e, args[1:])
	default:
		err = &usageError{fmt.Sprintf("unknown command %q", args[0]), usage}
	}
	var help *helpRequest
	var uerr *usageError
	switch {
	case err == nil:
		return code
	case errors.As(err, &help):
		fmt.Fprint(stdout, help.usage)
		return 0
	case errors.As(err, &uerr):
		fmt.Fprintf(stderr, "ledgerctl: %v", err)
		return 2
	}
	fmt.Fprintf(stderr, "ledgerctl: %v\n", err)
	if code == 0 {
		code = 1
	}
	return code
}

// group dispatches a command with subcommands (keys create, ...): a missing
// or unknown subcommand is a usage error, --help prints the group's usage.
func group(args []string, groupUsage string, subs map[string]func([]string) error) error {
	if len(args) == 0 {
		return &usageError{"missing subcommand", groupUsage}
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		return &helpRequest{groupUsage}
	}
	f, ok := subs[args[0]]
	if !ok {
		return &usageError{fmt.Sprintf("unknown subcommand %q", args[0]), groupUsage}
	}
	return f(args[1:])
}
