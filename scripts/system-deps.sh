#!/usr/bin/env bash
# Debian packages the test suite drives for real: git servers on loopback (lighttpd + git http-backend,
# git daemon, sshd), promtool, tmux (the docs record an interactive init in it) and redis-server (the Argo CD
# controllers' cache in the control-plane tests). Needs root; safe to re-run.
set -euo pipefail
if ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: no apt-get here; tests needing these tools will skip with a reason" >&2
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
packages=(git lighttpd openssh-server openssh-client prometheus tmux redis-server)
command -v rustfmt >/dev/null 2>&1 || packages+=(rustfmt)
$SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
