package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// report is a whole run: what the JSON holds and the markdown shows.
type report struct {
	Started      time.Time         `json:"started"`
	Command      string            `json:"command"`
	Quick        bool              `json:"quick,omitempty"`
	Events       int               `json:"events"`
	Customers    int               `json:"customers"`
	Subscribed   bool              `json:"subscribed,omitempty"`
	NoAnalyze    bool              `json:"no_analyze,omitempty"`
	PostgreSQL   pgSettings        `json:"postgresql"`
	Ledgerd      map[string]string `json:"ledgerd_settings"` // pass-through overrides; empty: defaults
	SetupSeconds float64           `json:"setup_seconds"`
	SetupNotes   []string          `json:"setup_notes,omitempty"`
	Rows         []result          `json:"rows"`
	// LedgerdExits lists every ledgerd that did not exit 0 on SIGINT.
	LedgerdExits []string `json:"ledgerd_exits,omitempty"`
	LogWarnings  int      `json:"ledgerd_log_warnings"`
	LogErrors    int      `json:"ledgerd_log_errors"`
	FirstLines   []string `json:"ledgerd_first_log_lines,omitempty"`
	Error        string   `json:"error,omitempty"` // why the run stopped early
	TookSeconds  float64  `json:"took_seconds"`
}

// The targets.
const (
	targetSpread    = 25000 // events/s, scenario 1
	targetHot       = 20000 // events/s, scenario 2
	targetHTTP      = 20000 // events/s, scenario 3
	targetDebits    = 3000  // debits/s, scenario 4 ...
	targetDebitP99  = 25.0  // ... with p99 ≤ 25 ms
	targetReadP99   = 5.0   // ms, scenario 5
	targetSpeedup   = 15.0  // scenario 1 ÷ scenario 6
	targetPeakRSSMB = 300.0 // MB (10^6 bytes), every scenario
)

// judge sets each row's target and whether it was met, and appends the
// speed-up and peak-RSS rows. A row cut short by its time bound has not met
// its target, whatever its rate.
func judge(rows []result) []result {
	byID := map[string]*result{}
	for i := range rows {
		r := &rows[i]
		byID[r.Scenario] = r
		switch r.Scenario {
		case "1":
			r.Target, r.Met = fmt.Sprintf("≥ %s events/s", thousands(targetSpread)), boolPtr(r.Complete && r.Rate >= targetSpread)
		case "2":
			r.Target, r.Met = fmt.Sprintf("≥ %s events/s", thousands(targetHot)), boolPtr(r.Complete && r.Rate >= targetHot)
		case "3":
			r.Target, r.Met = fmt.Sprintf("≥ %s events/s", thousands(targetHTTP)), boolPtr(r.Complete && r.Rate >= targetHTTP)
		case "4":
			r.Target = fmt.Sprintf("≥ %s debits/s, p99 ≤ %g ms", thousands(targetDebits), targetDebitP99)
			r.Met = boolPtr(r.Errors == 0 && r.Rate >= targetDebits && r.Latency != nil && r.Latency.P99Ms <= targetDebitP99)
		case "5":
			r.Target = fmt.Sprintf("p99 ≤ %g ms", targetReadP99)
			r.Met = boolPtr(r.Complete && r.Errors == 0 && r.Latency != nil && r.Latency.N > 0 && r.Latency.P99Ms <= targetReadP99)
		case "6":
			r.Target = "baseline"
		}
	}
	s1, s6 := byID["1"], byID["6"]
	if s1 != nil && s6 != nil && s6.Rate > 0 {
		x := s1.Rate / s6.Rate
		rows = append(rows, result{Scenario: "1/6", Name: "speed-up of batching: scenario 1 ÷ scenario 6", Unit: "×",
			Rate: x, Complete: true, Target: fmt.Sprintf("≥ %g×", targetSpeedup), Met: boolPtr(s1.Complete && x >= targetSpeedup)})
	}
	var peak int64
	for _, r := range rows {
		peak = max(peak, r.PeakRSS)
	}
	if peak > 0 {
		mb := float64(peak) / 1e6
		rows = append(rows, result{Scenario: "rss", Name: "peak RSS of ledgerd, max over the scenarios", PeakRSS: peak,
			Complete: true, Target: fmt.Sprintf("≤ %g MB", targetPeakRSSMB), Met: boolPtr(mb <= targetPeakRSSMB)})
	}
	return rows
}

// correct reports whether every check of the run passed.
func (rep *report) correct() bool {
	for _, r := range rep.Rows {
		if r.Checks != nil && !r.Checks.ok() {
			return false
		}
	}
	return rep.Error == "" && len(rep.LedgerdExits) == 0
}

func writeJSON(path string, rep *report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// writeMarkdown renders the report as a fragment of BENCHMARKS.md: the
// table, poster details, the checks and notes. Headings are ###, to sit
// under the caller's ##.
func writeMarkdown(w io.Writer, rep *report) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p("`%s`", rep.Command)
	p("")
	settings := "defaults"
	if len(rep.Ledgerd) > 0 {
		var kv []string
		for _, k := range sortedKeys(rep.Ledgerd) {
			kv = append(kv, k+"="+rep.Ledgerd[k])
		}
		settings = strings.Join(kv, " ")
	}
	pg := rep.PostgreSQL
	maintenance := "`VACUUM (ANALYZE)` runs before each scenario, untimed, as autovacuum would have by then"
	if rep.NoAnalyze {
		maintenance = "**-no-analyze**: the harness runs no `VACUUM` or `ANALYZE`; the tables have only the statistics ledgerd gathers itself (`LEDGER_ANALYZE_INTERVAL`)"
	}
	p("- PostgreSQL %s: fsync=%s, synchronous_commit=%s, shared_buffers=%s, max_connections=%s, autovacuum=%s; %s",
		pg.Version, pg.Fsync, pg.SynchronousCommit, pg.SharedBuffers, pg.MaxConnections, pg.Autovacuum, maintenance)
	p("- ledgerd settings: %s; NATS (JetStream, file store) runs in the load generator's process, outside ledgerd's RSS", settings)
	p("- fixture: %s customers each with a CREDITS wallet and a paid grant of %s, one sum meter `%s`, per-unit price %s a token; "+
		"an event carries 1 to 1,000 tokens; set up over HTTP in %.1f s (not timed in any row)",
		thousands(rep.Customers), grantAmount, meterCode, unitPriceStr, rep.SetupSeconds)
	if rep.Subscribed {
		p("- **-subscribed**: every customer is on plan `%s`, which prices the meter at the same per-unit price, so each "+
			"batch resolves prices through the customers' subscriptions, phases and plan versions (one query per batch)", planCode)
	}
	if rep.Quick {
		p("- **-quick**: smoke-test counts, not the issue's; the targets do not apply")
	}
	p("- events/s is end to end: from the first publish (or call) until ledgerd has acked (committed) the last event; " +
		"p50/p99 where a caller waits; batch and commit columns are the delta of ledgerd's `ledger_poster_batch_size` and " +
		"`ledger_poster_batch_commit_seconds` histograms over the scenario, estimated from buckets; peak RSS is VmHWM, reset at each scenario's start")
	p("")
	p("| scenario | rate | p50 ms | p99 ms | batch p50 / p99 | commit p50 / p99 ms | peak RSS MB | target | met? | checks |")
	p("|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rep.Rows {
		p("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |", rowName(r), rowRate(r), latCell(r, false), latCell(r, true),
			batchCell(r), commitCell(r), rssCell(r), r.Target, metCell(r), checkCell(r))
	}
	p("")
	p("### Poster per scenario")
	p("")
	p("| scenario | batches | mean batch | mean commit ms | retried attempts | failed batches |")
	p("|---|---|---|---|---|---|")
	for _, r := range rep.Rows {
		if r.Poster == nil || r.Scenario == "5-ingest" {
			continue
		}
		ps := r.Poster
		if ps.Batches == 0 {
			p("| %s | 0 | – | – | %s | %s |", r.Scenario, num(ps.Retries), num(ps.FailedBatches))
			continue
		}
		p("| %s | %s | %.1f | %.1f | %s | %s |", r.Scenario, thousands(ps.Batches), ps.BatchMean, ps.CommitMeanMs, num(ps.Retries), num(ps.FailedBatches))
	}
	p("")
	p("### Database work per event (or debit)")
	p("")
	p("From `pg_stat_user_tables` and `/proc` around each scenario: rows inserted and updated, index entries written " +
		"(an insert or a non-HOT update writes one in each index of its table), and the CPU time of every PostgreSQL process " +
		"on this machine (the server's backends, its WAL writer and checkpointer), divided by the events applied (debits answered).")
	p("")
	p("| scenario | rows inserted | rows updated | index entries | PostgreSQL CPU µs |")
	p("|---|---|---|---|---|")
	for _, r := range rep.Rows {
		if r.Work == nil || r.Scenario == "5-ingest" {
			continue
		}
		cpu := "–"
		if r.Work.CPUMicros > 0 {
			cpu = fmt.Sprintf("%.0f", r.Work.CPUMicros)
		}
		p("| %s | %.2f | %.2f | %.2f | %s |", r.Scenario, r.Work.RowsPerOp, r.Work.UpdatesPerOp, r.Work.IndexPerOp, cpu)
	}
	p("")
	p("### Correctness")
	p("")
	p("After every scenario: each wallet's consumed + overage (GET /v1/wallets/{id}/balance) equals the exact sum of what it was " +
		"charged (its events' tokens × price, its debits), compared as decimals; then `ledger.Verify` over the whole database.")
	p("")
	for _, r := range rep.Rows {
		c := r.Checks
		if c == nil {
			continue
		}
		var s string
		switch {
		case c.Skipped != "":
			s = "balances NOT checked: " + c.Skipped
		case c.Mismatches == 0:
			s = fmt.Sprintf("%s balances exact", thousands(c.Wallets))
		default:
			s = fmt.Sprintf("**%d of %s balances wrong**, e.g. %s", c.Mismatches, thousands(c.Wallets), strings.Join(c.Examples, "; "))
		}
		if c.Uncertain > 0 {
			s += fmt.Sprintf(" (%d wallets not compared: a request's outcome was unknown)", c.Uncertain)
		}
		verify := "ledger.Verify " + c.Verify
		if !c.VerifyOK {
			verify = "**ledger.Verify: " + c.Verify + "**"
		}
		p("- %s: %s; %s (%.1f s)", r.Scenario, s, verify, c.Seconds)
	}
	exits := "every ledgerd exited 0 on SIGINT"
	if len(rep.LedgerdExits) > 0 {
		exits = "**ledgerd exit problems**: " + strings.Join(rep.LedgerdExits, "; ")
	}
	p("- %s; ledgerd logged %d warnings and %d errors", exits, rep.LogWarnings, rep.LogErrors)
	for _, e := range rep.FirstLines {
		p("  - `%s`", strings.ReplaceAll(e, "`", "'"))
	}
	if rep.Error != "" {
		p("- **the run stopped early**: %s", rep.Error)
	}
	notes := slices.Clone(rep.SetupNotes)
	for _, r := range rep.Rows {
		for _, n := range r.Notes {
			notes = append(notes, fmt.Sprintf("%s: %s", r.Scenario, n))
		}
	}
	if len(notes) > 0 {
		p("")
		p("### Notes")
		p("")
		for _, n := range notes {
			p("- %s", n)
		}
	}
}

func rowName(r result) string {
	switch r.Scenario {
	case "1/6", "rss":
		return r.Name
	case "5-ingest", "5-alone":
		return "↳ " + r.Name
	}
	return r.Scenario + ". " + r.Name
}

func rowRate(r result) string {
	switch {
	case r.Scenario == "1/6":
		return fmt.Sprintf("%.1f×", r.Rate)
	case r.Unit == "":
		return ""
	}
	s := thousands(int(math.Round(r.Rate))) + " " + r.Unit
	if !r.Complete {
		s += " (cut short)"
	}
	return s
}

func latCell(r result, p99 bool) string {
	if r.Latency == nil || r.Latency.N == 0 {
		return "–"
	}
	if p99 {
		return fmtMs(r.Latency.P99Ms)
	}
	return fmtMs(r.Latency.P50Ms)
}

func batchCell(r result) string {
	if r.Poster == nil || r.Poster.Batches == 0 {
		return "–"
	}
	ps := r.Poster
	return fmt.Sprintf("%s / %s", above(ps, "batch_p50", num(ps.BatchP50)), above(ps, "batch_p99", num(ps.BatchP99)))
}

func commitCell(r result) string {
	if r.Poster == nil || r.Poster.Batches == 0 {
		return "–"
	}
	ps := r.Poster
	return fmt.Sprintf("%s / %s", above(ps, "commit_p50_ms", fmtMs(ps.CommitP50Ms)), above(ps, "commit_p99_ms", fmtMs(ps.CommitP99Ms)))
}

// above marks an estimate that fell beyond the histogram's last bucket.
func above(ps *posterStats, name, v string) string {
	if slices.Contains(ps.Above, name) {
		return "> " + v
	}
	return v
}

func rssCell(r result) string {
	if r.PeakRSS <= 0 {
		return "–"
	}
	return strconv.FormatFloat(float64(r.PeakRSS)/1e6, 'f', 0, 64)
}

func metCell(r result) string {
	switch {
	case r.Met == nil:
		return ""
	case *r.Met:
		return "met"
	}
	return "**missed**"
}

func checkCell(r result) string {
	switch {
	case r.Checks == nil:
		return ""
	case r.Checks.ok():
		return "ok"
	}
	return "**FAILED**"
}

// fmtMs prints a latency with about three significant digits.
func fmtMs(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// num prints a count or an estimate without a pointless fraction.
func num(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	if v == math.Trunc(v) {
		return thousands(int(v))
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

// thousands writes n with comma separators: 200000 → 200,000.
func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
