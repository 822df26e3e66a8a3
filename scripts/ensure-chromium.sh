#!/usr/bin/env bash
# ensure-chromium.sh makes sure Debian's chromium is at /usr/bin/chromium,
# where the portal's browser test (api/portal) looks for it, installing it
# with apt when it is missing. Idempotent: with the browser there it does
# nothing. It never fails `make test`: when it cannot install (no apt, no
# root and no sudo, no network) it says so, and the browser test skips
# saying why.
set -uo pipefail

browser=/usr/bin/chromium
if [[ -x $browser ]]; then
	exit 0
fi
if ! command -v apt-get >/dev/null; then
	echo "ensure-chromium: $browser is missing and there is no apt-get: the portal's browser test will skip" >&2
	exit 0
fi
sudo=()
if [[ $(id -u) -ne 0 ]]; then
	if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
		sudo=(sudo -n)
	else
		echo "ensure-chromium: $browser is missing; install it with 'sudo apt-get install -y chromium' (the portal's browser test skips until then)" >&2
		exit 0
	fi
fi
echo "ensure-chromium: installing chromium with apt (once) for the portal's browser test" >&2
export DEBIAN_FRONTEND=noninteractive
if ! "${sudo[@]}" apt-get install -y chromium >/dev/null 2>&1; then
	"${sudo[@]}" apt-get update >/dev/null 2>&1 || true
	if ! "${sudo[@]}" apt-get install -y chromium >/dev/null 2>&1; then
		echo "ensure-chromium: apt could not install chromium: the portal's browser test will skip" >&2
		exit 0
	fi
fi
[[ -x $browser ]] || echo "ensure-chromium: chromium installed, but not at $browser: the portal's browser test will skip" >&2
exit 0
