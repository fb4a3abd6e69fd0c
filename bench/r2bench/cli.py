"""Issues 3, 10 and 11's benchmark: r2mpu (Rust Worker + `r2mpu` CLI) against the guide's seed (JS
Worker + Python `mpuscript.py`), side by side under `wrangler dev` on this machine, on loopback
and through an emulated long link (bench/link.py).

    bench/run --size 1GiB --runs 3 --write

Starts both Workers on free loopback ports (own process groups, fresh --persist-to dirs, always
stopped at the end), makes a random file, then measures, alternating seed/ours and taking the
median of --runs: upload wall time and MB/s, workerd CPU per GiB, uploader CPU and peak RSS,
download MB/s (outputs compared byte for byte with the input), create/complete latency over
keep-alive connections, bytes re-sent by a resumed upload after SIGKILL at ~50%, and the
Worker's gzip bundle size; tus-js-client against `r2mpu upload`; md5sum beside the CLI's CPU;
`aws s3 cp` through /s3 against `r2mpu upload`; then through bench/link.py at 20/80/200 ms RTT
with a 256 KiB window, upload (mpuscript.py vs r2mpu) and download (curl vs r2mpu); and
`r2mpu upload` with direct parts (straight to local R2's S3 endpoint) against `--via-worker`, on
loopback and at 80 ms, with the Worker's CPU and the S3 endpoint's apart. Every client run is time-boxed. Prints a table with each
target and PASS/MISS; --write also puts it in bench/RESULTS.md and the WAN chart in
bench/wan.svg. Python 3 standard library only; the seed client runs with .venv's python (it needs
`requests`). Needs GNU time as /usr/bin/time: `apt-get install -y time`.
"""

import argparse
import shutil
import signal
import sys
import time
from pathlib import Path

from .util import GIB, MIB, REPO, log, parse_size
from .runner import Runner
from .bundle import Bundle
from .upload import Upload
from .content_md5 import ContentMd5
from .download import Download
from .rss import Rss
from .latency import Latency
from .part_cost import PartCost
from .jwt import Jwt
from .resume import Resume
from .tus import Tus
from .s3 import S3
from .direct import Direct
from .hashing import Hashing
from .links import Links
from .wan import Wan
from .sweep import Sweep
from .report import Report
from .sweep_report import SweepReport
from .load import Load
from .load_report import LoadReport


class Bench(Runner, Links, Bundle, Upload, ContentMd5, Download, Rss, Latency, PartCost, Jwt, Resume, Tus, S3, Hashing,
            Wan, Direct, Sweep, Load, Report, SweepReport, LoadReport):
    """The whole bench as one object: the runner's shared state and setup, every phase's method
    and the report (see the package's docstring)."""


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--size", type=parse_size, default=GIB, help="file size (default 1GiB; 256MiB for a quick run)")
    p.add_argument("--runs", type=int, default=3, help="runs per side; the median is reported (default 3)")
    p.add_argument("--seed", type=Path, default=REPO.parent / "shared/reference/seed-worker",
                   help="the seed Worker folder (default <repo>/../shared/reference/seed-worker)")
    p.add_argument("--rss-small", type=parse_size, default=256 * MIB,
                   help="the smaller file for the RSS-vs-size check (default 256MiB)")
    p.add_argument("--latency-iters", type=int, default=100, help="create/part/complete rounds per side (default 100)")
    p.add_argument("--part-cost-parts", type=int, default=10_000,
                   help="parts of the part-cost upload (default 10000, R2's most)")
    p.add_argument("--part-cost-window", type=int, default=100,
                   help="parts measured one at a time at its start and at its end (default 100)")
    p.add_argument("--jwt-iters", type=int, default=300, help="requests per side for the JWT cost (default 300)")
    p.add_argument("--only", default="bundle,upload,download,rss,latency,part-cost,jwt,resume,tus,s3,hashing,wan,direct",
                   help="comma-separated phases to run (default all but content-md5, issue 12's cost of "
                        "Content-MD5 on every part; sweep, issue 23's sizes x links, hours at its defaults; and load, "
                        "issue 23's 16/32/64 concurrent clients)")
    p.add_argument("--wan-rtts", type=lambda t: [int(x) for x in t.split(",")], default=[20, 80, 200],
                   help="round-trip times (ms) of the WAN phase's emulated links (default 20,80,200)")
    p.add_argument("--wan-window", type=parse_size, default=256 * 1024,
                   help="per-connection window of the emulated links (default 256KiB)")
    p.add_argument("--wan-up-size", type=parse_size, default=250 * MIB,
                   help="file uploaded through each link (default 250MiB: 25 of the guide's 10 MiB parts, one "
                        "for each of its 25 threads, its best case)")
    p.add_argument("--wan-down-size", type=parse_size, default=64 * MIB,
                   help="object downloaded through each link (default 64MiB: curl's one connection moves "
                        "256 KiB per 200 ms RTT, 1.3 MB/s, so that is 51 s)")
    p.add_argument("--wan-runs", type=int, default=2,
                   help="runs per side, RTT and direction; the median is reported (default 2)")
    p.add_argument("--direct-rtts", type=lambda t: [int(x) for x in t.split(",")], default=[80],
                   help="the direct phase's links beside loopback: RTTs in ms through bench/link.py with --wan-window "
                        "(default 80; its loopback runs use the --size file)")
    p.add_argument("--direct-wan-size", type=parse_size, default=64 * MIB,
                   help="file uploaded through each of the direct phase's links (default 64MiB)")
    sizes = lambda t: [parse_size(x) for x in t.split(",")]
    p.add_argument("--sweep-sizes", type=sizes, default=[16 * MIB, 64 * MIB, 256 * MIB, GIB, 4 * GIB],
                   help="the sweep phase's file sizes (default 16MiB,64MiB,256MiB,1GiB,4GiB)")
    p.add_argument("--sweep-rtts", type=lambda t: [int(x) for x in t.split(",")], default=[0, 20, 80, 200],
                   help="the sweep phase's links: RTTs in ms through bench/link.py with --wan-window, 0 for "
                        "loopback (default 0,20,80,200)")
    p.add_argument("--sweep-runs", type=int, default=3,
                   help="runs per side, direction and point of the sweep; median and spread are reported (default 3)")
    p.add_argument("--sweep-wan-max", type=parse_size, default=GIB,
                   help="the largest size the sweep sends through a link (default 1GiB: 4 GiB at 200 ms takes the "
                        "guide's client a quarter of an hour a run)")
    p.add_argument("--load-clients", type=lambda t: [int(x) for x in t.split(",")], default=[16, 32, 64],
                   help="the load phase's numbers of concurrent clients per side (default 16,32,64)")
    p.add_argument("--load-uploads", type=int, default=2,
                   help="uploads (and read-backs) per client in the load phase (default 2)")
    p.add_argument("--tus-size", type=parse_size, default=128 * MIB,
                   help="file uploaded by tus-js-client and by r2mpu upload in the tus phase (default 128MiB)")
    p.add_argument("--tus-chunk", type=parse_size, default=8 * MIB,
                   help="tus-js-client's chunk size in the tus phase (default 8MiB)")
    p.add_argument("--chart", type=Path, default=None,
                   help="where the WAN chart goes (default bench/wan.svg with --write, else the temp dir)")
    p.add_argument("--quiet-wait", type=float, default=90,
                   help="before each measured run, wait up to this many seconds for the rest of the machine to "
                        "go (nearly) idle (default 90; 0 to not wait)")
    p.add_argument("--in-repo", action="store_true",
                   help="run our Worker's wrangler dev in the repo (it then rebuilds and reloads whenever src/ "
                        "changes) instead of from a frozen copy of build/ and wrangler.toml")
    p.add_argument("--write", action="store_true", help="write bench/RESULTS.md")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, state) for inspection")
    args = p.parse_args()
    args.seed = args.seed.resolve()
    phases = set(args.only.split(","))
    if phases & {"download", "hashing"}:
        phases.add("upload")  # downloads what the uploads made; hashing is compared with them

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    bench = Bench(args)
    bench.prerequisites()
    started = time.monotonic()
    try:
        bench.build()
        if "bundle" in phases:
            bench.bundle()
        bench.start_workers()
        bench.warm_up()
        ran = False
        for phase, run in (("upload", bench.uploads), ("download", bench.downloads), ("rss", bench.rss_small),
                           ("latency", bench.latency), ("part-cost", bench.part_cost), ("jwt", bench.jwt_cost),
                           ("resume", bench.resume), ("content-md5", bench.content_md5), ("tus", bench.tus),
                           ("s3", bench.s3), ("hashing", bench.hashing), ("wan", bench.wan), ("direct", bench.direct),
                           ("sweep", bench.sweep), ("load", bench.load)):
            if phase not in phases:
                continue
            # Downloads fetch what the uploads put, and hashing is compared with them: same Workers.
            if ran and phase not in ("download", "rss", "hashing"):
                bench.restart_workers(phase)
            run()
            ran = True
        bench.check_reloads()
    except BaseException:
        bench.keep_logs()
        raise
    finally:
        bench.stop_workers()
        if args.keep:
            log(f"kept {bench.tmp}")
        else:
            shutil.rmtree(bench.tmp, ignore_errors=True)
    table = bench.report()
    elapsed = time.monotonic() - started
    log(f"done in {elapsed / 60:.1f} min")
    if args.write:
        bench.write(table, elapsed)

