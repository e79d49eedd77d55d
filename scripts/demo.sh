#!/usr/bin/env bash
# The main job: an end-to-end deployment story on the local stack, through the real function
# binaries. It sets up what it needs (moto, cfn-lint and cargo-lambda in .venv), builds, starts
# the local AWS stack wired like the SAM template and `cargo lambda watch` running the four
# functions, then tells the story (guardrails-demo): an endpoint serves v1; a canary of v2
# succeeds; a faulty v3 trips its alarm, rolls back, pages on-call; the endpoint is back on v2.
# It cleans up after itself, and exits non-zero if the story goes any other way.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install the Rust toolchain (rustup) first" >&2
  exit 1
fi
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

echo "== building the functions and the local stack"
cargo build --locked -q -p guardrails-local -p guardrails-cli -p start-deployment \
  -p endpoint-events -p bake-watcher -p rollback-notifier -p hook-green-ready
target="${CARGO_TARGET_DIR:-target}"

work=$(mktemp -d)
lambda_port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -- -"$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

setsid "$target/debug/guardrails-local" up --env-file "$work/stack.env" \
  --lambda "http://127.0.0.1:$lambda_port" --sweep-secs 20 > "$work/stack.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$work/stack.env" ] && break; sleep 0.2; done
[ -s "$work/stack.env" ] || { cat "$work/stack.log" >&2; echo "the local stack did not start" >&2; exit 1; }

setsid cargo lambda watch -A 127.0.0.1 -P "$lambda_port" --env-file "$work/stack.env" \
  > "$work/watch.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  (echo > "/dev/tcp/127.0.0.1/$lambda_port") 2>/dev/null && break
  sleep 0.2
done

set -a
# shellcheck disable=SC1091
source "$work/stack.env"
set +a
export GUARDRAILS_LAMBDA_URL="http://127.0.0.1:$lambda_port"
# The person's tool, and where the demo leaves the rollback's report (kept after it ends).
export GUARDRAILS_CLI="$target/debug/guardrails"
mkdir -p "$target/demo"
GUARDRAILS_DEMO_OUT="$(cd "$target/demo" && pwd)"
export GUARDRAILS_DEMO_OUT
if ! "$target/debug/guardrails-demo"; then
  echo "---- local stack log" >&2; tail -n 40 "$work/stack.log" >&2
  echo "---- functions log" >&2; tail -n 60 "$work/watch.log" >&2
  exit 1
fi
