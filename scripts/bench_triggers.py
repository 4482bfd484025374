#!/usr/bin/env python3
"""Trigger figures (issue 16): push -> run-created latency (local watch and webhook)
and webhook throughput with signature checks.

One engine (`pipedeck serve --listen 127.0.0.1:PORT`) on a temp project:
- `local`: a work tree on this machine, watched (inotify); poll interval 1h, so the
  figure is the watch's. Latency: from `git commit` returning (the ref is written) to
  the run's creation event on the engine's event stream.
- `hooked`: a bare remote by URL (poll interval 1h), with a webhook secret. Latency:
  from the signed POST /hooks/github being sent to the run's creation event.
- Throughput: N signed deliveries (distinct ids; a branch no glob matches, so each is
  verified, its delivery id committed durably, and answered 202 without a run), one
  after another on one keep-alive connection; as a peer, the same number of
  authenticated API reads (`catalog`, bearer token) on the same listener, interleaved
  in rounds. Medians of the rounds.

Usage: scripts/bench_triggers.py [BINARY] [N] [ROUNDS]   (default target/release/pipedeck)
Prints figures; never fails on time.
"""
import hashlib
import hmac
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

SECRET = b"bench secret"


def git(cwd, *args):
    subprocess.run(["git", "-C", cwd, "-c", "user.name=b", "-c", "user.email=b@x.invalid",
                    *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def out(cwd, *args):
    return subprocess.run(["git", "-C", cwd, *args], check=True,
                          capture_output=True, text=True).stdout.strip()


def commit(tree, msg):
    with open(os.path.join(tree, "f.txt"), "w") as f:
        f.write(msg)
    git(tree, "add", "-A")
    git(tree, "commit", "-q", "-m", msg)
    return out(tree, "rev-parse", "HEAD")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("engine")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def follow(sock_path, seen):
    """Records when each run is first seen, by commit, from the event stream."""
    conn = UnixConnection(sock_path)
    conn.request("GET", "/v1/events")
    r = conn.getresponse()
    while True:
        line = r.readline()
        if not line:
            return
        t = time.perf_counter()
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        run = ev.get("run") if isinstance(ev, dict) else None
        if isinstance(run, dict) and run.get("commit_sha") not in seen:
            seen[run["commit_sha"]] = t


def wait_seen(seen, sha):
    deadline = time.perf_counter() + 60
    while sha not in seen:
        if time.perf_counter() > deadline:
            sys.exit(f"no run for {sha}")
        time.sleep(0.0005)
    return seen[sha]


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/pipedeck"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    binary = os.path.abspath(binary)
    with tempfile.TemporaryDirectory() as work:
        local = os.path.join(work, "local")
        os.makedirs(local)
        git(local, "init", "-q", "-b", "main")
        commit(local, "first")
        bare = os.path.join(work, "remote.git")
        os.makedirs(bare)
        git(bare, "init", "-q", "--bare", "-b", "main")
        clone = os.path.join(work, "clone")
        os.makedirs(clone)
        git(clone, "init", "-q", "-b", "main")
        commit(clone, "first")
        git(clone, "remote", "add", "origin", bare)
        git(clone, "push", "-q", "origin", "main")
        with open(os.path.join(work, "secret"), "wb") as f:
            f.write(SECRET)
        proj = os.path.join(work, "pipedeck.toml")
        with open(proj, "w") as f:
            f.write(f"""
[services.local]
repo = "{local}"
branches = ["main"]
poll_interval = "1h"
[[services.local.steps]]
name = "build"
run = "true"

[services.hooked]
repo = "file://{bare}"
branches = ["main"]
poll_interval = "1h"
webhook = {{ repository = "bench/hooked", secret = "HOOK" }}
[services.hooked.secrets.HOOK]
file = "{work}/secret"
[[services.hooked.steps]]
name = "build"
run = "true"
""")
        data = os.path.join(work, "data")
        port = free_port()
        base = [binary, "--data-dir", data, "--project", proj]
        p = subprocess.Popen(base + ["serve", "--listen", f"127.0.0.1:{port}"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            ep = os.path.join(data, "engine.json")
            for _ in range(800):
                if os.path.exists(ep):
                    break
                time.sleep(0.025)
            with open(ep) as f:
                sock_path = json.load(f)["socket"]
            token = subprocess.run(base + ["token", "create", "--user", "bench", "--role", "viewer"],
                                   check=True, capture_output=True, text=True).stdout.strip()
            seen = {}
            threading.Thread(target=follow, args=(sock_path, seen), daemon=True).start()
            # The watchers' first look (their baseline) before anything is timed.
            time.sleep(2)

            local_ms = []
            for i in range(10):
                sha = commit(local, f"local {i}")
                t0 = time.perf_counter()
                local_ms.append((wait_seen(seen, sha) - t0) * 1000)

            conn = http.client.HTTPConnection("127.0.0.1", port)

            def hook(body, delivery):
                raw = json.dumps(body).encode()
                sig = "sha256=" + hmac.new(SECRET, raw, hashlib.sha256).hexdigest()
                conn.request("POST", "/hooks/github", raw, {
                    "Content-Type": "application/json", "X-GitHub-Event": "push",
                    "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": sig})
                r = conn.getresponse()
                r.read()
                return r.status

            hook_ms = []
            for i in range(10):
                sha = commit(clone, f"hooked {i}")
                git(clone, "push", "-q", "origin", "main")
                t0 = time.perf_counter()
                code = hook({"ref": "refs/heads/main", "after": sha,
                             "repository": {"full_name": "bench/hooked"}}, f"lat-{i}")
                if code != 201:
                    sys.exit(f"webhook answered {code}")
                hook_ms.append((wait_seen(seen, sha) - t0) * 1000)

            def read():
                conn.request("POST", "/v1/request", json.dumps({"request": "catalog"}),
                             {"Content-Type": "application/json",
                              "Authorization": "Bearer " + token})
                r = conn.getresponse()
                r.read()
                return r.status

            hooks_s, reads_s = [], []
            for r in range(rounds):
                t0 = time.perf_counter()
                for i in range(n):
                    code = hook({"ref": "refs/heads/bench-unmatched", "after": "a" * 40,
                                 "repository": {"full_name": "bench/hooked"}}, f"tp-{r}-{i}")
                    if code != 202:
                        sys.exit(f"webhook answered {code}")
                hooks_s.append(n / (time.perf_counter() - t0))
                t0 = time.perf_counter()
                for _ in range(n):
                    if read() != 200:
                        sys.exit("catalog failed")
                reads_s.append(n / (time.perf_counter() - t0))
                print(f"round {r + 1}: webhooks {hooks_s[-1]:.0f}/s, API reads {reads_s[-1]:.0f}/s")
        finally:
            p.terminate()
            p.wait()
    med = statistics.median
    print(f"push -> run created, local watch (10 pushes): median {med(local_ms):.1f} ms, "
          f"max {max(local_ms):.1f} ms")
    print(f"push -> run created, webhook (10 deliveries): median {med(hook_ms):.1f} ms, "
          f"max {max(hook_ms):.1f} ms")
    hm, rm = med(hooks_s), med(reads_s)
    print(f"signed webhooks per second (median of {rounds} x {n}): {hm:.0f}; "
          f"peer: authenticated API reads {rm:.0f}/s; ratio webhook/read {hm / rm:.2f}")


if __name__ == "__main__":
    main()
