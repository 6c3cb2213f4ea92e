#!/usr/bin/env bash
# System packages `make setup` needs beyond Python: a JVM and Maven for the Kafka broker,
# tshark for benchmarks and the tests that cross-check dissection, and a C compiler for the
# compiled sensor engine (`make native`), and Go for the compose-file check
# (`docker/composecheck`, used by the tests on machines without Docker). Installs what is missing with
# apt-get when running as root; otherwise says what to install. Never fails the build itself:
# `streamtap stack install` stops later with a precise message if java or mvn is still missing.
set -u

need=()       # packages to install
declare -A pkg=([java]=openjdk-17-jre-headless [mvn]=maven [tshark]=tshark [gcc]=gcc [go]=golang-go)
for cmd in java mvn tshark gcc go; do
  command -v "$cmd" >/dev/null 2>&1 || need+=("${pkg[$cmd]}")
done
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: not root, so not installing: ${need[*]} (install them with your package manager)" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup: no apt-get here; please install: ${need[*]}" >&2
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
echo "setup: installing ${need[*]} with apt-get" >&2
if ! apt-get update -qq >/dev/null; then
  echo "setup: apt-get update failed; not installing ${need[*]}" >&2
  exit 0
fi
for p in "${need[@]}"; do
  if ! apt-get install -y -qq --no-install-recommends "$p" >/dev/null; then
    echo "setup: apt-get install $p failed (tests and benchmarks that need it will skip or fail)" >&2
  fi
done
exit 0
