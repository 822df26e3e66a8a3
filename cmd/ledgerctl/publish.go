package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/creditledger/creditledger/client"
	"github.com/creditledger/creditledger/client/natspub"
)

const publishUsage = `Usage:
  ledgerctl publish --customer ID --event NAME [--properties JSON] [--id ID] [--timestamp RFC3339]

Sends one usage event over NATS on <LEDGER_NATS_SUBJECT_PREFIX>.<customer>
with Nats-Msg-Id set to its id, and waits for the stream's
acknowledgement. --id defaults to a new UUID (printed); publishing the same
id again is a no-op. The server is NATS_URL, else the one ledgerd wrote to
<LEDGER_DATA_DIR>/nats.url. The ledger applies the event asynchronously:
a refusal shows in ` + "`ledgerctl events rejected`" + `.
`

func publish(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("publish", flag.ContinueOnError)
	customer := fs.String("customer", "", "the customer the usage is for (required)")
	event := fs.String("event", "", "the event name meters match (required)")
	props := fs.String("properties", "", `the properties as a JSON object, e.g. '{"tokens":"1200","model":"gpt"}'`)
	id := fs.String("id", "", "the event id (default: a new UUID)")
	at := fs.String("timestamp", "", "when the usage happened, RFC 3339 (default: when the ledger receives it)")
	if _, err := parse(fs, publishUsage, args, 0); err != nil {
		return err
	}
	ev := client.Event{EventID: *id, CustomerID: *customer, EventName: *event}
	switch {
	case *customer == "":
		return &usageError{"--customer is required", publishUsage}
	case *event == "":
		return &usageError{"--event is required", publishUsage}
	}
	if *props != "" {
		var obj map[string]any
		if err := json.Unmarshal([]byte(*props), &obj); err != nil {
			return &usageError{"--properties is not a JSON object: " + err.Error(), publishUsage}
		}
		ev.Properties = json.RawMessage(*props)
	}
	if *at != "" {
		t, err := time.Parse(time.RFC3339Nano, *at)
		if err != nil {
			return &usageError{"--timestamp is not RFC 3339: " + err.Error(), publishUsage}
		}
		ev.Timestamp = &t
	}
	if ev.EventID == "" {
		ev.EventID = uuid.NewString()
	}
	url := natsURL(e.cfg)
	nc, err := nats.Connect(url, nats.Name("ledgerctl"), nats.Timeout(5*time.Second))
	if err != nil {
		return fmt.Errorf("nats %s: %w (is ledgerd running? set NATS_URL if it uses another server)", url, err)
	}
	defer nc.Close()
	p, err := natspub.New(nc, e.cfg.NATSSubjectPrefix)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.Publish(ctx, ev); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	fmt.Fprintf(e.stdout, "published %s on %s.%s\n", ev.EventID, e.cfg.NATSSubjectPrefix, ev.CustomerID)
	return nil
}

const versionUsage = `Usage: ledgerctl version

Prints the module version, VCS revision and Go version of this build.
`

func version(e *env, args []string) error {
	if _, err := parse(flag.NewFlagSet("version", flag.ContinueOnError), versionUsage, args, 0); err != nil {
		return err
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		fmt.Fprintln(e.stdout, "ledgerctl (no build information)")
		return nil
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	fmt.Fprintf(e.stdout, "ledgerctl %s\nmodule    %s\ngo        %s\n", v, bi.Main.Path, bi.GoVersion)
	if r := settings["vcs.revision"]; r != "" {
		dirty := ""
		if settings["vcs.modified"] == "true" {
			dirty = " (modified)"
		}
		fmt.Fprintf(e.stdout, "revision  %s%s\nbuilt at  %s\n", r, dirty, settings["vcs.time"])
	}
	return nil
}
