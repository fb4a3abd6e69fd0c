"""Timed client runs and the state every phase shares.

`run_timed` runs a client under GNU time, time-boxed; one that overruns is described
(`describe_stuck`: its threads, its connections, its last output, the Worker's side), killed, and
raised as `Timeout`. `Runner` is the bench's shared state and setup: prerequisites, the build
frozen into the temp dir, both Workers started (and restarted between phases), test files, the
wait for a quiet machine, time boxes, one retry after a timeout, the two uploaders every phase
uses (`upload_seed`: mpuscript.py; `upload_ours`: `r2mpu upload`), and the end-of-run checks."""

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .util import ANSI, LOOPBACK_FLOOR_MBPS, MB, MIB, REPO, SEED_PART_SIZE, free_port, log, system_busy
from .workers import CpuDelta, Wrangler, request_times


class Timeout(RuntimeError):
    """A client run or a wait that outlived its time box; the message says what was waited for
    and what the client, its connections and the Worker were doing at that moment."""


def process_tree(pid):
    """pid and all its descendants (by /proc/*/stat's ppid)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    children.setdefault(int(f.read().rsplit(")", 1)[1].split()[1]), []).append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def describe_stuck(pid, worker, log_offset, out_path):
    """What a client that overran its time box was doing: each thread's state and kernel wait
    channel, its TCP connections with their queues (ss -tnpi: a request waiting for an answer has
    empty queues; a blocked upload has a full Send-Q), the last lines it printed, and the Worker's
    side: requests wrangler logged as finished since the run started, and its workerd CPU over
    one second (idle or busy)."""
    lines = []
    for p in process_tree(pid):
        try:
            comm = Path(f"/proc/{p}/comm").read_text().strip()
        except OSError:
            continue
        threads = []
        for task in sorted(os.listdir(f"/proc/{p}/task")) if os.path.isdir(f"/proc/{p}/task") else []:
            try:
                state = Path(f"/proc/{p}/task/{task}/stat").read_text().rsplit(")", 1)[1].split()[0]
                wchan = Path(f"/proc/{p}/task/{task}/wchan").read_text().strip() or "-"
                threads.append(f"{state}:{wchan}")
            except OSError:
                continue
        counts = {t: threads.count(t) for t in threads}
        lines.append(f"  pid {p} ({comm}), threads by state:wait-channel: "
                     + ", ".join(f"{n}x {t}" for t, n in sorted(counts.items())))
    ss = subprocess.run(["ss", "-tnpi"], capture_output=True, text=True, timeout=10).stdout.splitlines()
    pids = set(process_tree(pid))
    conns = [ss[i].strip() for i in range(len(ss)) if any(f"pid={p}," in ss[i] for p in pids)]
    lines.append(f"  its TCP connections (State Recv-Q Send-Q local peer): {len(conns)}")
    lines += [f"    {' '.join(c.split()[:5])}" for c in conns[:40]]
    try:
        tail = Path(out_path).read_text(errors="replace").splitlines()[-8:]
        lines.append("  its last output lines:")
        lines += [f"    {ANSI.sub('', l)[-200:]}" for l in tail]
    except OSError:
        pass
    if worker is not None:
        done = worker.log_since(log_offset)
        finished = re.findall(r"\[wrangler:info\] (\w+ \S+ \d+)[^(]*\((\d+)ms\)", done)
        before = {pid: cpu for pid, (_, cpu) in worker.cpu().items()}
        time.sleep(1.0)
        after = {pid: cpu for pid, (_, cpu) in worker.cpu().items()}
        busy = sum((after[p] or 0) - (before.get(p) or 0) for p in after if before.get(p) is not None)
        lines.append(f"  {worker.name}'s wrangler logged {len(finished)} finished requests since the run began"
                     + (f", the last: {finished[-1][0]} ({finished[-1][1]} ms)" if finished else "")
                     + f"; its processes used {busy:.2f} s CPU in the last second; its log's last lines:")
        lines += [f"    {l[-200:]}" for l in done.strip().splitlines()[-5:]]
    return "\n".join(lines)


def run_timed(cmd, env, tmp, label, timeout=600, worker=None):
    """Runs cmd under GNU time; returns wall s, CPU s (user+sys), peak RSS bytes, output.
    Time-boxed: after `timeout` s (callers size it from their bytes; ten minutes if they do not)
    it records what the client and the Worker (if given) were doing, kills the client's process
    group and raises Timeout (a bench must never hang)."""
    tfile, out_path, err_path = (Path(tmp) / f"{kind}-{label}.txt" for kind in ("time", "stdout", "stderr"))
    log_offset = worker.log_size() if worker else 0
    t0 = time.monotonic()
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen(["/usr/bin/time", "-v", "-o", str(tfile), *map(str, cmd)], env=env, stdout=out,
                                stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            what = describe_stuck(proc.pid, worker, log_offset, err_path)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise Timeout(f"{label}: `{' '.join(map(str, cmd))}` still running after {timeout:.0f} s (killed); "
                          f"at that moment:\n{what}") from None
    wall = time.monotonic() - t0
    stdout, stderr = out_path.read_text(errors="replace"), err_path.read_text(errors="replace")
    text = tfile.read_text()
    (Path(tmp) / f"out-{label}.txt").write_text(f"$ {' '.join(map(str, cmd))}\n{stdout}\n--- stderr\n{stderr}")
    if proc.returncode != 0:
        raise RuntimeError(f"{label}: {' '.join(map(str, cmd))} exited {proc.returncode}:\n{stdout}\n{stderr}\n{text}")

    def field(name):
        m = re.search(rf"{re.escape(name)}: (\S+)", text)
        return float(m.group(1)) if m else float("nan")

    return {
        "wall": wall,
        "cpu": field("User time (seconds)") + field("System time (seconds)"),
        "user": field("User time (seconds)"),
        "sys": field("System time (seconds)"),
        "rss": field("Maximum resident set size (kbytes)") * 1024,
        "stdout": stdout,
        "stderr": stderr,
        # A request the client had to retry (a stall it timed out, a 5xx): the run finished, but
        # its figures include the wait. The CLI prints `…; retrying`.
        "retried": [ANSI.sub("", l).strip() for l in stderr.splitlines() if "retrying" in l.lower()],
    }


class Runner:
    def __init__(self, args):
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="r2mpu-bench-"))
        self.results = {}
        self.notes = []
        self.workers = []
        self.cli = REPO / "target/release/r2mpu"
        self.quiet_log = []
        self.part_size = None

    def prerequisites(self):
        missing = []
        if not os.access("/usr/bin/time", os.X_OK):
            missing.append("GNU time as /usr/bin/time: `apt-get install -y time`")
        if not shutil.which("curl"):
            missing.append("curl: `apt-get install -y curl`")
        if not (REPO / "node_modules/.bin/wrangler").exists():
            missing.append("node_modules (wrangler): `make install`")
        self.python = REPO / ".venv/bin/python"
        if not self.python.exists() or subprocess.run([self.python, "-c", "import requests"]).returncode:
            missing.append(".venv with requests (the seed client): `make install`")
        if not (self.args.seed / "mpuscript.py").exists():
            missing.append(f"the seed Worker at {self.args.seed} (pass --seed DIR)")
        if missing:
            sys.exit("bench/run: missing:\n  " + "\n  ".join(missing))

    def build(self):
        """Builds the CLI and the Worker, then freezes both into the temp dir: others may edit and
        rebuild the repo while the bench runs, and `wrangler dev` in the repo would rebuild and
        reload the Worker mid-run (its [build] watches src/)."""
        log("building: cargo build --release -p r2mpu; scripts/build.sh")
        for cmd in (["cargo", "build", "--release", "-p", "r2mpu", "--quiet"], [str(REPO / "scripts/build.sh")]):
            if subprocess.run(cmd, cwd=REPO, stdout=subprocess.DEVNULL, timeout=1800).returncode != 0:
                sys.exit(f"bench/run: `{' '.join(cmd)}` failed")
        (self.tmp / "bin").mkdir()
        shutil.copy2(REPO / "target/release/r2mpu", self.tmp / "bin/r2mpu")
        self.cli = self.tmp / "bin/r2mpu"
        self.worker_dir = REPO
        if not self.args.in_repo:
            self.worker_dir = self.tmp / "ours-worker"
            # All of build/ (the modules and whatever else wrangler.toml points into it, e.g. assets)
            # but a build in progress (.tmp) and wasm-opt leftovers.
            shutil.copytree(REPO / "build", self.worker_dir / "build",
                            ignore=shutil.ignore_patterns(".tmp", "*.wasm-opt.wasm"))
            config = (REPO / "wrangler.toml").read_text()
            config = re.sub(r"^\[build\]\n(?:(?!\[).*\n)*", "", config, flags=re.M)  # built already
            (self.worker_dir / "wrangler.toml").write_text(config)
            (self.worker_dir / "node_modules").symlink_to(REPO / "node_modules")
        self.bundle_hash = self.worker_hash()
        git = lambda *a: subprocess.run(["git", *a], capture_output=True, text=True, cwd=REPO).stdout
        self.revision = git("rev-parse", "--short", "HEAD").strip()
        self.dirty = [line.split()[-1] for line in git("status", "--short", "--", "src", "api", "cli", "Cargo.toml",
                                                        "Cargo.lock", "wrangler.toml", "scripts").splitlines()]
        self.cli_version = subprocess.run([self.cli, "--version"], capture_output=True, text=True).stdout.strip()
        help_text = subprocess.run([self.cli, "upload", "--help"], capture_output=True, text=True).stdout
        # The --concurrency help's own default (not the next option's): a number, or "adaptive".
        m = re.search(r"--concurrency\b[^\[]*\[default: (\w+)", help_text)
        self.concurrency = m.group(1) if m else "unknown"

    def worker_hash(self):
        h = hashlib.sha256()
        for name in ("build/index.js", "build/index_bg.wasm"):
            h.update((self.worker_dir / name).read_bytes())
        return h.hexdigest()[:12]

    def start_workers(self):
        seed_dir = self.tmp / "seed-worker"
        shutil.copytree(self.args.seed, seed_dir, ignore=shutil.ignore_patterns("node_modules", ".wrangler"))
        (seed_dir / "node_modules").symlink_to(REPO / "node_modules")
        keyfile = self.tmp / "bench.key.json"
        jwks = subprocess.run([self.cli, "keygen", "--out", keyfile, "--quiet"], check=True, capture_output=True,
                              text=True).stdout.strip()
        envfile = self.tmp / "ours.env"
        # The /s3 surface's credentials (issue 21) are derived with this key.
        envfile.write_text(f"AUTH_JWKS='{jwks}'\nS3_CREDENTIALS_KEY='{os.urandom(32).hex()}'\n")
        self.token = subprocess.run([self.cli, "token", "--key", keyfile, "--sub", "bench", "--ttl", "2h"],
                                    check=True, capture_output=True, text=True).stdout.strip()
        self.seed = Wrangler("seed", seed_dir, free_port(), self.tmp / "seed-state", self.tmp / "seed-wrangler.log",
                             ready_path="/ready?action=none")
        self.ours = Wrangler("ours", self.worker_dir, free_port(), self.tmp / "ours-state", self.tmp / "ours-wrangler.log",
                             extra_args=["--env-file", str(envfile)], ready_path="/healthz")
        for w in (self.seed, self.ours):
            self.workers.append(w)
            w.start()
        self.cli_env = dict(os.environ, R2MPU_ENDPOINT=f"http://127.0.0.1:{self.ours.port}", R2MPU_TOKEN=self.token,
                            R2MPU_STATE_DIR=str(self.tmp / "r2mpu-state"))
        self.seed_env = {k: v for k, v in os.environ.items() if k != "TOKEN"}
        self.seed_env.update(WORKER_ENDPOINT=f"http://127.0.0.1:{self.seed.port}/", PARTSIZE=str(SEED_PART_SIZE))

    def restart_workers(self, phase):
        """Both Workers stopped and started again on their state, and warmed up, before a phase
        that follows another. Under `wrangler dev` every Durable Object an earlier phase woke
        stays in our workerd (the latency and part-cost phases wake hundreds: its RSS grew from
        229 to 466 MiB over 400 uploads); the guide's Worker has none to carry, and production
        evicts idle objects. Without this the WAN phase, which runs last, measured ours at 58 MB/s
        at 80 ms where a fresh Worker gave 66."""
        log(f"{phase}: restarting both Workers on their state")
        for w in (self.seed, self.ours):
            w.stop()
            w.start()
        self.warm_up()

    def stop_workers(self):
        for w in self.workers:
            try:
                w.stop()
            except Exception as e:  # keep stopping the others
                log(f"{w.name}: stopping failed: {e}")

    def make_file(self, size, name):
        path = self.tmp / "data" / name
        path.parent.mkdir(exist_ok=True)
        with open(path, "wb") as f:
            left = size
            while left:
                chunk = os.urandom(min(left, 16 * MIB))
                f.write(chunk)
                left -= len(chunk)
        return path

    def alias(self, source, name):
        """A symlink named `name` (mpuscript.py uses the file's base name as the key)."""
        link = self.tmp / "data" / name
        link.symlink_to(source)
        return link

    def wait_quiet(self, label):
        """Waits (up to --quiet-wait s) until the rest of the machine uses under 0.25 cores, so
        that other people's compilers do not end up in the figures; records what it found."""
        deadline, waited = time.monotonic() + self.args.quiet_wait, 0.0
        while True:
            b0, t0 = system_busy(), time.monotonic()
            time.sleep(1.0)
            load = (system_busy() - b0) / (time.monotonic() - t0)
            if load < 0.25 or time.monotonic() >= deadline:
                break
            waited += 1
        if waited >= 5:
            log(f"{label}: waited {waited:.0f} s for the machine to calm down (now {load:.2f} cores busy)")
        self.quiet_log.append((label, waited, load))

    def budget(self, nbytes, mbps=LOOPBACK_FLOOR_MBPS):
        """A client run's time box: a minute plus the bytes at a rate far below what is expected."""
        return 60 + nbytes / (mbps * MB)

    def retry_once(self, label, attempt):
        """Runs attempt(); if it times out, notes what was stuck and runs it once more (a second
        timeout ends the bench with the same report)."""
        try:
            r = attempt()
            if r.get("retried"):
                self.notes.append(f"{label}: the client retried {len(r['retried'])} request(s), its figures include "
                                  f"the wait: {'; '.join(r['retried'][:3])}")
            return r
        except Timeout as e:
            log(f"TIMEOUT {e}")
            self.notes.append(f"TIMEOUT, run repeated: {e}")
            (self.tmp / "timeouts.txt").open("a").write(f"{e}\n\n")
            return attempt()

    def upload_seed(self, path, label, env=None, floor=LOOPBACK_FLOOR_MBPS):
        self.wait_quiet(label)
        d, offset = CpuDelta(self.seed), self.seed.log_size()
        r = run_timed([self.python, self.args.seed / "mpuscript.py", path], env or self.seed_env, self.tmp, label,
                      self.budget(os.path.getsize(path), floor), self.seed)
        r["server"] = d.finish()
        r["requests"] = request_times(self.seed.log_since(offset))
        if "successfully completed" not in r["stdout"]:
            raise RuntimeError(f"{label}: mpuscript.py did not complete:\n{r['stdout']}\n{r['stderr']}")
        return r

    def upload_ours(self, path, key, label, extra=(), env=None, floor=LOOPBACK_FLOOR_MBPS):
        self.wait_quiet(label)
        d, offset = CpuDelta(self.ours), self.ours.log_size()
        r = run_timed([self.cli, "upload", path, key, *extra], env or self.cli_env, self.tmp, label,
                      self.budget(os.path.getsize(path), floor), self.ours)
        r["server"] = d.finish()
        r["requests"] = request_times(self.ours.log_since(offset))
        m = re.search(r"upload (\w+): (\d+) bytes in (\d+) parts of (\d+) bytes", r["stderr"])
        r["parts"], r["part_size"] = (int(m.group(3)), int(m.group(4))) if m else (None, None)
        return r

    def ensure_big(self):
        if not getattr(self, "big", None):
            self.big = self.make_file(self.args.size, "big.bin")

    def warm_up(self):
        path = self.make_file(8 * MIB, "warm.bin")
        self.upload_seed(path, "warm-seed")
        self.upload_ours(path, "warm.bin", "warm-ours")

    def keep_logs(self):
        """On failure, the wrangler logs and client outputs (not the data) survive the cleanup."""
        if self.args.keep:
            return
        dest = Path(tempfile.mkdtemp(prefix="r2mpu-bench-failed-"))
        for f in self.tmp.glob("*.txt"):
            shutil.copy2(f, dest)
        for f in self.tmp.glob("*.log"):
            shutil.copy2(f, dest)
        log(f"failed: wrangler logs and client outputs kept in {dest}")

    def check_reloads(self):
        """A Worker reloaded mid-run (wrangler watches src/) would make the figures meaningless."""
        for w in self.workers:
            text = w.log_since(w.ready_at)
            if re.search(r"restarting build|Reloading local server|Local server updated", text):
                self.notes.append(f"{w.name}'s wrangler rebuilt or reloaded the Worker during the run (someone "
                                  f"edited its sources?); treat these figures with suspicion")
        if self.worker_hash() != self.bundle_hash:
            self.notes.append("build/ changed during the run: the Worker measured may not be the one built")
        if self.args.in_repo:
            self.notes.append("ours ran from the repo (--in-repo), as wrangler.toml's [build] would have it")

