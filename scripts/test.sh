#!/usr/bin/env bash
# The whole test suite: formatting, lints, and every test in the workspace. CI runs exactly
# this (.ci/run), and it is the README's second quick-start command.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install the Rust toolchain (rustup) first" >&2
  exit 1
fi

bash scripts/setup.sh
echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cfn-lint infra/template.yaml"
.venv/bin/cfn-lint infra/template.yaml
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"
echo "== end-to-end: the demo's stories through the real function binaries"
bash scripts/demo.sh
# One closing line for the whole suite (cargo prints one per test binary, the last of which
# is often an empty doc-test run); the demo's four stories (the dry runs, the canary, the
# rollback, the native canary) count as four tests.
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "\ntests: %d passed, %d failed\n", passed + 4, failed }' "$log"
