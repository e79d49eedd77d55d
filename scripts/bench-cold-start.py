#!/usr/bin/env python3
"""Cold starts of the four functions against a bare lambda_runtime hello world (README,
"Cold starts"): a benchmark, not a test.

Builds the release binaries with the project's profile (`cargo build --release`), then runs
each one against a mock Lambda Runtime API on 127.0.0.1, in interleaved rounds:

- Init: from spawning the process to its first `GET /runtime/invocation/next`;
- first: from handing it an event to its response (the cold invocation);
- warm: the same for a second event.

The event is an EventBridge event from another account, which every function refuses
without calling AWS, so the numbers are Guardrails' own. Sizes are of the stripped release
binaries built here (x86_64); `--arm64` also builds them with `cargo lambda build --release
--arm64` (as `sam build` does) and reports those sizes and their zips.

    .venv/bin/python scripts/bench-cold-start.py [--rounds 40] [--arm64] [--no-build]
"""

import argparse
import http.server
import io
import json
import os
import queue
import shutil
import statistics
import subprocess
import sys
import threading
import time
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASELINES = ["hello-bare", "hello-sdk"]
FUNCTIONS = ["start-deployment", "endpoint-events", "bake-watcher", "rollback-notifier"]
EVENT = {
    "version": "0", "id": "bench", "detail-type": "SageMaker Endpoint State Change",
    "source": "aws.sagemaker", "account": "999999999999", "time": "2026-12-03T10:00:00Z",
    "region": "us-east-1", "resources": [], "detail": {"EndpointName": "bench"},
}


class Runtime:
    """The Runtime API of one process at a time: events handed out, answers timed."""

    def __init__(self):
        self.events = queue.Queue()
        self.seen = queue.Queue()  # (kind, monotonic time)
        runtime = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else delayed ACKs add 40 ms to every answer

            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path.endswith("/runtime/invocation/next"):
                    runtime.seen.put(("next", time.monotonic()))
                    event = runtime.events.get()
                    if event is None:  # the run is over: let this handler go
                        self.send_response(410)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    request_id, body = event
                    data = json.dumps(body).encode()
                    self.send_response(200)
                    self.send_header("Lambda-Runtime-Aws-Request-Id", request_id)
                    self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 60_000))
                    self.send_header("Lambda-Runtime-Invoked-Function-Arn",
                                     "arn:aws:lambda:us-east-1:123456789012:function:bench")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                else:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                kind = "error" if self.path.endswith("/error") else "response"
                runtime.seen.put((kind, time.monotonic()))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a process killed mid-request: expected at the end of each run

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, kind):
        got, at = self.seen.get(timeout=30)
        if got != kind:
            raise RuntimeError(f"expected {kind}, got {got}")
        return at


EXTRA_ENV = {}


def env(port, name):
    e = dict(EXTRA_ENV)
    e |= {
        "PATH": os.environ.get("PATH", ""),
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "ASIABENCH",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_SESSION_TOKEN": "bench",
        "GUARDRAILS_ACCOUNT_ID": "123456789012",
        "GUARDRAILS_WAKE_TARGET_ARN": "arn:aws:lambda:us-east-1:123456789012:function:guardrails-bake-watcher",
        "GUARDRAILS_SCHEDULER_ROLE_ARN": "arn:aws:iam::123456789012:role/guardrails-scheduler",
        "GUARDRAILS_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:guardrails-pages",
        "RUST_LOG": "warn",
        "AWS_LC_SYS_NO_JITTER_ENTROPY": "1",
    }
    return e


def one_run(runtime, path, name):
    runtime.events.put(("r1", EVENT))
    runtime.events.put(("r2", EVENT))
    start = time.monotonic()
    proc = subprocess.Popen([path], env=env(runtime.port, name), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        first_next = runtime.wait("next")
        answered = runtime.wait("response")
        second_next = runtime.wait("next")
        warm = runtime.wait("response")
        runtime.wait("next")  # waiting for a third event: done
    finally:
        runtime.events.put(None)
        proc.kill()
        proc.wait()
        time.sleep(0.01)
        while not runtime.events.empty():
            runtime.events.get()
        while not runtime.seen.empty():
            runtime.seen.get()
    return ((first_next - start) * 1000, (answered - first_next) * 1000,
            (warm - second_next) * 1000)


def arm64_sizes(names):
    subprocess.run(["cargo", "lambda", "build", "--release", "--arm64"]
                   + sum((["--bin", n] for n in names), []), cwd=ROOT, check=True)
    sizes = {}
    for n in names:
        path = os.path.join(ROOT, "target", "lambda", n, "bootstrap")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.write(path, "bootstrap")
        sizes[n] = (os.path.getsize(path), len(buf.getvalue()))
    return sizes


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--arm64", action="store_true")
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--profile", default="release", help="release, or dev for a quick look")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="an environment variable for every binary (an A/B of a setting)")
    args = parser.parse_args()
    names = BASELINES + FUNCTIONS
    EXTRA_ENV.update(kv.split("=", 1) for kv in args.env)
    if not args.no_build:
        cmd = ["cargo", "build", "--profile", args.profile, "--locked"] + sum(
            (["--bin", n] for n in names), [])
        subprocess.run(cmd, cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    folder = "debug" if args.profile == "dev" else args.profile
    paths = {n: os.path.join(target, folder, n) for n in names}
    runtime = Runtime()
    results = {n: [] for n in names}
    for _ in range(args.rounds):
        for n in names:  # interleaved: the machine's drift hits every binary alike
            results[n].append(one_run(runtime, paths[n], n))
    floor = statistics.median(r[0] for r in results["hello-bare"])
    arm = arm64_sizes(names) if args.arm64 else {}
    print(f"{args.rounds} interleaved rounds, medians (x86_64 {args.profile}, this machine)\n")
    print("| binary | Init | x bare hello | first invocation | warm invocation | x86_64 binary |"
          + (" arm64 stripped | arm64 zip |" if arm else ""))
    print("| --- | ---: | ---: | ---: | ---: | ---: |" + (" ---: | ---: |" if arm else ""))
    for n in names:
        init = statistics.median(r[0] for r in results[n])
        first = statistics.median(r[1] for r in results[n])
        warm = statistics.median(r[2] for r in results[n])
        size = os.path.getsize(paths[n]) / 1e6
        row = (f"| {n} | {init:.2f} ms | {init / floor:.2f} | {first:.2f} ms | {warm:.2f} ms "
               f"| {size:.1f} MB |")
        if arm:
            row += f" {arm[n][0] / 2**20:.1f} MiB | {arm[n][1] / 2**20:.1f} MiB |"
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
