#!/usr/bin/env python3
"""Whole-log search (issue 19): a step writes 1 GiB of 100-byte lines with one line to
find near its start; the engine's Request::SearchLog looks for it backward from the
end (the worst case: every byte read). Peer: `grep -F -c` over the same stored log file
(one full scan). Also the engine's RSS during the search (VmHWM, reset before it).
Usage: scripts/bench_search.py BIN [MiB] [RUNS]
Target: under 2 s, RSS under 64 MiB. Runs interleave pipedeck and grep; medians."""
import glob, http.client, json, os, shutil, socket, subprocess, sys, tempfile, time

BIN = sys.argv[1]
MIB = int(sys.argv[2]) if len(sys.argv) > 2 else 1024
RUNS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
NEEDLE = "needle-near-the-start"


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("pipedeck", timeout=600)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def ask(sock, req):
    c = UnixHTTP(sock)
    c.request("POST", "/v1/request", json.dumps(req), {"content-type": "application/json"})
    r = c.getresponse()
    body = json.loads(r.read())
    if r.status != 200:
        raise SystemExit(f"engine said {r.status}: {body}")
    return body["value"]


def status(pid, key):
    for l in open(f"/proc/{pid}/status"):
        if l.startswith(key + ":"):
            return int(l.split()[1]) // 1024  # MiB
    return 0


d = tempfile.mkdtemp()
engine = None
try:
    os.makedirs(f"{d}/proj/src")
    open(f"{d}/proj/src/README", "w").write("bench\n")
    line = "7" * 99
    open(f"{d}/proj/pipedeck.toml", "w").write(f'''
[services.big]
repo_seed = "src"
[[services.big.steps]]
name = "gen"
run = "echo head; echo {NEEDLE}; yes {line} | head -c {MIB * 1024 * 1024}"
''')
    sock = f"{d}/engine.sock"
    base = [BIN, "--project", f"{d}/proj/pipedeck.toml", "--data-dir", f"{d}/data", "--socket", sock]
    engine = subprocess.Popen(base + ["serve"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    end = time.time() + 60
    while not os.path.exists(sock):
        if time.time() > end:
            raise SystemExit("the engine did not start")
        time.sleep(0.05)
    t = time.time()
    subprocess.run(base + ["run", "big", "--wait"], check=True, stdout=subprocess.DEVNULL)
    print(f"== whole-log search over {MIB} MiB (stored in {time.time() - t:.0f} s)")
    detail = ask(sock, {"request": "detail", "run_id": 1})
    step = detail["steps"][0]["id"]
    total = ask(sock, {"request": "log_count", "run_id": 1, "step_id": step})
    logfile = max(glob.glob(f"{d}/data/**/*", recursive=True),
                  key=lambda p: os.path.getsize(p) if os.path.isfile(p) else 0)
    ours, peer, rss = [], [], []
    for _ in range(RUNS):
        # Reset the peak RSS to the current one (Linux: write 5 to clear_refs).
        with open(f"/proc/{engine.pid}/clear_refs", "w") as f:
            f.write("5")
        before = status(engine.pid, "VmRSS")
        t = time.perf_counter()
        hit = ask(sock, {"request": "search_log", "run_id": 1, "step_id": step,
                         "from": total, "needle": NEEDLE, "backward": True})
        ours.append(time.perf_counter() - t)
        rss.append((before, status(engine.pid, "VmHWM")))
        assert hit == 1, f"found {hit}, expected line 1"
        t = time.perf_counter()
        # Into a pipe: GNU grep stops at the first match when its output is /dev/null.
        subprocess.run(["grep", "-F", "-c", NEEDLE, logfile], check=True, stdout=subprocess.PIPE)
        peer.append(time.perf_counter() - t)
    med = lambda v: sorted(v)[len(v) // 2]
    print(f"  {total} lines; search backward from the end to line 2: "
          + ", ".join(f"{x:.2f}" for x in ours) + f" s; median {med(ours):.2f} s   (target < 2 s)")
    print("  grep -F -c over the stored file (peer): "
          + ", ".join(f"{x:.2f}" for x in peer) + f" s; median {med(peer):.2f} s")
    print(f"  ratio (median, search/grep): {med(ours) / med(peer):.2f}   ({os.path.basename(logfile)}, {os.path.getsize(logfile) >> 20} MiB)")
    print("  engine RSS before -> peak during each search: "
          + ", ".join(f"{a} -> {b} MiB" for a, b in rss) + "   (target < 64 MiB)")
finally:
    if engine:
        engine.terminate()
        engine.wait(30)
    shutil.rmtree(d, ignore_errors=True)
