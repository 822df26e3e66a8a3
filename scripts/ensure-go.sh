#!/usr/bin/env bash
# ensure-go.sh finds a Go toolchain new enough for go.mod and prints its path
# as the last line of stdout (quietly, when all is well). It looks on PATH and
# at /usr/local/go/bin/go, the official tarball's location, which is often
# not on PATH (e.g. under sudo or in a non-login shell).
#
# It installs nothing: Debian 12's golang-go is Go 1.19, far older than this
# module needs, and the official toolchain comes from outside the Debian
# archive, so that step is left to you, with instructions.
#
# A Go from 1.21 on that is older than go.mod asks for is accepted: the go
# command itself downloads the required toolchain on first use (GOTOOLCHAIN,
# https://go.dev/doc/toolchain), unless GOTOOLCHAIN=local.
set -euo pipefail
shopt -s inherit_errexit

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
want=$(sed -n 's/^go \([0-9][0-9.]*\).*/\1/p' "$repo/go.mod" | head -n 1)
[[ -n $want ]] || {
	echo "ensure-go: no 'go' line in $repo/go.mod" >&2
	exit 1
}

# version_ge succeeds if version $1 >= version $2 (both like 1.26.0).
version_ge() {
	[[ $(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1) == "$2" ]]
}

# go_version prints the bare version of a go binary, e.g. 1.26.8. It runs
# outside the module with GOTOOLCHAIN=local so that asking an old go its
# version does not make it download a new one.
go_version() {
	local v
	v=$(cd / && GOTOOLCHAIN=local "$1" version 2>/dev/null | awk '{print $3}') || return 1
	v=${v#go}
	[[ $v =~ ^[0-9]+\.[0-9]+ ]] || return 1
	echo "$v"
}

found=()
candidates=()
if p=$(command -v go); then
	candidates+=("$p")
fi
if [[ ${candidates[0]:-} != /usr/local/go/bin/go ]]; then
	candidates+=(/usr/local/go/bin/go)
fi

for go in "${candidates[@]}"; do
	[[ -x $go ]] || continue
	v=$(go_version "$go") || continue
	found+=("$go (go$v)")
	if version_ge "$v" "$want"; then
		echo "$go"
		exit 0
	fi
done

# Too old, but able to fetch the right toolchain itself?
for go in "${candidates[@]}"; do
	[[ -x $go ]] || continue
	v=$(go_version "$go") || continue
	if version_ge "$v" 1.21 && [[ $(cd / && "$go" env GOTOOLCHAIN) != local* ]]; then
		echo "ensure-go: $go is go$v; go.mod needs go$want, which the go command will download on first use (GOTOOLCHAIN)" >&2
		echo "$go"
		exit 0
	fi
done

arch=$(uname -m)
case $arch in
x86_64) arch=amd64 ;;
aarch64) arch=arm64 ;;
esac
{
	echo "ensure-go: Go $want or newer is needed to build this project."
	if ((${#found[@]})); then
		echo "ensure-go: found only: ${found[*]}"
	else
		echo "ensure-go: no go command found (looked on PATH and at /usr/local/go/bin/go)."
	fi
	echo "ensure-go: (apt's golang-go will not do: Debian 12 ships Go 1.19.)"
	echo "ensure-go: install the official toolchain from https://go.dev/dl/, for example:"
	echo "    curl -fLO https://go.dev/dl/go$want.linux-$arch.tar.gz"
	echo "    sudo rm -rf /usr/local/go && sudo tar -C /usr/local -xzf go$want.linux-$arch.tar.gz"
	echo "ensure-go: then run make again; /usr/local/go/bin need not be on PATH."
	echo "ensure-go: for make test's race detector also install a C compiler: sudo apt-get install gcc"
	echo "ensure-go: (optional: without one, make test runs the tests without -race)."
} >&2
exit 1
