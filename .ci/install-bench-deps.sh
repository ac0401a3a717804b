#!/bin/sh
# What the benchmarks need besides the test dependencies (python -m bench): socat and
# iperf3 (relay baselines) and wrk (HTTP load). Idempotent; run as root.
set -eu
missing=""
for p in socat iperf3 wrk; do
  dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
