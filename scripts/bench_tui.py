#!/usr/bin/env python3
"""Dashboard under load: while a step prints 1 GiB of lines (followed in the log pane),
measure key-to-screen latency (tmux send-keys until the change shows in capture-pane)
and the dashboard process's CPU share. Peer: the same key round trip on an idle
dashboard. Usage: scripts/bench_tui.py BIN [MiB] [RUNS]
Each run starts a fresh dashboard and data dir; with RUNS > 1 a summary follows."""
import os, re, shlex, shutil, signal, subprocess, sys, tempfile, time

BIN = sys.argv[1]
MIB = int(sys.argv[2]) if len(sys.argv) > 2 else 1024
RUNS = int(sys.argv[3]) if len(sys.argv) > 3 else 1
SOCK = None  # a tmux server of its own each run (one being killed may linger)

class Control:
    """One tmux control-mode client (`tmux -C`) that the keys and screen reads go
    through. Spawning a tmux client per read (every 10 ms) cost ~3 ms of CPU each on a
    machine whose two cores the flood keeps busy, and those clients waited up to 78 ms
    to be scheduled (perf sched): the tool's own delay, counted as the dashboard's.
    Output notifications are off: only command replies come back."""

    def __init__(self):
        self.p = subprocess.Popen(
            ["tmux", "-L", SOCK, "-C", "attach-session", "-t", "b", "-f", "no-output"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.cmd("display-message -p ready")

    def cmd(self, line):
        """Runs one tmux command; its reply's lines."""
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        out, inside = [], False
        while True:
            got = self.p.stdout.readline()
            if not got:
                raise SystemExit("the tmux control client ended")
            if got.startswith("%begin"):
                # Flags 1: the reply to a command of this client (not the attach's).
                out, inside = [], got.split()[-1] == "1"
            elif inside and got.startswith("%end"):
                return "\n".join(out)
            elif inside and got.startswith("%error"):
                raise SystemExit("tmux: " + "\n".join(out))
            elif inside:
                out.append(got.rstrip("\n"))

    def close(self):
        try:
            self.p.stdin.close()
        except OSError:
            pass
        self.p.wait(5)

CTL = None

def tmux(*a):
    if CTL is not None and a[0] in ("send-keys", "capture-pane", "list-panes"):
        return CTL.cmd(" ".join(shlex.quote(x) for x in a))
    return subprocess.run(["tmux", "-L", SOCK, *a], capture_output=True, text=True).stdout

def screen():
    return tmux("capture-pane", "-t", "b", "-p")

def wait(pred, timeout=120, what="the screen"):
    end = time.time() + timeout
    while time.time() < end:
        s = screen()
        if pred(s):
            return s
        time.sleep(0.01)
    raise SystemExit(f"timed out waiting for {what}; screen:\n" + screen())

def cpu_ticks(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])

def latency_samples(n):
    """`:` opens the jump dialog, `esc` closes it: each key until the screen shows it."""
    out = []
    for _ in range(n):
        for key, shown in ((":", True), ("Escape", False)):
            t = time.perf_counter()
            tmux("send-keys", "-t", "b", key)
            wait(lambda s: ("jump to" in s) == shown, 10)
            out.append((time.perf_counter() - t) * 1000)
    return sorted(out)

def one_run(run):
    global CTL, SOCK
    SOCK = f"pdbench{os.getpid()}-{run}"
    d = tempfile.mkdtemp()
    os.makedirs(f"{d}/proj/src")
    os.mkfifo(f"{d}/go")  # the `idle` step waits on it; opening it to write ends the wait
    open(f"{d}/proj/src/README", "w").write("bench\n")
    line = "7" * 99
    open(f"{d}/proj/pipedeck.toml", "w").write(f'''
    [services.flood]
    repo_seed = "src"
    [[services.flood.steps]]
    name = "idle"
    run = "read go < {d}/go"
    [[services.flood.steps]]
    name = "gen"
    needs = ["idle"]
    run = "yes {line} | head -c {MIB * 1024 * 1024}"
    ''')
    pid = engine = None
    try:
        tmux("new-session", "-d", "-s", "b", "-x", "200", "-y", "50",
             f"{BIN} --project {d}/proj/pipedeck.toml --data-dir {d}/data")
        CTL = Control()
        pid = int(tmux("list-panes", "-t", "b", "-F", "#{pane_pid}").split()[0])
        wait(lambda s: "No runs yet" in s)
        # The engine the dashboard started (a child of it, `serve`): it does the capture.
        kids = open(f"/proc/{pid}/task/{pid}/children").read().split()
        engine = int(kids[0]) if kids else None
        tmux("send-keys", "-t", "b", "t"); wait(lambda s: "trigger a run" in s)
        tmux("send-keys", "-t", "b", "Enter"); wait(lambda s: "running" in s)
        tmux("send-keys", "-t", "b", "Enter"); wait(lambda s: "build/" in s, what="the run's detail")
        # The detail opens on a running step, else on the last one: opened while `idle`
        # is still pending (its workspace checkout takes a moment, longer while the
        # previous run's 1 GiB log is being deleted), it shows `gen`, and waiting for
        # `build/idle` then never ends (nor does `idle`: nothing writes its FIFO).
        # So wait until `idle` runs, then select it.
        wait(lambda s: re.search(r"[●*] idle", s) is not None, what="`idle` running")
        if "build/idle" not in screen():
            tmux("send-keys", "-t", "b", "k")
        wait(lambda s: "build/idle" in s, what="`idle` selected")
        idle = latency_samples(20)
        # Switch the log pane to the generator step, then release it by ending `idle`.
        tmux("send-keys", "-t", "b", "j"); wait(lambda s: "build/gen" in s)
        # End `idle` once it really runs (its workspace checkout may take a moment): a
        # write end opens only once the step holds the read end.
        end = time.time() + 60
        while True:
            try:
                fd = os.open(f"{d}/go", os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError:
                if time.time() > end:
                    raise SystemExit("the idle step never started")
                time.sleep(0.05)
        os.write(fd, b"go\n")
        os.close(fd)
        wait(lambda s: re.search(r"build/gen · [1-9][\d]* lines", s) is not None,
             what="`gen`'s first lines (after the FIFO write)")
        t0, c0 = time.time(), cpu_ticks(pid)
        e0 = cpu_ticks(engine) if engine else 0
        loaded = latency_samples(20)
        wait(lambda s: "✓ succeeded" in s or "succeeded" in s, 600)
        t1, c1 = time.time(), cpu_ticks(pid)
        e1 = cpu_ticks(engine) if engine else 0
        share = (c1 - c0) / os.sysconf("SC_CLK_TCK") / (t1 - t0) * 100
        p = lambda v, q: v[min(len(v) - 1, int(len(v) * q))]
        print(f"== dashboard under load: a step printing {MIB} MiB, followed in the log pane")
        print(f"  key-to-screen latency idle (peer):  median {p(idle, .5):.1f} ms, p95 {p(idle, .95):.1f} ms")
        print(f"  key-to-screen latency under load:   median {p(loaded, .5):.1f} ms, p95 {p(loaded, .95):.1f} ms, max {loaded[-1]:.1f} ms   (target < 100 ms)")
        print(f"  ratio (median, loaded/idle): {p(loaded, .5) / p(idle, .5):.2f}")
        eshare = (e1 - e0) / os.sysconf("SC_CLK_TCK") / (t1 - t0) * 100
        print(f"  dashboard CPU share while the step printed: {share:.0f}% of one core over {t1 - t0:.1f} s (engine: {eshare:.0f}%)")
        return p(loaded, .5), loaded[-1], p(idle, .5)
    finally:
        tmux("send-keys", "-t", "b", "q")
        time.sleep(0.5)
        if CTL is not None:
            CTL.close()
            CTL = None
        tmux("kill-server")
        # The dashboard and the engine this run started, if they are still there.
        for p in (pid, engine):
            if p is not None:
                try:
                    os.kill(p, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        # The engine may still be stopping; then its log (1 GiB) goes with the directory.
        time.sleep(1)
        shutil.rmtree(d, ignore_errors=True)

results = []
for r in range(RUNS):
    results.append(one_run(r))
if RUNS > 1:
    meds = sorted(m for m, _, _ in results)
    print(f"== {RUNS} runs: loaded median per run " + ", ".join(f"{m:.1f}" for m, _, _ in results)
          + " ms; max per run " + ", ".join(f"{x:.1f}" for _, x, _ in results)
          + f" ms; median of medians {meds[len(meds) // 2]:.1f} ms; worst max {max(x for _, x, _ in results):.1f} ms"
          + "   (targets: median < 50 ms, max < 100 ms in every run)")
