#!/usr/bin/env bash
# Runs the benchmarks and writes BENCHMARKS.md: the command, the machine,
# PostgreSQL's durability settings and the numbers. Usage: scripts/bench.sh GO
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
go=${1:-go}
benchtime=${BENCHTIME:-20000x}
cmd="$go test -run '^\$' -bench . -benchtime $benchtime ./ledger"
ingest="$go test -run '^\$' -bench Ingest -benchtime $benchtime ./metering"
out=$(mktemp)
ing=$(mktemp)
trap 'rm -f "$out" "$ing"' EXIT
echo "running: $cmd" >&2
eval "$cmd" | tee "$out" >&2
for iso in serializable repeatable_read; do
	echo "running: LEDGER_TEST_ISOLATION=${iso/_/ } $ingest" >&2
	(export LEDGER_TEST_ISOLATION="${iso/_/ }"; eval "$ingest") | sed "s/^BenchmarkIngest/BenchmarkIngest[$iso]/" | tee -a "$ing" >&2
done

pg() { psql "${TEST_DATABASE_URL:?}" -Atc "$1" 2>/dev/null || echo "?"; }
{
	echo "# Benchmarks"
	echo
	echo "Written by \`make bench\` (scripts/bench.sh) on $(date -u +%Y-%m-%dT%H:%MZ). Numbers, never timed unit tests."
	echo
	echo "## Machine"
	echo
	echo "- CPU: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
	echo "- Memory: $(free -h | awk '/^Mem:/ {print $2}')"
	echo "- PostgreSQL: $(pg 'SHOW server_version'), fsync=$(pg 'SHOW fsync'), synchronous_commit=$(pg 'SHOW synchronous_commit'), shared_buffers=$(pg 'SHOW shared_buffers')"
	echo "- Go: $($go version | cut -d' ' -f3-)"
	echo
	echo "## Poster (ledger/bench_test.go)"
	echo
	echo "\`$cmd\`"
	echo
	echo "Transfers through the batching poster (8 shards, batches ≤ 1,000, 2 ms linger), enqueued as fast as"
	echo "possible: *spread* over 1,000 wallets, *hot* all on one. ops/s is end to end, from the first enqueue to the"
	echo "last commit; commit-* is one batch's transaction including retried attempts."
	echo
	echo "| benchmark | ops/s | batches | batch p50 | batch max | commit p50 ms | commit p99 ms | retried attempts |"
	echo "|---|---|---|---|---|---|---|---|"
	awk '/^Benchmark/ {
		name=$1; sub(/^Benchmark/, "", name); sub(/-[0-9]+$/, "", name)
		for (i = 3; i < NF; i += 2) m[$(i+1)] = $i
		printf "| %s | %.0f | %s | %s | %s | %s | %s | %s |\n", name, m["ops/s"], m["batches"], m["batch-p50"], m["batch-max"], m["commit-p50-ms"], m["commit-p99-ms"], m["retries"]
	}' "$out"
	echo
	echo "## Usage events (metering/bench_test.go)"
	echo
	echo "\`LEDGER_TEST_ISOLATION=<level> $ingest\`"
	echo
	echo "Events through Ingest, the path POST /v1/events and the NATS consumer share: 1,000-event calls from four"
	echo "callers at once, sum meter, per-unit price, every event charged to a wallet; *spread* over 1,000"
	echo "customers, *hot* on one. Checked afterwards: each wallet consumed exactly its events' price."
	echo
	echo "| benchmark | events/s |"
	echo "|---|---|"
	awk '/^BenchmarkIngest/ { name=$1; sub(/^Benchmark/, "", name); sub(/-[0-9]+$/, "", name)
		for (i = 3; i < NF; i += 2) if ($(i+1) == "events/s") printf "| %s | %.0f |\n", name, $i }' "$ing"
	echo
	echo "Raw output:"
	echo
	echo '```'
	cat "$out" "$ing"
	echo '```'
} > BENCHMARKS.md
echo "wrote BENCHMARKS.md" >&2
