#!/usr/bin/env python3
"""Issue 17's two figures, each against its peer run side by side (interleaved rounds,
medians):

1. The extra latency a verify HTTP check adds over its HTTP round trip: the check's
   unit (started_at -> ended_at, as the engine records it) against a plain HTTP GET of
   the same URL from this script (one new connection each, like the check).
2. What a commit-status API that is down for the whole run adds to the run: the run's
   duration (started_at -> ended_at) with `status_reporting` pointing at a closed port
   against the same pipeline without it.

Usage: scripts/bench_outbound.py [BINARY] [ROUNDS]   (default target/release/pipedeck, 7)
Prints figures; never fails on time. The machine's other load shows in them.
"""
import http.client
import http.server
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/pipedeck"
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 7


class Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def project(work, name, body):
    proj = os.path.join(work, name)
    os.makedirs(os.path.join(proj, "src"), exist_ok=True)
    with open(os.path.join(proj, "src", "README"), "w") as f:
        f.write("bench\n")
    with open(os.path.join(proj, "gh-token"), "w") as f:
        f.write("t\n")
    with open(os.path.join(proj, "pipedeck.toml"), "w") as f:
        f.write("[environments.dev]\n" + body)
    return proj


def run(proj, data):
    cmd = [BIN, "--data-dir", data, "--project", os.path.join(proj, "pipedeck.toml")]
    env = dict(os.environ, PIPEDECK_CONFIG=os.path.join(proj, "none.toml"))
    out = subprocess.run(cmd + ["run", "svc", "--wait"], capture_output=True, text=True, env=env)
    run_id = out.stdout.split()[0] if out.stdout.split() else None
    if out.returncode != 0 or run_id is None:
        sys.exit(f"the run failed: {out.stdout}{out.stderr}")
    # `show` needs an engine: `run --wait` hosted one only while it ran.
    srv = subprocess.Popen(cmd + ["serve"], stderr=subprocess.PIPE, text=True, env=env)
    while "serving" not in srv.stderr.readline():
        pass
    shown = subprocess.run(cmd + ["--json", "show", run_id], capture_output=True, text=True, env=env)
    srv.terminate()
    srv.wait()
    return json.loads(shown.stdout)


def span(x):
    return (x["ended_at"] - x["started_at"]) / 1000.0


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    url = f"http://127.0.0.1:{port}/health"
    down = f"http://127.0.0.1:{closed_port()}"
    work = tempfile.mkdtemp(prefix="bench-outbound-")
    verify = project(work, "verify", f"""
[services.svc]
repo_seed = "src"
environments = ["dev"]
[services.svc.deploy.dev]
run = "true"
[[services.svc.deploy.dev.verify]]
name = "health"
url = "{url}"
""")
    base = """
[services.svc]
repo_seed = "src"
environments = ["dev"]
[[services.svc.steps]]
name = "build"
run = "true"
[services.svc.deploy.dev]
run = "true"
"""
    plain = project(work, "plain", base)
    status = project(work, "status", base + f"""
[services.svc.secrets]
GH = {{ file = "gh-token" }}
[services.svc.status_reporting]
api = "{down}"
owner = "o"
repo = "r"
token_secret = "GH"
""")
    unit, rtt, with_down, without = [], [], [], []
    for i in range(ROUNDS):
        d = run(verify, os.path.join(work, f"v{i}"))
        check = next(s for s in d["steps"] if s["stage"] == "verify")
        unit.append(span(check) * 1000)
        t = time.perf_counter()
        c = http.client.HTTPConnection("127.0.0.1", port)
        c.request("GET", "/health")
        c.getresponse().read()
        c.close()
        rtt.append((time.perf_counter() - t) * 1000)
        # The status pair, order alternating.
        pair = [(status, with_down), (plain, without)]
        if i % 2:
            pair.reverse()
        for proj, into in pair:
            into.append(span(run(proj, os.path.join(work, f"s{i}-{len(into)}"))["run"]))
    mu, mr = statistics.median(unit), statistics.median(rtt)
    print(f"verify unit {mu:.2f} ms vs its HTTP round trip {mr:.2f} ms: +{mu - mr:.2f} ms (median of {ROUNDS})")
    md, mw = statistics.median(with_down), statistics.median(without)
    print(f"run with the status API down {md:.3f} s vs without status reporting {mw:.3f} s: "
          f"{md - mw:+.3f} s, ratio {md / mw:.3f} (median of {ROUNDS})")


if __name__ == "__main__":
    main()
