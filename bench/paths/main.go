// Command paths lists the source files one debit and one usage event run
// through, from the service call to its answer (the COMMIT included), as
// measured rather than read: it is built with coverage (make paths), warms
// every cache with a first debit and event, then clears the counters
// around a second one of each and asks `go tool covdata` which files ran.
//
// The steps are the files of the domain packages (ledger, wallet,
// metering, pricing) that ran, except the value types every path speaks
// (amounts, ids, postings, balances): those are listed apart as
// vocabulary, with the project's libraries (internal/…) the path calls,
// as the standard library and pgx are not listed at all. Files where only
// empty methods ran (a no-op observer) are not counted.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/coverage"
	"sort"
	"strings"

	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/internal/testdb"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/ledger/ledgertest"
	"github.com/creditledger/creditledger/metering"
	"github.com/creditledger/creditledger/pricing"
	"github.com/creditledger/creditledger/wallet"
)

const module = "github.com/creditledger/creditledger/"

func main() {
	dir := flag.String("dir", "", "where to write the coverage counters (default: a temporary directory)")
	flag.Parse()
	if *dir == "" {
		d, err := os.MkdirTemp("", "paths")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	if err := run(context.Background(), *dir); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, dir string) error {
	if err := coverage.ClearCounters(); err != nil {
		return fmt.Errorf("build with coverage (make paths): %w", err)
	}
	url, drop, err := testdb.Create(ctx, "paths")
	if err != nil {
		return err
	}
	defer drop(ctx)
	db, err := pg.Open(ctx, url)
	if err != nil {
		return err
	}
	defer db.Close()
	l, err := ledger.New(db, ledger.Options{Modules: []ledger.Module{metering.Module(), wallet.Module()}})
	if err != nil {
		return err
	}
	defer l.Close(ctx)
	wallets := wallet.NewService(l)
	meters := metering.NewService(l, wallets, nil)

	c, err := wallets.CreateCustomer(ctx, wallet.Customer{ID: "cus-paths"})
	if err != nil {
		return err
	}
	w, err := wallets.CreateWallet(ctx, wallet.NewWallet{CustomerID: c.ID, Asset: "CREDITS", OveragePolicy: wallet.PolicyBlock})
	if err != nil {
		return err
	}
	if _, err := wallets.AddGrant(ctx, "", w.ID, wallet.NewGrant{Amount: ledger.MustAmount("1000"), Kind: wallet.Paid}); err != nil {
		return err
	}
	if _, err := meters.CreateMeter(ctx, metering.Meter{Code: "tokens", EventName: "llm", Aggregation: metering.Sum, Property: "tokens"}); err != nil {
		return err
	}
	var p pricing.Price
	if err := json.Unmarshal([]byte(`{"model":"per_unit","unit_price":"0.001"}`), &p); err != nil {
		return err
	}
	if _, _, err := meters.CreatePrice(ctx, "", metering.NewPrice{MeterCode: "tokens", Asset: "CREDITS", Price: p}); err != nil {
		return err
	}
	// A second customer without credits: their usage goes to overage and
	// onto the invoice's open lines, the one branch that adds files.
	c2, err := wallets.CreateCustomer(ctx, wallet.Customer{ID: "cus-paths-overage"})
	if err != nil {
		return err
	}
	if _, err := wallets.CreateWallet(ctx, wallet.NewWallet{CustomerID: c2.ID, Asset: "CREDITS", OveragePolicy: wallet.PolicyBlock}); err != nil {
		return err
	}
	debit := func() error {
		_, err := wallets.Debit(ctx, "", w.ID, wallet.NewDebit{Amount: ledger.MustAmount("1")})
		return err
	}
	n := 0
	event := func(customer string) func() error {
		return func() error {
			n++
			raw, _ := json.Marshal(map[string]any{"event_id": fmt.Sprintf("ev-%d", n), "customer_id": customer,
				"event_name": "llm", "properties": map[string]any{"tokens": 100}})
			res, err := meters.IngestEach(ctx, []json.RawMessage{raw}, metering.IngestOptions{})
			if err != nil {
				return err
			}
			if res[0].Status != metering.EventAccepted {
				return fmt.Errorf("event: %+v", res[0])
			}
			return nil
		}
	}
	for _, p := range []struct {
		name string
		call func() error
	}{{"debit", debit}, {"usage event", event(c.ID)}, {"usage event beyond the credits", event(c2.ID)}} {
		if err := p.call(); err != nil { // warm: caches filled, accounts made
			return err
		}
		out := filepath.Join(dir, strings.ReplaceAll(p.name, " ", "-"))
		if err := os.MkdirAll(out, 0o755); err != nil {
			return err
		}
		if err := coverage.ClearCounters(); err != nil {
			return err
		}
		if err := p.call(); err != nil {
			return err
		}
		if err := coverage.WriteCountersDir(out); err != nil {
			return err
		}
		if err := coverage.WriteMetaDir(out); err != nil {
			return err
		}
		if err := report(p.name, out); err != nil {
			return err
		}
	}
	return ledgertest.Verify(ctx, url)
}

// report prints the files with statements that ran, steps first.
func report(name, dir string) error {
	txt := filepath.Join(dir, "profile.txt")
	if out, err := exec.Command("go", "tool", "covdata", "textfmt", "-i="+dir, "-o="+txt).CombinedOutput(); err != nil {
		return fmt.Errorf("covdata: %v: %s", err, out)
	}
	f, err := os.Open(txt)
	if err != nil {
		return err
	}
	defer f.Close()
	ran := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "mode:") {
			continue
		}
		// file:start.col,end.col statements count
		fields := strings.Fields(line)
		if len(fields) != 3 || fields[2] == "0" {
			continue
		}
		file := strings.TrimPrefix(line[:strings.LastIndex(line[:strings.Index(line, " ")], ":")], module)
		var stmts int
		fmt.Sscan(fields[1], &stmts)
		ran[file] += stmts
	}
	if err := sc.Err(); err != nil {
		return err
	}
	vocabulary := map[string]bool{"ledger/amount.go": true, "ledger/types.go": true, "ledger/account.go": true, "wallet/ids.go": true}
	var steps, vocab, libs []string
	for f, n := range ran {
		switch {
		case n == 0 || strings.HasPrefix(f, "bench/"):
		case vocabulary[f]:
			vocab = append(vocab, f)
		case strings.HasPrefix(f, "internal/"):
			libs = append(libs, f)
		default:
			steps = append(steps, f)
		}
	}
	sort.Strings(steps)
	sort.Strings(vocab)
	sort.Strings(libs)
	fmt.Printf("%s: %d files\n", name, len(steps))
	for i, f := range steps {
		fmt.Printf("  %2d. %-22s %4d statements ran\n", i+1, f, ran[f])
	}
	fmt.Printf("  vocabulary: %s\n  libraries:  %s\n\n", strings.Join(vocab, ", "), strings.Join(libs, ", "))
	return nil
}
