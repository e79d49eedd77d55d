#!/usr/bin/env bash
# Installs what the tests and the demo need beyond the Rust toolchain, in a project-local
# Python venv (.venv): moto[server] (the local DynamoDB, SNS, SQS, EventBridge and Scheduler;
# it brings boto3, which the suite's boto3 tests use), cfn-lint (checks infra/template.yaml),
# aws-sam-translator (the local IAM expands the template's policies with it) and cargo-lambda
# (runs the functions locally). Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

MOTO_VERSION="5.2.5"
CFN_LINT_VERSION="1.58.0"
CARGO_LAMBDA_VERSION="1.9.2"
# AWS SAM's translator: the local stack expands infra/template.yaml with it, so that each
# function is authorized with the policies SAM would give it on AWS.
SAM_TRANSLATOR_VERSION="1.115.0"

if ! command -v python3 >/dev/null 2>&1; then
  echo "python3 not found: install Python 3.9 or newer first" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import moto, importlib.metadata as m; assert m.version('moto') == '$MOTO_VERSION'" 2>/dev/null; then
  .venv/bin/pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi
if ! .venv/bin/python -c "import importlib.metadata as m; assert m.version('cfn-lint') == '$CFN_LINT_VERSION'" 2>/dev/null; then
  .venv/bin/pip install --quiet --disable-pip-version-check "cfn-lint==$CFN_LINT_VERSION"
fi
echo "setup: .venv has cfn-lint $CFN_LINT_VERSION"
if ! .venv/bin/python -c "import importlib.metadata as m; assert m.version('aws-sam-translator') == '$SAM_TRANSLATOR_VERSION'" 2>/dev/null; then
  .venv/bin/pip install --quiet --disable-pip-version-check "aws-sam-translator==$SAM_TRANSLATOR_VERSION"
fi
echo "setup: .venv has aws-sam-translator $SAM_TRANSLATOR_VERSION"
if ! .venv/bin/python -c "import importlib.metadata as m; assert m.version('cargo-lambda') == '$CARGO_LAMBDA_VERSION'" 2>/dev/null; then
  .venv/bin/pip install --quiet --disable-pip-version-check "cargo-lambda==$CARGO_LAMBDA_VERSION"
fi
echo "setup: .venv has cargo-lambda $CARGO_LAMBDA_VERSION"
echo "setup: .venv has moto $(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("moto"))')"
# Debian's headless Chromium: the report test (cli/tests/report_local.rs) opens the HTML report
# in it and checks the chart from its DOM and a screenshot.
if [ ! -x /usr/bin/chromium ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: apt-get not found: install Debian's chromium package (/usr/bin/chromium) first" >&2
    exit 1
  fi
  as_root=""
  [ "$(id -u)" -eq 0 ] || as_root="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $as_root apt-get install -y -q chromium >/dev/null 2>&1 \
    || { $as_root apt-get update -q >/dev/null && $as_root apt-get install -y -q chromium >/dev/null; }
fi
echo "setup: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
