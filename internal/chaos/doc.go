// Package chaos is the fault suite: it drives real processes — ledgerd and
// ledgerctl built from this module, a nats-server built from the module's
// nats-server dependency, and a project-local PostgreSQL cluster made with
// initdb — and breaks them while traffic flows: kill -9 of ledgerd, the
// database stopped and restarted, the broker killed and restarted (once on an
// empty store), and two input attacks (a hot counter row driven to overflow,
// NUL characters and overflowing amounts among innocent operations).
//
// After each fault it checks the contract: every wallet exact as decimals,
// one event row per distinct event id and none lost, `ledgerctl verify` exits
// 0, and no innocent operation failed. The helpers here are the processes
// (proc.go, build.go, ledgerd.go, natsd.go, postgres.go), the traffic
// (api.go, workload.go, publisher.go, ops.go, httpevents.go, attack.go),
// the checks (checks.go, watch.go) and the table (report.go); the scenarios
// are the package's tests (s1_ to s5_, on rig_test.go and verdict_test.go).
//
// `go test ./internal/chaos` runs the short version of every scenario (a few
// minutes); `make chaos` runs the full one (go test -args -chaos.full).
package chaos
