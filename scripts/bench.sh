#!/usr/bin/env bash
# Runs the benchmarks and writes BENCHMARKS.md. Usage: scripts/bench.sh [GO]
#
#   1. The end-to-end load test: bin/loadgen (bench/loadgen) runs NATS in its
#      own process, makes a fresh ledger_bench database on the PostgreSQL
#      server, execs bin/ledgerd against both and runs the six scenarios of
#      the benchmark issue, checking every balance and ledger.Verify after
#      each one.
#   2. The poster, ingest and debit micro-benchmarks (go test -bench).
#
# A hand-written "## Profile" section of the existing BENCHMARKS.md (up to
# the next "## " heading) is carried over into the new file.
#
# Environment (all optional):
#   TEST_DATABASE_URL    admin URL of the server (default: what
#                        scripts/ensure-postgres.sh --admin finds or starts)
#   LOADGEN_ARGS         extra loadgen flags, e.g. "-quick" or "-scenarios 1,6"
#   LEDGER_PG_ISOLATION, LEDGER_POSTER_SHARDS, LEDGER_POSTER_MAX_BATCH,
#   LEDGER_POSTER_LINGER, LEDGER_NATS_WORKERS, LEDGER_PPROF_ADDR,
#   LEDGER_ANALYZE_INTERVAL, LEDGER_BALANCE_CACHE_MAX_AGE, GOGC,
#   GOMEMLIMIT           passed through to ledgerd by loadgen
#   BENCHTIME            micro-benchmark -benchtime (default 20000x)
#   BENCH_MICRO=0        skip the micro-benchmarks
#   BENCH_SUBSCRIBED=0   skip the ingest scenarios run again with every customer
#                        on a plan (loadgen -subscribed -scenarios 1,2,3)
#   BENCH_NO_ANALYZE=0   skip HTTP ingest on a never-analyzed database
#                        (loadgen -no-analyze -scenarios 3)
#
# Exit status: loadgen's (non-zero when a correctness check failed or the run
# stopped early), else the micro-benchmarks'. BENCHMARKS.md is written anyway.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."
go=${1:-go}
started=$SECONDS
admin=${TEST_DATABASE_URL:-}
if [[ -z $admin ]]; then
	admin=$(scripts/ensure-postgres.sh --admin)
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "bench: building bin/ledgerd and bin/loadgen" >&2
mkdir -p bin
"$go" build -o bin/ledgerd ./cmd/ledgerd
"$go" build -o bin/loadgen ./bench/loadgen

pg() { psql -w -X -d "$admin" -Atc "$1" 2>/dev/null || echo "?"; }
fsync=$(pg 'SHOW fsync')
if [[ $fsync != on ]]; then
	echo "bench: WARNING: PostgreSQL reports fsync=$fsync; commits are not durable and the numbers are not comparable" >&2
fi

# The shown command has the password (if any) masked.
shown_admin=$(sed -E 's|//([^:/@]*):[^@]*@|//\1:***@|' <<<"$admin")
read -ra extra <<<"${LOADGEN_ARGS:-}"
echo "bench: running bin/loadgen -ledgerd bin/ledgerd -database-url '$shown_admin'${LOADGEN_ARGS:+ $LOADGEN_ARGS}" >&2
loadgen_started=$SECONDS
rc=0
bin/loadgen -ledgerd bin/ledgerd -database-url "$admin" "${extra[@]}" \
	-out "$tmp/loadgen.json" -markdown "$tmp/loadgen.md" || rc=$?
loadgen_took=$((SECONDS - loadgen_started))

# The same ingest scenarios with every customer on a subscription: prices
# resolved through subscriptions and plan versions, the default book a decoy.
subscribed=${BENCH_SUBSCRIBED:-1}
if [[ $subscribed != 0 ]]; then
	echo "bench: running bin/loadgen -subscribed -scenarios 1,2,3${LOADGEN_ARGS:+ $LOADGEN_ARGS}" >&2
	bin/loadgen -ledgerd bin/ledgerd -database-url "$admin" -db-name ledger_bench_sub "${extra[@]}" -subscribed -scenarios 1,2,3 \
		-out "$tmp/loadgen-sub.json" -markdown "$tmp/loadgen-sub.md" || rc=$?
	if [[ ! -s $tmp/loadgen-sub.md ]]; then
		echo "**loadgen -subscribed failed (exit $rc) before it wrote any results.**" >"$tmp/loadgen-sub.md"
	fi
fi
# HTTP ingest on a fresh database the harness never analyzes: with
# autovacuum off, the planner has only what ledgerd gathers itself.
no_analyze=${BENCH_NO_ANALYZE:-1}
if [[ $no_analyze != 0 ]]; then
	echo "bench: running bin/loadgen -no-analyze -scenarios 3${LOADGEN_ARGS:+ $LOADGEN_ARGS}" >&2
	bin/loadgen -ledgerd bin/ledgerd -database-url "$admin" -db-name ledger_bench_noanalyze "${extra[@]}" -no-analyze -scenarios 3 \
		-out "$tmp/loadgen-noanalyze.json" -markdown "$tmp/loadgen-noanalyze.md" || rc=$?
	if [[ ! -s $tmp/loadgen-noanalyze.md ]]; then
		echo "**loadgen -no-analyze failed (exit $rc) before it wrote any results.**" >"$tmp/loadgen-noanalyze.md"
	fi
fi
if [[ ! -s $tmp/loadgen.md ]]; then
	echo "**loadgen failed (exit $rc) before it wrote any results; see the output of \`make bench\`.**" >"$tmp/loadgen.md"
fi

benchtime=${BENCHTIME:-20000x}
poster_cmd="$go test -run '^\$' -bench . -benchtime $benchtime ./ledger"
ingest_cmd="$go test -run '^\$' -bench Ingest -benchtime $benchtime ./metering"
debit_cmd="LEDGER_TEST_ISOLATION='repeatable read' $go test -run '^\$' -bench Debit -benchtime 10000x ./wallet"
micro=${BENCH_MICRO:-1}
micro_rc=0
if [[ $micro != 0 ]]; then
	echo "bench: running $poster_cmd" >&2
	eval "$poster_cmd" | tee "$tmp/poster.txt" >&2 || micro_rc=$?
	for iso in serializable repeatable_read; do
		echo "bench: running LEDGER_TEST_ISOLATION=${iso/_/ } $ingest_cmd" >&2
		(export LEDGER_TEST_ISOLATION="${iso/_/ }"; eval "$ingest_cmd") |
			sed "s/^BenchmarkIngest/BenchmarkIngest[$iso]/" | tee -a "$tmp/ingest.txt" >&2 || micro_rc=$?
	done
	echo "bench: running $debit_cmd" >&2
	eval "$debit_cmd" | tee "$tmp/debit.txt" >&2 || micro_rc=$?
fi

# The hand-written profile, if the current file has one.
if [[ -f BENCHMARKS.md ]]; then
	awk '/^## Profile[[:space:]]*$/ { p = 1; print; next } p && /^## / { exit } p { print }' BENCHMARKS.md |
		sed -e :a -e '/^\n*$/{$d;N;ba' -e '}' >"$tmp/profile.md"
fi
if [[ ! -s $tmp/profile.md ]]; then
	cat >"$tmp/profile.md" <<-'EOF'
		## Profile

		<!-- Written by hand: scripts/bench.sh keeps this section, up to the next "## " heading, when it rewrites the file. -->

		See below.
	EOF
fi

took=$((SECONDS - started))
{
	echo "# Benchmarks"
	echo
	echo "Written by \`make bench\` (scripts/bench.sh) on $(date -u +%Y-%m-%dT%H:%MZ) in $((took / 60)) min $((took % 60)) s" \
		"(the load test $((loadgen_took / 60)) min $((loadgen_took % 60)) s). Numbers, never timed unit tests."
	echo
	echo "## Machine"
	echo
	echo "- CPU: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//; s/ *$//')"
	echo "- Memory: $(free -h | awk '/^Mem:/ {print $2}')"
	echo "- PostgreSQL: $(pg 'SHOW server_version'), fsync=$fsync, synchronous_commit=$(pg 'SHOW synchronous_commit'), shared_buffers=$(pg 'SHOW shared_buffers'), autovacuum=$(pg 'SHOW autovacuum')"
	echo "- Go: $("$go" version | cut -d' ' -f3-)"
	echo
	echo "## End to end (bench/loadgen)"
	echo
	echo "PostgreSQL, NATS and ledgerd on this machine, traffic on loopback, every scenario bounded in count and time:"
	echo
	cat "$tmp/loadgen.md"
	if [[ $subscribed != 0 ]]; then
		echo
		echo "## End to end, every customer on a subscription"
		echo
		echo "Scenarios 1–3 again on a fresh database where every customer is on plan \`bench\`: each batch resolves its"
		echo "events' prices through the customers' subscriptions, phases and plan versions (one query per batch). The"
		echo "default book's price is a decoy ten times the plan's, so the exact balance checks pass only if every event"
		echo "was priced by the plan. Compare the rates with the table above: the goal is no slowdown beyond noise."
		echo
		cat "$tmp/loadgen-sub.md"
	fi
	if [[ $no_analyze != 0 ]]; then
		echo
		echo "## HTTP ingest on a never-analyzed database"
		echo
		echo "Scenario 3 again on a fresh database with no \`VACUUM\` or \`ANALYZE\` from the harness: on a server with"
		echo "autovacuum off (as here) the planner knows only what ledgerd gathers itself (\`LEDGER_ANALYZE_INTERVAL\`, see"
		echo "\"Plans that never go stale\" in ARCHITECTURE.md). The goal is the same rate as with statistics."
		echo
		cat "$tmp/loadgen-noanalyze.md"
	fi
	echo
	cat "$tmp/profile.md"
	if [[ $micro != 0 ]]; then
		echo
		echo "## Poster (ledger/bench_test.go)"
		echo
		echo "\`$poster_cmd\`"
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
		}' "$tmp/poster.txt"
		echo
		echo "## Usage events (metering/bench_test.go)"
		echo
		echo "\`LEDGER_TEST_ISOLATION=<level> $ingest_cmd\`"
		echo
		echo "Events through Ingest, the path POST /v1/events and the NATS consumer share: 1,000-event calls from four"
		echo "callers at once, sum meter, per-unit price, every event charged to a wallet; *spread* over 1,000"
		echo "customers, *hot* on one. Checked afterwards: each wallet consumed exactly its events' price."
		echo
		echo "| benchmark | events/s |"
		echo "|---|---|"
		awk '/^BenchmarkIngest/ { name=$1; sub(/^Benchmark/, "", name); sub(/-[0-9]+$/, "", name)
			for (i = 3; i < NF; i += 2) if ($(i+1) == "events/s") printf "| %s | %.0f |\n", name, $i }' "$tmp/ingest.txt"
		echo
		echo "## Debits (wallet/bench_test.go)"
		echo
		echo "\`$debit_cmd\`"
		echo
		echo "Synchronous debits as in scenario 4 without HTTP: 64 callers over 1,000 wallets, each waiting for its debit"
		echo "to commit, poster shards at their default (twice the CPUs). Checked afterwards: each wallet consumed exactly"
		echo "its debits."
		echo
		echo "| benchmark | debits/s | p50 ms | p99 ms |"
		echo "|---|---|---|---|"
		awk '/^BenchmarkDebit/ { name=$1; sub(/^Benchmark/, "", name); sub(/-[0-9]+$/, "", name)
			for (i = 3; i < NF; i += 2) m[$(i+1)] = $i
			printf "| %s | %.0f | %s | %s |\n", name, m["debits/s"], m["p50-ms"], m["p99-ms"] }' "$tmp/debit.txt"
		echo
		echo "Raw output:"
		echo
		echo '```'
		cat "$tmp/poster.txt" "$tmp/ingest.txt" "$tmp/debit.txt"
		echo '```'
	fi
} >BENCHMARKS.md
echo "bench: wrote BENCHMARKS.md in $((took / 60)) min $((took % 60)) s (load test exit $rc)" >&2
if [[ $rc -ne 0 ]]; then
	exit "$rc"
fi
exit "$micro_rc"
