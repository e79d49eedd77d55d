#!/usr/bin/env bash
# The main job, the README's first quick-start command. Until the end-to-end deployment on the
# local stack lands, it builds the `guardrails` command and shows what it does today: the dry
# run (plan) of the sample canary policy for a 4-instance endpoint, then how a broken policy
# is refused, every problem at once.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install the Rust toolchain (rustup) first" >&2
  exit 1
fi

cargo build --locked -q -p guardrails-cli
guardrails=target/debug/guardrails
[ -n "${CARGO_TARGET_DIR:-}" ] && guardrails="$CARGO_TARGET_DIR/debug/guardrails"

echo "\$ guardrails plan --policy examples/policies/canary.yaml --endpoint fraud-scorer ..."
"$guardrails" plan --policy examples/policies/canary.yaml \
  --endpoint fraud-scorer --config fraud-scorer-v1 --variant AllTraffic \
  --instance-type ml.m5.xlarge --instances 4 --model fraud-scorer-v2
echo
echo "\$ guardrails validate examples/broken-policy.yaml"
if "$guardrails" validate examples/broken-policy.yaml 2>&1; then
  echo "expected the broken policy to be refused" >&2
  exit 1
fi
