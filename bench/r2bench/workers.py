"""The Workers under test: a `wrangler dev` in its own process group (`Wrangler`: started on a
loopback port with its own --persist-to, ready when it answers, stopped with its whole group),
what its processes are (the proxy workerd on the public port, the runtime workerd, node), and
the CPU they use between two points (`CpuDelta`); `request_times` reads wrangler's per-request
log lines, `foreign` what the rest of the machine used during a client run."""

import http.client
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from .util import ANSI, REPO, free_port, log, proc_cpu, system_busy


def group_members(pgid):
    """(pid, comm, cmdline) of every live process in a process group."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            comm = stat[stat.index("(") + 1 : stat.rindex(")")]
            if int(stat.rsplit(")", 1)[1].split()[2]) != pgid:  # field 5: pgrp
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            members.append((int(entry), comm, cmdline))
        except (OSError, ValueError, IndexError):
            continue
    return members


class Wrangler:
    def __init__(self, name, cwd, port, persist, log_path, extra_args=(), ready_path="/"):
        self.name, self.cwd, self.port, self.persist, self.log_path = name, cwd, port, persist, log_path
        self.extra_args, self.ready_path = list(extra_args), ready_path
        self.proc = None

    def start(self):
        cmd = [str(REPO / "node_modules/.bin/wrangler"), "dev", "--ip", "127.0.0.1", "--port", str(self.port),
               "--persist-to", str(self.persist), "--show-interactive-dev-session=false",
               "--inspector-port", str(free_port()), *self.extra_args]
        # node_modules/.bin first: the pinned Node.js wrangler needs (package.json) lives there.
        env = dict(os.environ, WRANGLER_SEND_METRICS="false", CI="true",
                   PATH=f"{REPO / 'node_modules/.bin'}:{os.environ.get('PATH', '')}")
        self.log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, cwd=self.cwd, env=env, stdin=subprocess.DEVNULL, stdout=self.log_file,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name}: wrangler dev exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", self.ready_path)
                status = conn.getresponse().status
                conn.close()
                if status < 500:
                    break
            except OSError:
                pass
            time.sleep(0.25)
        else:
            raise RuntimeError(f"{self.name}: wrangler dev not ready after 120 s:\n{self.log_tail()}")
        self.ready_at = self.log_size()
        log(f"{self.name}: ready on :{self.port}; workerd pids {self.workerd_pids()}")

    def log_tail(self, lines=30):
        try:
            return "\n".join(Path(self.log_path).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def log_size(self):
        return os.path.getsize(self.log_path)

    def log_since(self, offset):
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return ANSI.sub("", f.read().decode(errors="replace"))

    def workerd_pids(self):
        return sorted(pid for pid, comm, _ in group_members(self.proc.pid) if comm == "workerd")

    def roles(self):
        """pid -> `proxy` (the workerd on the public port) or `runtime` (the Worker, R2, DOs)."""
        out = {}
        for pid, comm, cmdline in group_members(self.proc.pid):
            if comm == "workerd":
                out[pid] = "proxy" if f"entry=127.0.0.1:{self.port}" in cmdline else "runtime"
            else:
                out[pid] = "node"  # wrangler (node) and its esbuild service
        return out

    def cpu(self):
        """CPU seconds by process of this group: {pid: (role, seconds)}."""
        return {pid: (role, proc_cpu(pid)) for pid, role in self.roles().items()}

    def stop(self):
        if not self.proc:
            return
        pgid = self.proc.pid
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and group_members(pgid):
                time.sleep(0.1)
                self.proc.poll()
            if not group_members(pgid):
                break
        self.proc.poll()
        left = group_members(pgid)
        if left:
            log(f"{self.name}: WARNING: processes left in group {pgid}: {left}")
        self.log_file.close()
        self.proc = None


class CpuDelta:
    """CPU used by a Worker's processes (and the machine) between two points."""

    def __init__(self, worker):
        self.worker = worker
        self.before = worker.cpu()
        self.busy_before = system_busy()
        self.t0 = time.monotonic()

    def finish(self):
        after = self.worker.cpu()
        self.wall = time.monotonic() - self.t0
        self.system_busy = system_busy() - self.busy_before
        self.by_role = {}
        self.lost = []
        for pid, (role, end) in after.items():
            start = self.before.get(pid, (role, None))[1]
            if start is None or end is None:
                self.lost.append(pid)
                continue
            self.by_role[role] = self.by_role.get(role, 0.0) + end - start
        self.lost += [pid for pid in self.before if pid not in after]
        self.workerd = self.by_role.get("proxy", 0.0) + self.by_role.get("runtime", 0.0)
        return self


def foreign(r):
    """CPU seconds the rest of the machine used during a client run: the busy time of all cores
    less the Worker's processes and the client."""
    sv = r["server"]
    return sv.system_busy - sum(sv.by_role.values()) - r["cpu"]


def request_times(log_text):
    """Milliseconds per request from wrangler's `[wrangler:info] PUT /path 200 OK (123ms)` lines,
    by method: {"PUT": [...], ...}. Only PUTs carry part bodies, on either side."""
    out = {}
    for m in re.finditer(r"\[wrangler:info\] (\w+) \S+ \d+ [^(]*\((\d+)ms\)", log_text):
        out.setdefault(m.group(1), []).append(int(m.group(2)))
    return out

