"""The report: the table (each figure, ours against the seed's, the target and PASS/MISS), the
per-run details, the machine and versions, RESULTS.md (--write; a hand-written `## Findings`
section survives), and the WAN chart's file. It reads only `self.results`, `self.notes` and the
runner's state: it imports no phase."""

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from .util import GIB, MB, MIB, REPO, SEED_PART_SIZE, SEED_THREADS, human, log, median, node_path
from .workers import foreign
from .chart import wan_svg


class Report:
    def table(self):
        size, R = self.args.size, self.results
        rows = []

        def row(metric, seed, ours, ratio, target, ok):
            rows.append((metric, seed, ours, ratio, target, "" if ok is None else ("PASS" if ok else "MISS")))

        if "upload" in R:
            up = R["upload"]
            mbs = {s: median([size / r["wall"] / MB for r in up[s]]) for s in up}
            walls = {s: median([r["wall"] for r in up[s]]) for s in up}
            spread = {s: f"{min(size / r['wall'] / MB for r in up[s]):.0f}-{max(size / r['wall'] / MB for r in up[s]):.0f}"
                      for s in up}
            ratio = mbs["ours"] / mbs["seed"]
            row("upload wall (s)", f"{walls['seed']:.2f}", f"{walls['ours']:.2f}", "", "", None)
            row("upload MB/s (range)", f"{mbs['seed']:.1f} ({spread['seed']})", f"{mbs['ours']:.1f} ({spread['ours']})",
                f"{ratio:.2f}x", ">= 0.95x", ratio >= 0.95)
            cpu = {s: median([r["server"].workerd / (size / GIB) for r in up[s]]) for s in up}
            ratio = cpu["ours"] / cpu["seed"]
            row("workerd CPU s/GiB (upload)", f"{cpu['seed']:.2f}", f"{cpu['ours']:.2f}", f"{ratio:.2f}x", "<= 1.05x",
                ratio <= 1.05)
            for role in ("proxy", "runtime"):
                v = {s: median([r["server"].by_role.get(role, 0) / (size / GIB) for r in up[s]]) for s in up}
                row(f"  of which {role} workerd", f"{v['seed']:.2f}", f"{v['ours']:.2f}",
                    f"{v['ours'] / v['seed']:.2f}x" if v["seed"] else "", "", None)
            ccpu = {s: median([r["cpu"] / (size / GIB) for r in up[s]]) for s in up}
            ratio = ccpu["ours"] / ccpu["seed"]
            # Issue 11 restated issue 3's <= 0.5x for the CLI without hashing (a row of the hashing
            # phase): the guide's client computes no MD5 at all.
            row("client CPU s/GiB (upload; ours hashes every byte)", f"{ccpu['seed']:.2f}", f"{ccpu['ours']:.2f}",
                f"{ratio:.2f}x", "", None)
            rss_big = {s: max(r["rss"] for r in up[s]) for s in up}
            if "rss_small" in R:
                small = R["rss_small"]
                growth = rss_big["ours"] - small["ours"]["rss"]
                ok = rss_big["ours"] <= 64 * MIB and growth <= 8 * MIB
                row(f"client peak RSS MiB ({human(small['size'])} -> {human(size)})",
                    f"{small['seed']['rss'] / MIB:.0f} -> {rss_big['seed'] / MIB:.0f}",
                    f"{small['ours']['rss'] / MIB:.0f} -> {rss_big['ours'] / MIB:.0f}",
                    f"{rss_big['ours'] / rss_big['seed']:.2f}x", "<= 64 MiB, growth <= 8 MiB", ok)
            else:
                row(f"client peak RSS MiB ({human(size)})", f"{rss_big['seed'] / MIB:.0f}",
                    f"{rss_big['ours'] / MIB:.0f}", "", "<= 64 MiB", rss_big["ours"] <= 64 * MIB)
        if "download" in R:
            dn = R["download"]
            mbs = {s: median([size / r["wall"] / MB for r in dn[s]]) for s in dn}
            ident = all(r["identical"] for s in dn for r in dn[s])
            ratio = mbs["ours"] / mbs["seed"]
            row("download MB/s (curl vs r2mpu)", f"{mbs['seed']:.1f}", f"{mbs['ours']:.1f}", f"{ratio:.2f}x",
                ">= 0.95x, cmp identical", ratio >= 0.95 and ident)
            cpu = {s: median([r["server"].workerd / (size / GIB) for r in dn[s]]) for s in dn}
            row("workerd CPU s/GiB (download)", f"{cpu['seed']:.2f}", f"{cpu['ours']:.2f}",
                f"{cpu['ours'] / cpu['seed']:.2f}x", "", None)
            ccpu = {s: median([r["cpu"] / (size / GIB) for r in dn[s]]) for s in dn}
            row("client CPU s/GiB (download)", f"{ccpu['seed']:.2f}", f"{ccpu['ours']:.2f}",
                f"{ccpu['ours'] / ccpu['seed']:.2f}x", "", None)
        if "latency" in R:
            L = R["latency"]
            # Issue 11's targets on the p50s.
            targets = {"create": 2.0, "put": 1.5, "complete": 2.0}
            for op, label in (("create", "create"), ("put", "1-byte part"), ("complete", "complete (1 part)")):
                s, o = L["seed"][op], L["ours"][op]
                ratio = o["p50"] / s["p50"]
                row(f"{label} p50 / p99 ms (n={o['n']})", f"{s['p50']:.1f} / {s['p99']:.1f}",
                    f"{o['p50']:.1f} / {o['p99']:.1f}", f"{ratio:.2f}x / {o['p99'] / s['p99']:.2f}x",
                    f"p50 <= {targets[op]}x", ratio <= targets[op])
            s, o = L["seed"]["workerd_cpu_ms_per_round"], L["ours"]["workerd_cpu_ms_per_round"]
            row("workerd CPU ms per create + part + complete", f"{s:.1f}", f"{o:.1f}", f"{o / s:.2f}x", "", None)
        if "part_cost" in R:
            pc = R["part_cost"]
            a, b = pc["start"], pc["end"]
            label = lambda w: f"parts {w['first']}-{w['last']}"
            # Ours only: the ratio column is the last window's figure over the first's.
            row(f"1-byte part p50 / p99 ms, {label(a)} -> {label(b)}", "-",
                f"{a['p50']:.1f} / {a['p99']:.1f} -> {b['p50']:.1f} / {b['p99']:.1f}", f"{b['p50'] / a['p50']:.2f}x",
                "", None)
            ratio = b["cpu_ms"] / a["cpu_ms"] if a["cpu_ms"] else float("nan")
            row(f"workerd CPU ms per part, {label(a)} -> {label(b)}", "-", f"{a['cpu_ms']:.2f} -> {b['cpu_ms']:.2f}",
                f"{ratio:.2f}x", "<= 1.2x", ratio <= 1.2)
            ratio = b["bytes"] / a["bytes"]
            row(f"part response bytes, part {a['first']} -> part {b['last']}", "-", f"{a['bytes']} -> {b['bytes']}",
                f"{ratio:.2f}x", "<= 1.2x", ratio <= 1.2)
        if "jwt_cost" in R:
            j = R["jwt_cost"]
            row(f"JWT verify per request: p50 ms / workerd CPU ms (n={j['n']}; with minus without a token)",
                "-", f"{j['with']['p50'] - j['without']['p50']:.2f} / {j['with']['cpu_ms'] - j['without']['cpu_ms']:.2f}",
                "", "", None)
        if "resume" in R:
            r = R["resume"]
            ok = r["completed"] and r["bound"] is not None and r["resent_bytes"] <= r["bound"]
            bound = (f"<= {r['bound'] // MIB} MiB ({r['concurrency']} in flight x {human(r['part_size'])})"
                     if r["bound"] else "<= parts in flight (not reported)")
            row(f"resume: re-sent after SIGKILL at {r['killed_at_parts']}/{r['parts']} parts", "-",
                f"{r['resent_bytes'] / MIB:.1f} MiB", "", bound, ok)
        if "bundle" in R:
            b = R["bundle"]
            row("bundle gzip KiB (wasm + js)", "-", f"{b['gz'] / 1024:.1f}", "", "<= 300 KiB", b["gz"] <= 300 * 1024)
        self.issue11_rows(row)
        self.sweep_rows(row)
        self.load_rows(row)
        return rows

    def render(self, rows):
        head = ("metric", "seed (JS + python)", "ours (Rust + r2mpu)", "ours/seed", "target", "")
        widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(6)]
        line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"
        return "\n".join([line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])

    def details(self):
        """Per-run figures and context, for RESULTS.md."""
        R, size, out = self.results, self.args.size, []
        out += self.issue11_details()
        out += self.sweep_details()
        out += self.load_details()
        if "upload" in R:
            out.append("Per run (upload): wall s / MB/s / workerd CPU s (proxy + runtime) / node CPU s / client CPU s "
                       "(user + sys) / client peak RSS / whole-machine busy CPU s during the run")
            for side in ("seed", "ours"):
                for i, r in enumerate(R["upload"][side]):
                    sv = r["server"]
                    out.append(f"- {side} {i + 1}: {r['wall']:.2f} s, {size / r['wall'] / MB:.1f} MB/s, workerd "
                               f"{sv.workerd:.2f} s ({sv.by_role.get('proxy', 0):.2f} + {sv.by_role.get('runtime', 0):.2f}), "
                               f"node {sv.by_role.get('node', 0):.2f} s, client {r['cpu']:.2f} s ({r['user']:.2f} + "
                               f"{r['sys']:.2f}), RSS {r['rss'] / MIB:.0f} MiB, machine busy {sv.system_busy:.1f} s "
                               f"(others {foreign(r):.1f} s)"
                               + (f", lost pids {sv.lost}" if sv.lost else ""))
            out.append("")
            out.append("Part PUTs as wrangler logged them (time from request start to response, per part): "
                       "median / max ms, and MB/s per connection at the median")
            for side, ps in (("seed", SEED_PART_SIZE), ("ours", R["upload"]["ours"][0].get("part_size") or 16 * MIB)):
                ms = [t for r in R["upload"][side] for t in r["requests"].get("PUT", [])]
                if ms:
                    out.append(f"- {side}: {len(ms)} parts of {human(ps)}: {median(ms):.0f} / {max(ms)} ms, "
                               f"{ps / (median(ms) / 1000) / MB:.1f} MB/s per connection")
        if "download" in R:
            out.append("")
            out.append("Per run (download): MB/s / workerd CPU s / client CPU s / identical to the input")
            for side in ("seed", "ours"):
                for i, r in enumerate(R["download"][side]):
                    out.append(f"- {side} {i + 1}: {size / r['wall'] / MB:.1f} MB/s, workerd {r['server'].workerd:.2f} s, "
                               f"client {r['cpu']:.2f} s, identical={r['identical']}"
                               + (f", CLI: {r['verified']}" if r.get("verified") else ""))
        if "resume" in R:
            r = R["resume"]
            out.append("")
            out.append(f"Resume: killed (SIGKILL) when the server held {r['killed_at_parts']} of {r['parts']} parts of "
                       f"{human(r['part_size'])}; 1 s later it held {r['held_after']} ({r['held_bytes'] / MIB:.0f} MiB). "
                       f"The killed CLI had read {r['rchar_at_kill']} bytes (/proc/PID/io rchar; {r['rchar_baseline']} "
                       f"of them at startup, not from the file), so {r['in_flight_bytes']} bytes of part bodies were in "
                       f"flight and lost. The rerun printed "
                       f"`{r['resumed_line']}` and `sent: {r['rerun_sent_parts']} parts` ({r['missing_parts']} were "
                       f"missing: {r['redundant_parts']} part(s) re-sent that the server already had) and completed "
                       f"in {r['rerun_wall']:.1f} s.")
        if "bundle" in R:
            b = R["bundle"]
            out.append("")
            out.append(f"Bundle: index_bg.wasm {b['wasm']} B ({b['wasm_gz']} B gzip), index.js {b['js']} B "
                       f"({b['js_gz']} B gzip); both concatenated: {b['gz']} B gzip = {b['gz'] / 1024:.1f} KiB "
                       f"(zlib level 6, as tests/deploy.rs and wrangler measure).")
        return "\n".join(out)

    def machine(self):
        cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
        # node_modules/.bin first, as for wrangler dev: wrangler needs the Node.js pinned there.
        version = lambda cmd: subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=60,
                                             env=dict(os.environ, PATH=node_path())).stdout.strip() or "?"
        workerd = json.loads((REPO / "node_modules/workerd/package.json").read_text())["version"]
        git, dirty = self.revision, " ".join(self.dirty)
        free = subprocess.run(["free", "-g"], capture_output=True, text=True).stdout.rstrip()
        return "\n".join([
            f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
            f"- machine: `nproc` {os.cpu_count()}, CPU {cpu}, kernel {platform.release()}",
            "- `free -g`:\n\n```\n" + free + "\n```\n",
            f"- wrangler {version([str(REPO / 'node_modules/.bin/wrangler'), '--version']).splitlines()[-1]}, "
            f"workerd {workerd}, node {version(['node', '--version'])}, {self.cli_version}, "
            f"python {version([str(self.python), '--version']).split()[-1]} (requests), "
            f"{version(['curl', '--version']).splitlines()[0].split(' (')[0]}",
            f"- measured: the working tree at {git}{' with uncommitted changes to ' + dirty if dirty else ' (clean)'}, built "
            f"by `cargo build --release -p r2mpu` and `scripts/build.sh`, then frozen: the CLI binary and "
            f"build/index.js + index_bg.wasm (sha256 {self.bundle_hash}) copied to a temp dir and run from there"
            + (" (here: --in-repo, run from the repo)" if self.args.in_repo else ""),
            f"- file: {human(self.args.size)} of random bytes (page-cached); {self.args.runs} runs, median, "
            f"seed and ours alternating; latency: {self.args.latency_iters} rounds after 3 warm-up rounds",
            f"- before each measured run the bench waited for the rest of the machine to idle (< 0.25 cores): "
            f"{sum(1 for q in self.quiet_log if q[1] >= 1)} of {len(self.quiet_log)} runs waited, "
            f"{sum(q[1] for q in self.quiet_log):.0f} s in all; "
            f"{sum(1 for q in self.quiet_log if q[2] >= 0.25)} started on a busy machine anyway",
            f"- seed: mpuscript.py, {human(SEED_PART_SIZE)} parts, {SEED_THREADS} threads (one new connection per "
            f"part); download: curl. ours: `r2mpu upload` with its defaults: {human(self.part_size or 0)} parts, concurrency "
            f"{self.concurrency}; `r2mpu download --force`: ranges of the part size, its default concurrency",
        ])

    def report(self):
        rows = self.table()
        table = self.render(rows)
        print()
        print(table)
        print()
        print(self.details())
        for note in self.notes:
            print(f"note: {note}")
        return table

    def write(self, table, elapsed):
        path = REPO / "bench/RESULTS.md"
        # A hand-written `## Findings` section (where the time goes, and why) survives a rewrite,
        # flagged as written for an earlier run's figures.
        findings = ""
        if path.exists() and "\n## Findings" in path.read_text():
            findings = "## Findings" + path.read_text().split("\n## Findings", 1)[1]
            stale = "> Written for an earlier run's figures; check them against the table above.\n"
            if stale not in findings:
                findings = findings.replace("## Findings\n", "## Findings\n\n" + stale, 1)
        text = "\n".join([
            "# r2mpu vs the guide's seed: benchmark results",
            "",
            f"Written by `bench/run {' '.join(sys.argv[1:])}` ({elapsed / 60:.1f} min). See bench/README.md.",
            "",
            "## Machine and versions",
            "",
            self.machine(),
            "",
            "## Results",
            "",
            table,
            "",
            self.details(),
            "",
            *(f"Note: {n}" for n in self.notes),
            "",
            findings,
        ])
        path.write_text(text.rstrip() + "\n")
        log(f"wrote {path}")

    def wan_rates(self):
        """{rtt: {"up"|"down": {side: median MB/s}}} from the WAN phase."""
        a, W = self.args, self.results["wan"]["rtts"]
        size = {"up": a.wan_up_size, "down": a.wan_down_size}
        return {rtt: {d: {s: median([size[d] / r["wall"] / MB for r in W[rtt][d][s]]) for s in W[rtt][d]}
                      for d in W[rtt]} for rtt in W}

    def issue11_rows(self, row):
        R, size = self.results, self.args.size
        if "tus" in R:
            T, tsize = R["tus"], self.args.tus_size
            tus = median([tsize / r["wall"] / MB for r in T["tus"]])
            rest = median([tsize / r["wall"] / MB for r in T["rest"]])
            ok = all(r["identical"] for r in T["tus"])
            row(f"tus-js-client ({human(self.args.tus_chunk)} chunks) vs r2mpu upload, MB/s ({human(tsize)})", "-",
                f"{tus:.1f} vs {rest:.1f}", f"{tus / rest:.2f}x", ">= 0.8x, cmp identical", tus / rest >= 0.8 and ok)
        if "s3" in R:
            S = R["s3"]
            s3 = median([size / r["wall"] / MB for r in S["s3"]])
            rest = median([size / r["wall"] / MB for r in S["rest"]])
            spread = lambda rs: f"{min(size / r['wall'] / MB for r in rs):.1f}-{max(size / r['wall'] / MB for r in rs):.1f}"
            ok = all(r["identical"] for r in S["s3"])
            row(f"aws s3 cp via /s3 vs r2mpu upload, MB/s ({human(size)}; min-max {spread(S['s3'])} vs "
                f"{spread(S['rest'])})", "-", f"{s3:.1f} vs {rest:.1f}", f"{s3 / rest:.2f}x", ">= 0.9x, cmp identical",
                s3 / rest >= 0.9 and ok)
        if "direct" in R:
            D = R["direct"]
            for rtt, res in D["links"].items():
                dsize, where = D["sizes"][rtt], "loopback" if rtt == 0 else f"{rtt} ms"
                mbs = {w: median([dsize / r["wall"] / MB for r in res[w]]) for w in res}
                spread = lambda rs: f"{min(dsize / r['wall'] / MB for r in rs):.1f}-{max(dsize / r['wall'] / MB for r in rs):.1f}"
                ok = all(r["identical"] for w in res for r in res[w])
                row(f"direct parts vs --via-worker, {where}: MB/s ({human(dsize)}; min-max {spread(res['direct'])} vs "
                    f"{spread(res['worker'])})", "-", f"{mbs['direct']:.1f} vs {mbs['worker']:.1f}",
                    f"{mbs['direct'] / mbs['worker']:.2f}x", "reported, cmp identical", ok)
                for label, cpu_of in (("the Worker's workerd", lambda r: r["server"].workerd),
                                      ("the S3 endpoint's workerd (direct parts' storage)", lambda r: r["r2"].workerd),
                                      ("both", lambda r: r["server"].workerd + r["r2"].workerd)):
                    cpu = {w: median([cpu_of(r) / (dsize / GIB) for r in res[w]]) for w in res}
                    row(f"  CPU s/GiB, {where}: {label}", "-", f"{cpu['direct']:.1f} vs {cpu['worker']:.1f}",
                        f"{cpu['direct'] / cpu['worker']:.2f}x" if "S3" not in label else "", "", None)
        if "hashing" in R and "upload" in R:
            H, gib = R["hashing"], size / GIB
            md5sum = median([r["cpu"] for r in H["md5sum"]]) / gib
            python = median([r["cpu"] for r in R["upload"]["seed"]]) / gib
            cli = median([r["cpu"] for r in R["upload"]["ours"]]) / gib
            row("md5sum CPU s/GiB (the same file)", "-", f"{md5sum:.2f}", "", "", None)
            if H["profiles"]:
                P = H["profiles"]
                bare = median([r["other_ms"] for r in P]) / 1000 / gib
                md5 = median([r["md5_ms"] for r in P]) / 1000 / gib
                md5sum_user = median([r["user"] for r in H["md5sum"]]) / gib
                row("client CPU s/GiB (upload) without hashing (perf: the CLI's samples outside MD5)", f"{python:.2f}",
                    f"{bare:.2f}", f"{bare / python:.2f}x", "<= 0.5x", bare / python <= 0.5)
                row("CLI hashing CPU s/GiB (perf: samples in MD5) vs md5sum's user CPU", f"{md5sum_user:.2f}",
                    f"{md5:.2f}", f"{md5 / md5sum_user:.2f}x", "<= 1.1x", md5 / md5sum_user <= 1.1)
            else:
                row("client CPU s/GiB (upload) less md5sum's: an estimate (perf not installed)", f"{python:.2f}",
                    f"{cli - md5sum:.2f}", f"{(cli - md5sum) / python:.2f}x", "<= 0.5x (not measured)", None)
        if "wan" in R:
            a, W, rates = self.args, R["wan"]["rtts"], self.wan_rates()
            for rtt in W:
                up, ok_up = rates[rtt]["up"], all(r["identical"] for s in W[rtt]["up"] for r in W[rtt]["up"][s])
                row(f"WAN {rtt} ms: upload MB/s ({human(a.wan_up_size)})", f"{up['seed']:.1f}", f"{up['ours']:.1f}",
                    f"{up['ours'] / up['seed']:.2f}x", ">= 0.95x, ETag matches", up["ours"] / up["seed"] >= 0.95 and ok_up)
            for rtt in W:
                dn, ok_dn = rates[rtt]["down"], all(r["identical"] for s in W[rtt]["down"] for r in W[rtt]["down"][s])
                row(f"WAN {rtt} ms: download MB/s ({human(a.wan_down_size)}, curl vs r2mpu)", f"{dn['seed']:.1f}",
                    f"{dn['ours']:.1f}", f"{dn['ours'] / dn['seed']:.2f}x", ">= 3x, cmp identical",
                    dn["ours"] / dn["seed"] >= 3 and ok_dn)
            runs = lambda d, s: [r for rtt in W for r in W[rtt][d][s]]
            for d, size_d in (("up", a.wan_up_size), ("down", a.wan_down_size)):
                cpu = {s: median([r["cpu"] for r in runs(d, s)]) / (size_d / GIB) for s in ("seed", "ours")}
                row(f"WAN client CPU s/GiB ({d}load, median over RTTs)", f"{cpu['seed']:.2f}", f"{cpu['ours']:.2f}",
                    f"{cpu['ours'] / cpu['seed']:.2f}x" if cpu["seed"] else "", "", None)
            rss = {s: max(r["rss"] for d in ("up", "down") for r in runs(d, s)) for s in ("seed", "ours")}
            row("WAN client peak RSS MiB (max of all runs)", f"{rss['seed'] / MIB:.0f}", f"{rss['ours'] / MIB:.0f}",
                "", "<= 64 MiB", rss["ours"] <= 64 * MIB)

    def issue11_details(self):
        R, out, a = self.results, [], self.args
        if "tus" in R:
            out.append(f"tus (issue 10): `node bench/tus-upload.mjs` (tus-js-client, {human(a.tus_chunk)} chunks, one "
                       f"PATCH each) to /tus, alternating with `r2mpu upload` (its defaults) of the same "
                       f"{human(a.tus_size)} file; per run: MB/s / workerd CPU s / client CPU s / peak RSS")
            for way, who in (("tus", "tus-js-client"), ("rest", "r2mpu upload")):
                for i, r in enumerate(R["tus"][way]):
                    out.append(f"- {who} {i + 1}: {a.tus_size / r['wall'] / MB:.1f} MB/s, workerd "
                               f"{r['server'].workerd:.2f} s, client {r['cpu']:.2f} s, RSS {r['rss'] / MIB:.0f} MiB"
                               + (f", fetched back identical={r['identical']}" if way == "tus" else ""))
            out.append("")
        if "s3" in R:
            out.append(f"S3 (issue 21): `python -m awscli s3 cp` (awscli's defaults: 8 MiB parts, 10 at once; credentials "
                       f"from `credential_process = r2mpu credentials`) of the {human(a.size)} file to /s3, alternating "
                       f"with `r2mpu upload` of it; per run: MB/s / workerd CPU s / client CPU s / peak RSS")
            for way, who in (("s3", "aws s3 cp"), ("rest", "r2mpu upload")):
                for i, r in enumerate(R["s3"][way]):
                    out.append(f"- {who} {i + 1}: {a.size / r['wall'] / MB:.1f} MB/s, workerd "
                               f"{r['server'].workerd:.2f} s, client {r['cpu']:.2f} s, RSS {r['rss'] / MIB:.0f} MiB"
                               + (f", fetched back identical={r['identical']}" if way == "s3" else ""))
            out.append("")
        if "direct" in R:
            D = R["direct"]
            out.append("Direct parts (issue 22): `r2mpu upload` (presigned UploadParts to local R2's S3 endpoint, "
                       "/cdn-cgi/local/r2/s3/r2mpu, served by a second wrangler dev on the same state so that its CPU "
                       "is its own; the Worker signs and records) alternating with `r2mpu upload --via-worker`; "
                       "through a link, one bench/link.py to the Worker and one to the S3 endpoint (the address the "
                       "Worker signs for). Every object fetched back over loopback and compared. Per run: MB/s / "
                       "CPU s/GiB of the Worker's workerd processes (by process/thread) and the S3 endpoint's / part "
                       "PUTs our Worker saw / client CPU s / bytes each link carried")
            for rtt, res in D["links"].items():
                dsize, where = D["sizes"][rtt], "loopback" if rtt == 0 else f"{rtt} ms"
                gib = dsize / GIB
                for w, who in (("direct", "direct"), ("worker", "--via-worker")):
                    for i, r in enumerate(res[w]):
                        threads = ", ".join(f"{k} {v / gib:.1f}" for k, v in sorted(r["threads"].items()) if v >= 0.01)
                        links = "".join(f", {k} link {human(c.get('bytes_up', 0))} up / "
                                        f"{human(c.get('bytes_down', 0))} down in {c.get('connections')} connections"
                                        for k, c in r.get("links", {}).items())
                        out.append(f"- {where} {who} {i + 1} ({human(dsize)}): {dsize / r['wall'] / MB:.1f} MB/s, "
                                   f"Worker {r['server'].workerd / gib:.1f} s/GiB ({threads}), S3 endpoint "
                                   f"{r['r2'].workerd / gib:.1f} s/GiB, {r['part_puts']} part PUTs to the Worker of "
                                   f"{r['parts']} parts, client {r['cpu']:.2f} s{links}, identical={r['identical']}")
            out.append("")
        if "hashing" in R:
            H = R["hashing"]
            out.append("Hashing: `md5sum` of the same page-cached file, CPU s (user + sys): "
                       + ", ".join(f"{r['cpu']:.2f} ({r['user']:.2f} + {r['sys']:.2f})" for r in H["md5sum"]))
            for i, r in enumerate(H["profiles"]):
                out.append(f"- `perf record -e cpu-clock -c 1000000 -- r2mpu upload` (the same code, with symbols) "
                           f"{i + 1}: {r['md5_ms'] + r['other_ms']} ms of CPU sampled, {r['md5_ms']} in MD5, "
                           f"{r['other_ms']} in the rest; the most sampled: " + "; ".join(r["top"]))
            if not H["profiles"]:
                out.append("perf is not installed (Debian's linux-perf), so the CLI's CPU without hashing is not "
                           "measured; the table's estimate subtracts md5sum's CPU from the CLI's.")
            out.append("")
        if "wan" in R:
            W = R["wan"]["rtts"]
            out.append(f"WAN: every client run through its own `bench/link.py` process (RTT as given, "
                       f"{human(a.wan_window)} window per connection and direction, a handshake RTT per new "
                       f"connection, no bandwidth cap, no loss) to its own side's Worker. Uploads: {human(a.wan_up_size)}, "
                       f"checked by the object's multipart ETag against the file's; downloads: "
                       f"{human(a.wan_down_size)} (put over loopback first), compared byte for byte. Per run: MB/s / "
                       f"client CPU s / peak RSS / connections the link saw / link CPU s / check")
            for rtt in W:
                for d in ("up", "down"):
                    for s in ("seed", "ours"):
                        for i, r in enumerate(W[rtt][d][s]):
                            size = a.wan_up_size if d == "up" else a.wan_down_size
                            who = {("up", "seed"): "mpuscript.py", ("up", "ours"): "r2mpu upload",
                                   ("down", "seed"): "curl", ("down", "ours"): "r2mpu download"}[d, s]
                            out.append(f"- {rtt} ms {d}load {who} {i + 1}: {size / r['wall'] / MB:.1f} MB/s, client "
                                       f"{r['cpu']:.2f} s, RSS {r['rss'] / MIB:.0f} MiB, "
                                       f"{r['link'].get('connections', '?')} connections, link {r['link_cpu']:.2f} s "
                                       f"CPU, {'ETag matches' if d == 'up' else 'identical'}={r['identical']}")
            link_cpu = sum(r["link_cpu"] for rtt in W for d in W[rtt] for s in W[rtt][d] for r in W[rtt][d][s])
            moved = sum(r["link"].get("bytes_up", 0) + r["link"].get("bytes_down", 0)
                        for rtt in W for d in W[rtt] for s in W[rtt][d] for r in W[rtt][d][s])
            if moved:
                out.append(f"The link processes used {link_cpu:.1f} s CPU for {moved / GIB:.2f} GiB carried: "
                           f"{link_cpu / (moved / GIB):.2f} s/GiB.")
            chart = getattr(self, "chart_path", None)
            if chart and chart.resolve() == (REPO / "bench/wan.svg").resolve():
                out.append("![Throughput against RTT, upload and download, ours and theirs](wan.svg)")
            else:
                out.append(f"Chart: {chart or '(not written)'}")
            out.append("")
        return out

    def write_chart(self):
        rates, a = self.wan_rates(), self.args
        pick = lambda d, s: {rtt: rates[rtt][d][s] for rtt in rates}
        svg = wan_svg([(f"Upload ({human(a.wan_up_size)})", [("r2mpu upload", "#1864ab", False, pick("up", "ours")),
                                                             ("guide: mpuscript.py", "#e8590c", True, pick("up", "seed"))]),
                       (f"Download ({human(a.wan_down_size)})", [("r2mpu download", "#1864ab", False,
                                                                  pick("down", "ours")),
                                                                 ("curl", "#e8590c", True, pick("down", "seed"))])],
                      a.wan_window, f"median of {a.wan_runs} run(s) per point; wrangler dev on {os.cpu_count()} cores; "
                                    f"{self.revision}; {time.strftime('%Y-%m-%d')}")
        path = a.chart or (REPO / "bench/wan.svg" if a.write else self.tmp / "wan.svg")
        Path(path).write_text(svg)
        self.chart_path = Path(path)
        log(f"wrote the WAN chart: {path}")

