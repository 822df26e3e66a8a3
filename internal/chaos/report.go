package chaos

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
)

// Row is one scenario's line in the table.
type Row struct {
	Scenario string
	Mode     string // short or full
	Runs     int    // times the scenario ran
	Faults   string // what was done to it: "10 kill -9 of ledgerd"
	Events   int    // innocent events sent (published and acked, or posted)
	Debits   int    // innocent HTTP operations
	Lost     int    // innocent events acked by the broker (or by a 202) and not in the events table
	Doubled  int    // event rows beyond one per distinct id, plus wallets charged more than expected
	Off      int    // wallets whose balance is not exact
	Innocent int    // innocent operations that failed (see the scenario)
	Verify   string // ledgerctl verify: "exit 0", "exit 1", "not run"
	Drains   []time.Duration
	Took     time.Duration
	Pass     bool
	Notes    []string
}

// Notef adds a note.
func (r *Row) Notef(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// Report collects the rows of one test binary's run.
type Report struct {
	mu    sync.Mutex
	Rows  []*Row
	Start time.Time
}

// Add appends a row.
func (r *Report) Add(row *Row) {
	r.mu.Lock()
	r.Rows = append(r.Rows, row)
	r.mu.Unlock()
}

// DrainSummary lists drain times; a negative one is "never".
func DrainSummary(ds []time.Duration) string {
	if len(ds) == 0 {
		return "–"
	}
	parts := make([]string, len(ds))
	for i, d := range ds {
		if d < 0 {
			parts[i] = "never"
		} else {
			parts[i] = fmt.Sprintf("%.1f s", d.Seconds())
		}
	}
	return strings.Join(parts, ", ")
}

// Markdown writes the table and the notes.
func (r *Report) Markdown(w io.Writer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sort.SliceStable(r.Rows, func(i, j int) bool { return r.Rows[i].Scenario < r.Rows[j].Scenario })
	fmt.Fprintf(w, "| scenario | mode | runs | faults | innocent events | innocent HTTP ops | lost | doubled | wallets off | innocent failures | verify | drain after each fault | took | result |\n")
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, row := range r.Rows {
		res := "**FAIL**"
		if row.Pass {
			res = "pass"
		}
		fmt.Fprintf(w, "| %s | %s | %d | %s | %d | %d | %d | %d | %d | %d | %s | %s | %.0f s | %s |\n",
			row.Scenario, row.Mode, row.Runs, row.Faults, row.Events, row.Debits, row.Lost, row.Doubled, row.Off,
			row.Innocent, row.Verify, DrainSummary(row.Drains), row.Took.Seconds(), res)
	}
	for _, row := range r.Rows {
		if len(row.Notes) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s:\n", row.Scenario)
		for _, n := range row.Notes {
			fmt.Fprintf(w, "- %s\n", n)
		}
	}
}
