#!/usr/bin/env bash
# The project's whole test suite: what the README's test command and CI run.
# 1. installs what the tests need (Debian packages, the e2e guest's kernel);
# 2. go vet + unit tests (fast, no QEMU);
# 3. fixture checks with the real tools, then the e2e suite against real QEMU guests.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh

echo "== go vet"
go vet ./...
echo "== unit tests"
go test -count=1 ./...

for s in scripts/test.d/*.sh; do
  [ -e "$s" ] || continue
  echo "== $s"
  bash "$s"
done
echo "== all tests passed"
