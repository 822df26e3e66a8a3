# Everything here works on a fresh Debian/Ubuntu machine with no settings:
# scripts/ensure-go.sh finds Go (or says what to install) and
# scripts/ensure-postgres.sh finds, starts, installs or creates a PostgreSQL
# and the ledger database. Environment variables are honored but never needed.
#
#   make run         build and start ledgerd on http://localhost:8080
#   make test        go vet and all tests (race detector when gcc is there) against PostgreSQL
#   make bench       benchmarks (bench/loadgen, micro-benchmarks); writes BENCHMARKS.md
#   make paths       the files a debit and a usage event run through (measured)
#   make chaos       the full fault suite (kills, outages, attacks); about 5 minutes
#   make migrate     ledgerd migrate
#   make verify      ledgerctl verify
#   make fmt, vet    go fmt, go vet
#   make clean       remove bin/
#   make clean-data  stop the project-local PostgreSQL; remove data/ and .pg/

SHELL := /bin/bash
# One shell per recipe, stopping at the first failing command.
.ONESHELL:
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build
.DELETE_ON_ERROR:

# Where ledgerd keeps local state; exported so ledgerd sees the same value
# the admin key file below is kept in.
LEDGER_DATA_DIR ?= ./data
export LEDGER_DATA_DIR

# Extra arguments for ledgerd/ledgerctl in run, bench, migrate and verify.
ARGS ?=

# GO is the go command: looked up once, by the first recipe that uses it
# (after the ensure-go prerequisite has checked it), so clean never needs Go.
# `make GO=/path/to/go` overrides it.
GO = $(eval GO := $$(shell scripts/ensure-go.sh))$(GO)

# dev_env sets, for the rest of a recipe: DATABASE_URL (the user's, checked,
# or one made by ensure-postgres.sh) and LEDGER_ADMIN_KEY (the user's, or
# one generated once and kept in $(LEDGER_DATA_DIR)/admin.key, because
# ledgerd installs it only into an empty key table, so it must not change
# between runs).
define dev_env
DATABASE_URL=$$(scripts/ensure-postgres.sh)
export DATABASE_URL
admin_key_source="from LEDGER_ADMIN_KEY"
if [[ -z $${LEDGER_ADMIN_KEY:-} ]]; then
	keyfile="$(LEDGER_DATA_DIR)/admin.key"
	mkdir -p "$(LEDGER_DATA_DIR)"
	if [[ ! -s $$keyfile ]]; then
		# noclobber: two runs at once must not write two different keys.
		( set -o noclobber; umask 077; echo "ledger_dev_admin_$$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" >"$$keyfile" ) 2>/dev/null || true
	fi
	chmod 0600 "$$keyfile"
	LEDGER_ADMIN_KEY=$$(<"$$keyfile")
	admin_key_source="kept in $$keyfile"
fi
export LEDGER_ADMIN_KEY
endef

.PHONY: build run test bench paths chaos migrate verify fmt vet clean clean-data ensure-go ensure-postgres help

help:
	@sed -n '/^#   make/s/^#   //p' $(firstword $(MAKEFILE_LIST))

ensure-go:
	@scripts/ensure-go.sh >/dev/null

ensure-postgres:
	@scripts/ensure-postgres.sh

build: ensure-go
	mkdir -p bin
	$(GO) build -o bin/ledgerd ./cmd/ledgerd
	$(GO) build -o bin/ledgerctl ./cmd/ledgerctl

run: build
	@$(dev_env)
	addr=$${LEDGER_HTTP_ADDR:-:8080}
	host=$${addr%:*}
	port=$${addr##*:}
	if [[ -z $$host || $$host == 0.0.0.0 || $$host == "[::]" ]]; then host=localhost; fi
	echo "ledgerd: http://$$host:$$port  (API under /v1; GET /healthz needs no key)"
	echo "admin key: $$LEDGER_ADMIN_KEY  ($$admin_key_source)"
	echo "try: curl -H 'Authorization: Bearer $$LEDGER_ADMIN_KEY' -H 'Content-Type: application/json' -d '{\"name\":\"Acme\"}' http://$$host:$$port/v1/customers"
	echo "database: $$(sed -E 's|//([^:/@]*):[^@]*@|//\1:***@|' <<<"$$DATABASE_URL")"
	exec bin/ledgerd $(ARGS)

# Tests make their own databases on the server TEST_DATABASE_URL names (see
# internal/testdb); it must allow CREATE DATABASE.
test: ensure-go
	@if [[ -z $${TEST_DATABASE_URL:-} ]]; then
		TEST_DATABASE_URL=$$(scripts/ensure-postgres.sh --admin)
		export TEST_DATABASE_URL
	fi
	# promtool (Debian's prometheus package) checks the /metrics names in
	# api/metrics; installed when missing and apt can, else that test skips.
	if ! command -v promtool >/dev/null && command -v apt-get >/dev/null && [[ $$(id -u) == 0 ]]; then
		echo "make test: installing promtool (apt-get install prometheus)"
		apt-get install -y --no-install-recommends prometheus >/dev/null 2>&1 \
			|| { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends prometheus >/dev/null 2>&1; } \
			|| echo "make test: could not install promtool; the metrics lint test will skip"
	fi
	# The race detector needs cgo and a C compiler: without them (a fresh
	# Debian has no gcc) the tests run without it rather than not at all.
	race=-race
	if [[ $$($(GO) env CGO_ENABLED) != 1 ]] || ! command -v "$$($(GO) env CC)" >/dev/null; then
		race=
		echo "make test: no C compiler for cgo: running without the race detector (apt-get install gcc to enable it)"
	fi
	# The portal's browser test drives Debian's chromium (installed once).
	scripts/ensure-chromium.sh
	start=$$SECONDS
	log=$$(mktemp)
	trap 'rm -f "$$log"' EXIT
	vet=ok
	$(GO) vet ./... || vet=FAILED
	rc=0
	$(GO) test $$race -count=1 -timeout 15m ./... 2>&1 | tee "$$log" || rc=$$?
	ok=$$(grep -c '^ok ' "$$log" || true)
	failed=$$(grep -E '^FAIL[[:space:]]+[^[:space:]]' "$$log" | awk '{print $$2}' | sort -u | paste -sd ' ' || true)
	notests=$$(grep -c 'no test files' "$$log" || true)
	took=$$((SECONDS - start))s
	if [[ $$rc -eq 0 && $$vet == ok ]]; then
		echo "make test: PASS  ($$ok packages ok, $$notests without tests, vet ok, $$took)"
	else
		echo "make test: FAIL  (vet $$vet; $$ok packages ok; failed: $${failed:-see above}; $$took)"
		exit 1
	fi

# The end-to-end load test (bin/loadgen, built from bench/loadgen, runs
# NATS, starts ledgerd against a fresh ledger_bench database and drives the
# six scenarios of the benchmark issue) and the poster/ingest
# micro-benchmarks; writes BENCHMARKS.md.
# LOADGEN_ARGS adds loadgen flags (`make bench LOADGEN_ARGS=-quick`).
bench: ensure-go
	@if [[ -z $${TEST_DATABASE_URL:-} ]]; then
		TEST_DATABASE_URL=$$(scripts/ensure-postgres.sh --admin)
		export TEST_DATABASE_URL
	fi
	scripts/bench.sh $(GO)

# The files one debit and one usage event run through on the way to their
# commit, measured with coverage counters (bench/paths) rather than read.
paths: ensure-go
	@if [[ -z $${TEST_DATABASE_URL:-} ]]; then
		TEST_DATABASE_URL=$$(scripts/ensure-postgres.sh --admin)
		export TEST_DATABASE_URL
	fi
	mkdir -p bin
	$(GO) build -cover -covermode=atomic -coverpkg=./... -o bin/paths ./bench/paths
	covdir=$$(mktemp -d)
	trap 'rm -rf "$$covdir"' EXIT
	GOCOVERDIR="$$covdir" bin/paths

# The fault suite (internal/chaos) in full: ledgerd killed -9 ten times
# during a NATS ingest of 50,000 events, PostgreSQL (a cluster of its own,
# never the system one) and nats-server stopped and restarted, the hot-row
# and NUL/overflow attacks; exact checks after each. `make test` runs its
# short version. The table goes to CHAOS_REPORT (bin/chaos-report.md).
chaos: ensure-go
	@report=$$(realpath -m "$${CHAOS_REPORT:-bin/chaos-report.md}")
	mkdir -p "$$(dirname "$$report")"
	rm -f "$$report"
	start=$$SECONDS
	rc=0
	CHAOS_REPORT="$$report" $(GO) test -count=1 -timeout 40m -run Chaos ./internal/chaos -args -chaos.full || rc=$$?
	if [[ -s $$report ]]; then cat "$$report"; fi
	if [[ $$rc -eq 0 ]]; then
		echo "make chaos: PASS  ($$((SECONDS - start))s; table in $$report)"
	else
		echo "make chaos: FAIL  ($$((SECONDS - start))s; table in $$report)"
		exit 1
	fi

migrate: build
	@$(dev_env)
	bin/ledgerd migrate $(ARGS)

verify: build
	@$(dev_env)
	bin/ledgerctl verify $(ARGS)

fmt: ensure-go
	$(GO) fmt ./...

vet: ensure-go
	$(GO) vet ./...

clean:
	rm -rf bin/

# Stops the project-local PostgreSQL (if any) before deleting its files. A
# ledger database on a system PostgreSQL is left alone: drop it yourself.
clean-data:
	@scripts/ensure-postgres.sh --remove-local
	rm -rf ./data ./.pg
	if [[ $(LEDGER_DATA_DIR) != ./data && $(LEDGER_DATA_DIR) != data ]]; then
		echo "note: LEDGER_DATA_DIR=$(LEDGER_DATA_DIR) is outside the default and was not removed"
	fi
