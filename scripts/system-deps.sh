#!/usr/bin/env bash
# Debian packages the test suite drives for real: git servers on loopback (lighttpd + git http-backend,
# git daemon, sshd), promtool, tmux (the docs record an interactive init in it) and redis-server (the Argo CD
# controllers' cache in the control-plane tests). Needs root; safe to re-run.
# tests/support/tools.py (TOOLS) names the package of every command the suite looks up; under CI=true a test
# whose tool is missing fails (tests/support/skips.py), so this script checks that each one is there.
set -euo pipefail
if ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: no apt-get here; tests needing these tools skip with a reason (and fail under CI=true)" >&2
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
packages=(git lighttpd openssh-server openssh-client prometheus tmux redis-server)
command -v rustfmt >/dev/null 2>&1 || packages+=(rustfmt)
$SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null

# Every command the suite needs from these packages (git daemon and git http-backend ship in `git`).
missing=()
for cmd in git lighttpd sshd ssh-keygen promtool tmux rustfmt redis-server /usr/lib/git-core/git-daemon \
    /usr/lib/git-core/git-http-backend; do
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("$cmd")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "system-deps: still missing after apt-get: ${missing[*]}" >&2
  exit 1
fi
