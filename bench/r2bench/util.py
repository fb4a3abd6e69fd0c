"""Small helpers every other module uses: sizes (`parse_size`, `human`), free loopback ports,
the bench's log line, medians and nearest-rank percentiles, and /proc readers (a process's CPU
and rchar, the machine's busy CPU). Also REPO (the repository bench/ is in) and the constants the
phases share: the seed's part size and threads, and the time boxes' floor rates."""

import argparse
import math
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
MIB = 1 << 20
GIB = 1 << 30
MB = 1_000_000
CLK_TCK = os.sysconf("SC_CLK_TCK")
SEED_PART_SIZE = 10 * MIB  # mpuscript.py's default (10 * 1024 * 1024), as in the guide
SEED_THREADS = 25  # mpuscript.py's ThreadPoolExecutor(25)
# Client runs are time-boxed at a minute plus their bytes at this rate: loopback runs go at
# 45-85 MB/s, so only a stuck run comes near it.
LOOPBACK_FLOOR_MBPS = 8
TUS_FLOOR_MBPS = 1  # tus ran at 3 MB/s on a busy machine (2026-11-26)
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def parse_size(text):
    """`1GiB`, `256MiB`, `512M` (binary), or plain bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B)?\s*", text, re.I)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 1GiB, 256MiB)")
    scale = {"": 1, "K": 1 << 10, "M": MIB, "G": GIB, "T": 1 << 40}[m.group(2).upper()]
    return int(float(m.group(1)) * scale)


def human(n):
    for unit, size in (("GiB", GIB), ("MiB", MIB), ("KiB", 1024)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} B"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def median(values):
    return statistics.median(values) if values else float("nan")


def percentile(values, p):
    """Nearest rank: the smallest sample with at least p% of the samples at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def proc_cpu(pid):
    """utime + stime of a process (all its threads), in seconds; None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def proc_rchar(pid):
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                if line.startswith("rchar:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def same_bytes(a, b):
    """Whether two files hold the same bytes (cmp, time-boxed)."""
    return subprocess.run(["cmp", "-s", a, b], timeout=600).returncode == 0


def system_busy():
    """Busy CPU seconds of the whole machine (all cores), from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / CLK_TCK


def node_path():
    """PATH with node_modules/.bin first: the Node.js that package.json pins lives there."""
    return f"{REPO / 'node_modules/.bin'}:{os.environ.get('PATH', '')}"


def link_name(rtt):
    """How the sweep names a link: `loopback` (RTT 0), else its RTT."""
    return "loopback" if rtt == 0 else f"{rtt} ms"
