#!/usr/bin/env python3
"""Gate decisions per second through the local API, side by side for two binaries.

Each binary serves its own data dir; N runs wait at a prod gate; then the N approvals
are sent one after another over one keep-alive connection and timed (each is answered
only once it is committed: with `synchronous=FULL`, once the WAL is fsynced). The
binaries take turns, several rounds, and the medians are compared.

Usage: scripts/bench_decisions.py BEFORE_BIN AFTER_BIN [N] [ROUNDS]
Prints figures; never fails on time.
"""
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

PROJECT = """
[engine]
concurrency = 4
[environments.prod]
[services.gated]
repo_seed = "src"
environments = ["prod"]
[services.gated.deploy.prod]
run = "true"
approval = true
"""


def serve(binary, work):
    proj = os.path.join(work, "proj")
    os.makedirs(os.path.join(proj, "src"), exist_ok=True)
    with open(os.path.join(proj, "src", "README"), "w") as f:
        f.write("bench\n")
    with open(os.path.join(proj, "pipedeck.toml"), "w") as f:
        f.write(PROJECT)
    data = os.path.join(work, "data")
    p = subprocess.Popen(
        [binary, "--data-dir", data, "--project", os.path.join(proj, "pipedeck.toml"),
         "serve"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ep = os.path.join(data, "engine.json")
    for _ in range(400):
        if os.path.exists(ep):
            try:
                with open(ep) as f:
                    e = json.load(f)
                return p, e
            except ValueError:
                pass
        time.sleep(0.025)
    p.kill()
    sys.exit(f"{binary}: the engine did not start")


class UnixConnection(http.client.HTTPConnection):
    """HTTP over the engine's Unix socket (binaries from before it served on loopback)."""

    def __init__(self, path):
        super().__init__("engine")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def client(e):
    headers = {"Content-Type": "application/json"}
    if "socket" in e:
        conn = UnixConnection(e["socket"])
    else:
        u = urllib.parse.urlparse(e["url"])
        conn = http.client.HTTPConnection(u.hostname, u.port)
        headers["Authorization"] = "Bearer " + e["token"]

    def ask(req):
        conn.request("POST", "/v1/request", json.dumps(req), headers)
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            sys.exit(f"{req}: {r.status} {body[:200]!r}")
        return json.loads(body)["value"]

    return ask


def round_(binary, n):
    with tempfile.TemporaryDirectory() as work:
        p, e = serve(binary, work)
        try:
            ask = client(e)
            ids = [ask({"request": "trigger", "service": "gated", "branch": None, "commit": None})["id"]
                   for _ in range(n)]
            deadline = time.time() + 120
            while True:
                waiting = ask({"request": "waiting_gates"})
                if len(waiting) >= n:
                    break
                if time.time() > deadline:
                    sys.exit(f"{binary}: only {len(waiting)} of {n} gates opened")
                time.sleep(0.05)
            t0 = time.perf_counter()
            for i in ids:
                ask({"request": "decide", "run_id": i, "env": "prod", "decision": "approve"})
            return n / (time.perf_counter() - t0)
        finally:
            p.terminate()
            p.wait()


def main():
    before, after = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    got = {before: [], after: []}
    for r in range(rounds):
        for b in (before, after):
            got[b].append(round_(b, n))
        print(f"round {r + 1}: before {got[before][-1]:.0f}/s, after {got[after][-1]:.0f}/s")
    mb, ma = statistics.median(got[before]), statistics.median(got[after])
    print(f"gate decisions per second (median of {rounds}, {n} each): "
          f"before {mb:.0f}, after {ma:.0f}, ratio after/before {ma / mb:.2f}")


if __name__ == "__main__":
    main()
