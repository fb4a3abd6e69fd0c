"""Phase `hashing` (issue 11's client CPU): md5sum of the same file, and `r2mpu upload` profiled
with perf (when installed) on a copy of the CLI with symbols, its samples split into MD5 and
the rest."""

import os
import re
import shutil
import subprocess

from .util import REPO, log, median
from .runner import run_timed


class Hashing:
    def hashing(self):
        """What MD5 costs the client: `md5sum` on the same (page-cached) file, and the CLI's upload
        profiled with perf (when installed): every millisecond of the CLI's CPU, its threads' and
        the kernel's on their behalf, sampled and split into MD5 and everything else, so the CPU
        without hashing is measured on the very binary, not a build that skips MD5."""
        self.ensure_big()
        out = {"md5sum": [], "profiles": []}
        perf = shutil.which("perf")
        cli = self.symbols_cli() if perf else None
        for i in range(self.args.runs):
            self.wait_quiet(f"md5sum-{i}")
            out["md5sum"].append(run_timed(["md5sum", self.big], None, self.tmp, f"md5sum-{i}",
                                           self.budget(self.args.size)))
            if perf:
                label = f"profile-{i}"
                out["profiles"].append(self.retry_once(label, lambda: self.profile_upload(perf, cli, label)))
        log(f"hashing: md5sum {median([r['cpu'] for r in out['md5sum']]):.2f} s CPU; "
            + (f"the CLI's upload: {median([r['md5_ms'] for r in out['profiles']]) / 1000:.2f} s CPU in MD5, "
               f"{median([r['other_ms'] for r in out['profiles']]) / 1000:.2f} s in the rest" if perf else
               "perf is not installed (Debian's linux-perf), so the CLI's CPU without hashing is not measured"))
        self.results["hashing"] = out

    def symbols_cli(self):
        """The CLI as measured, with its symbols (the release profile strips them) for perf."""
        target = REPO / "target/bench-symbols"
        log("building the CLI with symbols for the profile: cargo build --release -p r2mpu --target-dir " + str(target))
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "r2mpu", "--target-dir", str(target)], cwd=REPO,
                       check=True, env=dict(os.environ, CARGO_PROFILE_RELEASE_STRIP="false"))
        return target / "release/r2mpu"

    def profile_upload(self, perf, cli, label):
        """`r2mpu upload` of the big file under `perf record`, a cpu-clock sample per millisecond of
        CPU; returns the milliseconds in MD5 (md5-asm's compression function and its callers)
        and in everything else, from `perf report`'s sample counts for the CLI's threads."""
        self.wait_quiet(label)
        data = self.tmp / f"{label}.perf"
        cmd = [perf, "record", "-q", "-e", "cpu-clock", "-c", "1000000", "-o", data, "--",
               cli, "upload", self.big, f"{label}.bin"]
        r = run_timed(cmd, self.cli_env, self.tmp, label, self.budget(self.args.size), self.ours)
        report = subprocess.run([perf, "report", "-i", data, "--stdio", "--comm", "r2mpu", "--sort", "sym", "-n"],
                                capture_output=True, text=True, check=True).stdout
        r["md5_ms"] = r["other_ms"] = 0
        r["top"] = []
        for line in report.splitlines():
            m = re.match(r"\s*([\d.]+)%\s+(\d+)\s+\[(.)\]\s+(.*\S)", line)
            if not m:
                continue
            samples, symbol = int(m.group(2)), f"[{m.group(3)}] {m.group(4)}"
            r["md5_ms" if re.search(r"md5", symbol, re.I) else "other_ms"] += samples
            if len(r["top"]) < 6:
                r["top"].append(f"{m.group(1)}% {symbol[:60]}")
        data.unlink()
        return r

