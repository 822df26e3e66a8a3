#!/usr/bin/env bash
# ensure-postgres.sh makes sure a PostgreSQL server is reachable and the
# ledger database exists, then prints the DATABASE_URL to use as the last
# line of stdout. Everything else goes to stderr, and nothing at all when
# there is nothing to do, so callers can write:
#
#     DATABASE_URL=$(scripts/ensure-postgres.sh)
#
# In order, it uses:
#   1. $DATABASE_URL, if set (it must be reachable; a set but dead URL is an
#      error, never silently replaced by another database);
#   2. the server on $LEDGER_PG_HOST:$LEDGER_PG_PORT (127.0.0.1:5432) if it
#      accepts user postgres over TCP without a password — starting a
#      stopped Debian cluster on that port, or installing PostgreSQL with
#      apt first if no server is installed at all;
#   3. otherwise (e.g. stock Debian's password auth on TCP) a project-local
#      cluster: initdb into ./.pg/data with trust auth on 127.0.0.1 only,
#      started with pg_ctl on port 5433 (or the next free one).
#
# Usage: ensure-postgres.sh [--admin | --stop-local | --remove-local]
#   --admin         print the server's admin URL (database "postgres"), for
#                   TEST_DATABASE_URL; creates no database
#   --stop-local    stop the project-local cluster, if running
#   --remove-local  stop it and delete its data
#
# Environment (all optional):
#   DATABASE_URL          use this database as is
#   LEDGER_DB_NAME        database to create (default ledger)
#   LEDGER_PG_HOST        system server's host (default 127.0.0.1)
#   LEDGER_PG_PORT        system server's port (default 5432)
#   LEDGER_PG_DIR         project-local cluster's directory (default <repo>/.pg)
#   LEDGER_PG_LOCAL_PORT  project-local cluster's port (default: 5433, or the
#                         next free port when it is first created)
set -euo pipefail
# Without this, bash runs $(...) with errexit off and a failing step inside
# one (say, initdb) would be ignored.
shopt -s inherit_errexit

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
db_name=${LEDGER_DB_NAME:-ledger}
pg_host=${LEDGER_PG_HOST:-127.0.0.1}
pg_port=${LEDGER_PG_PORT:-5432}
local_dir=${LEDGER_PG_DIR:-$repo/.pg}
# Never prompt for a password: a prompt would hang `make run`.
export PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-5}

say() { echo "ensure-postgres: $*" >&2; }
die() {
	say "$*"
	exit 1
}

# as_root runs a command as root: directly, or through sudo.
as_root() {
	if [[ $EUID -eq 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null; then
		sudo "$@"
	else
		die "need root to run '$*' (not root, and sudo is not installed); run this script as root, or install and start PostgreSQL yourself and set DATABASE_URL"
	fi
}

# as_owner runs a command as the user who owns the project-local cluster:
# PostgreSQL refuses to run as root, so root hands it to the postgres user.
as_owner() {
	if [[ $EUID -eq 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

url_for() { # host port database
	echo "postgres://postgres@$1:$2/$3?sslmode=disable"
}

# can_connect succeeds if the URL accepts a query without a password.
can_connect() {
	psql -w -X -q -At -d "$1" -c 'select 1' >/dev/null 2>&1
}

server_bin_dir() { # newest installed server's bin directory
	local d
	d=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
	if [[ -n $d && -x $d/postgres ]]; then
		echo "$d"
	elif command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
		dirname "$(command -v initdb)"
	fi
}

install_postgres() {
	command -v apt-get >/dev/null ||
		die "PostgreSQL is not installed and this is not a Debian/Ubuntu system; install PostgreSQL 15+ and set DATABASE_URL"
	say "PostgreSQL is not installed; installing it with apt-get (needs root)"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
	# The package's own attempt to start the server may be refused where
	# there is no init system (containers); start_debian_cluster copes.
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
}

wait_ready() { # host port seconds
	local i
	for ((i = 0; i < $3 * 4; i++)); do
		pg_isready -q -h "$1" -p "$2" && return 0
		sleep 0.25
	done
	return 1
}

# start_debian_cluster starts a stopped Debian cluster configured on the
# target port, if there is one.
start_debian_cluster() {
	command -v pg_lsclusters >/dev/null || return 0
	local ver name port status
	while read -r ver name port status _; do
		[[ $port == "$pg_port" && $status == down* ]] || continue
		say "starting the stopped PostgreSQL cluster $ver/$name on port $port"
		if [[ -d /run/systemd/system ]]; then
			as_root systemctl start "postgresql@$ver-$name" >&2
		else
			# No systemd (containers, WSL): start it directly.
			as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start >&2
		fi
		wait_ready "$pg_host" "$pg_port" 30 || say "cluster $ver/$name did not become ready"
	done < <(pg_lsclusters --no-header 2>/dev/null || true)
}

# cluster_dir is where the project-local cluster lives. Root runs the server
# as the postgres user, which cannot reach a checkout under a private home
# such as /root; the cluster then goes under postgres's own home instead,
# named after the checkout, and .pg/location says where.
cluster_dir() {
	if [[ $EUID -ne 0 ]]; then
		echo "$local_dir"
		return
	fi
	id postgres >/dev/null 2>&1 ||
		die "no 'postgres' system user to run the project-local cluster as (PostgreSQL refuses to run as root)"
	mkdir -p "$local_dir"
	chown postgres: "$local_dir"
	chmod 0700 "$local_dir"
	if runuser -u postgres -- test -w "$local_dir" -a -x "$local_dir"; then
		echo "$local_dir"
		return
	fi
	local home sum
	home=$(getent passwd postgres | cut -d: -f6)
	sum=$(printf %s "$local_dir" | cksum | cut -d' ' -f1)
	echo "$home/ledger-pg-$sum"
}

free_port_from() { # first port from $1 that nothing listens on
	local p
	for ((p = $1; p < $1 + 20; p++)); do
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	die "no free port in $1-$(($1 + 19)) for the project-local cluster; set LEDGER_PG_LOCAL_PORT"
}

local_port() { # the port in the cluster's config
	sed -n 's/^port *= *\([0-9]*\).*/\1/p' "$1/data/postgresql.conf" | tail -n 1
}

# ensure_local_cluster initdb's and starts the project-local cluster and
# prints its port. $1 says why it is needed, for the one-time message.
ensure_local_cluster() {
	local bin dir data port
	bin=$(server_bin_dir)
	[[ -n $bin ]] || die "no PostgreSQL server binaries found for a project-local cluster"
	dir=$(cluster_dir)
	data=$dir/data
	if [[ $dir != "$local_dir" ]]; then
		echo "$dir" >"$local_dir/location"
	fi
	as_owner mkdir -p "$dir"
	chmod 0700 "$dir" 2>/dev/null || true

	if [[ ! -f $data/PG_VERSION ]]; then
		# A directory without PG_VERSION is an initdb that died half way;
		# initdb refuses a non-empty directory, so start over.
		rm -rf "$data"
		port=${LEDGER_PG_LOCAL_PORT:-$(free_port_from 5433)}
		say "$1, so creating a project-local PostgreSQL cluster in $data (port $port)"
		as_owner "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 ||
			die "initdb failed; see $dir/initdb.log"
		local sock=$dir
		# A Unix socket path is limited to 107 bytes; TCP is all we use.
		((${#sock} < 90)) || sock=
		cat >>"$data/postgresql.conf" <<-EOF

			# Written by scripts/ensure-postgres.sh: a development cluster
			# for this checkout only, reachable from this machine only.
			listen_addresses = '127.0.0.1'
			port = $port
			unix_socket_directories = '$sock'
		EOF
	fi
	port=${LEDGER_PG_LOCAL_PORT:-$(local_port "$dir")}
	# Twice: a server that was just killed can still look alive to pg_ctl
	# (its pid lingers until reaped) while it no longer answers.
	for _ in 1 2; do
		if ! as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
			say "starting the project-local PostgreSQL cluster on port $port"
			as_owner "$bin/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 -o "-p $port" start >&2 ||
				die "could not start the project-local cluster; see $dir/server.log"
		fi
		if wait_ready 127.0.0.1 "$port" 15; then
			echo "$port"
			return
		fi
	done
	die "project-local cluster not ready on port $port; see $dir/server.log"
}

stop_local_cluster() {
	local dir=$local_dir bin
	if [[ -f $local_dir/location ]]; then
		dir=$(cat "$local_dir/location")
	fi
	bin=$(server_bin_dir)
	if [[ -n $bin && -f $dir/data/PG_VERSION ]] && as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
		say "stopping the project-local PostgreSQL cluster in $dir/data"
		as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2
	fi
	if [[ ${1:-} == remove ]]; then
		rm -rf "$dir"
		[[ $dir == "$local_dir" ]] || rm -rf "$local_dir"
	fi
}

# ensure_database creates the database if missing and prints its URL.
ensure_database() { # admin-url host port
	[[ $db_name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] ||
		die "LEDGER_DB_NAME=$db_name: use letters, digits and underscores"
	local exists
	# psql interpolates :'db' only in script input, not in -c.
	exists=$(psql -w -X -q -At -d "$1" -v ON_ERROR_STOP=1 -v db="$db_name" <<<"SELECT 1 FROM pg_database WHERE datname = :'db'")
	if [[ $exists != 1 ]]; then
		say "creating database $db_name"
		if ! psql -w -X -q -d "$1" -v ON_ERROR_STOP=1 -v db="$db_name" <<<'CREATE DATABASE :"db"' >&2; then
			# Another run may have created it in the meantime.
			exists=$(psql -w -X -q -At -d "$1" -v db="$db_name" <<<"SELECT 1 FROM pg_database WHERE datname = :'db'")
			[[ $exists == 1 ]] || die "could not create database $db_name"
		fi
	fi
	url_for "$2" "$3" "$db_name"
}

main() {
	local mode=${1:-}
	case $mode in
	"" | --admin) ;;
	--stop-local) stop_local_cluster; return ;;
	--remove-local) stop_local_cluster remove; return ;;
	-h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; return ;;
	*) die "unknown argument $mode (see --help)" ;;
	esac

	if [[ -n ${DATABASE_URL:-} && $mode != --admin ]]; then
		if ! command -v psql >/dev/null; then
			# Nothing to check it with; ledgerd will report a bad URL.
			echo "$DATABASE_URL"
			return
		fi
		can_connect "$DATABASE_URL" ||
			die "DATABASE_URL is set but the database does not answer; fix or unset it"
		echo "$DATABASE_URL"
		return
	fi

	local admin
	admin=$(url_for "$pg_host" "$pg_port" postgres)
	if ! command -v psql >/dev/null || ! can_connect "$admin"; then
		if ! command -v pg_isready >/dev/null || ! pg_isready -q -h "$pg_host" -p "$pg_port"; then
			if [[ -z $(server_bin_dir) ]] || ! command -v psql >/dev/null; then
				install_postgres
			fi
			start_debian_cluster
		fi
	fi
	local host=$pg_host port=$pg_port
	if ! can_connect "$admin"; then
		local why="no PostgreSQL answers on $pg_host:$pg_port"
		if pg_isready -q -h "$pg_host" -p "$pg_port"; then
			why="the server on $pg_host:$pg_port wants a password for user postgres"
		fi
		host=127.0.0.1
		port=$(ensure_local_cluster "$why")
		admin=$(url_for "$host" "$port" postgres)
		can_connect "$admin" || die "cannot connect to the project-local cluster at $admin"
	fi

	if [[ $mode == --admin ]]; then
		echo "$admin"
	else
		ensure_database "$admin" "$host" "$port"
	fi
}

main "$@"
