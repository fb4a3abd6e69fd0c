"""bench/run's code: r2mpu against the guide's seed, under `wrangler dev` on this machine. What it
measures and why is in cli.py's docstring (`bench/run --help`) and bench/README.md; this walks
through where each part lives.

One `Bench` object (cli.py) carries the run: the shared state and setup of `runner.Runner`, one
class per phase and `report.Report`, put together as bases of one class. A phase is a method of
its own class in its own module; it reads the state the runner set up (`self.args`, `self.tmp`,
`self.seed`/`self.ours` Workers, `self.cli`, `self.token`, the client environments, `self.big`)
and leaves its figures in `self.results[phase]` (and caveats in `self.notes`), where the report
finds them. Phases share nothing but that state: no phase imports another.

Bottom up (each imports only modules above it):

    util.py         sizes (parse_size, human), ports, log, median/percentile, link_name, /proc readers
                    (proc_cpu, proc_rchar, system_busy), REPO and the bench's constants
    workers.py      Wrangler: a `wrangler dev` in its own process group (start, ready, stop the
                    whole group); group_members; CpuDelta: CPU of its workerd processes (and the
                    machine) between two points; request_times from wrangler's log; foreign
    runner.py       run_timed (a client under GNU time, time-boxed), Timeout, describe_stuck (what
                    a stuck client and the Worker were doing); Runner: prerequisites, build and
                    freeze, start/restart/stop the Workers, test files, wait_quiet, budget,
                    retry_once, upload_seed/upload_ours, warm_up, check_reloads, keep_logs
    bundle.py       phase `bundle`: the Worker's gzip size
    upload.py       phase `upload`: mpuscript.py vs `r2mpu upload` on loopback
    download.py     phase `download`: curl vs `r2mpu download` of the uploads' objects
    rss.py          phase `rss`: peak RSS at a smaller size
    latency.py      phase `latency`: create / 1-byte part / complete round trips
    part_cost.py    phase `part-cost`: a part's cost at part 1 and at part 10,000 (issue 11)
    jwt.py          phase `jwt`: what verifying the bearer token costs a request (issue 11)
    resume.py       phase `resume`: bytes re-sent after a SIGKILL at half the parts
    content_md5.py  phase `content-md5`: what --verify-parts costs (issue 12; only when asked for)
    tus.py          phase `tus`: tus-js-client vs `r2mpu upload` (issue 10)
    hashing.py      phase `hashing`: md5sum and a perf profile of the CLI's upload (issue 11)
    links.py        Links: a client run through a fresh bench/link.py (LinkProcess), the
                    multipart-ETag checks of uploaded objects; for wan and sweep
    wan.py          phase `wan`: both sides through bench/link.py at each RTT (issue 11); it
                    ends by asking the report for the chart (self.write_chart)
    direct.py       phase `direct` (issue 22): `r2mpu upload` with direct parts vs --via-worker,
                    loopback and through two links (to the Worker, to the S3 endpoint), the S3
                    endpoint in a second wrangler dev on the same state so its CPU is its own
    sweep.py        phase `sweep` (issue 23): every size on every link, median and spread;
                    only when asked for (--only sweep), it takes hours at its defaults
    chart.py        wan_svg, ratio_svg: the WAN and sweep charts, plain SVGs
    sweep_report.py SweepReport: the sweep's rows, per-run figures and chart
    report.py       Report: the table with each target and PASS/MISS, the per-run details, the
                    machine and versions, RESULTS.md, the WAN chart's file
    cli.py          the command line (argparse), Bench, and main: the phases in their order, with
                    the Workers restarted between them

A new phase: a module with a class and its method (results in `self.results`), a base of `Bench`
and an entry in main's list and --only's default (cli.py), and its rows in report.py.
"""
