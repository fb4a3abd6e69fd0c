"""The sweep's part of the report (issue 23): a row per point and direction with each side's
median and spread (min-max) and the targets, the per-run figures, and the chart of our ratio
against the file size, one line per link (chart.ratio_svg). Reads only `self.results["sweep"]`."""

import os
import time
from pathlib import Path

from .util import GIB, MB, MIB, REPO, human, link_name, log, median
from .chart import ratio_svg


class SweepReport:
    def sweep_rates(self, size, point, d):
        """{side: [MB/s of each run]} of one point and direction."""
        return {s: [size / r["wall"] / MB for r in point[d][s]] for s in point[d]}

    def sweep_rows(self, row):
        S = self.results.get("sweep")
        if not S:
            return
        fmt = lambda v: f"{median(v):.1f} ({min(v):.1f}-{max(v):.1f})"
        for (size, rtt), point in S.items():
            where = f"sweep {human(size)}, {link_name(rtt)}"
            up = self.sweep_rates(size, point, "up")
            ratio = median(up["ours"]) / median(up["seed"])
            spread = max(abs(v - median(up["ours"])) for v in up["ours"]) / median(up["ours"])
            ok = all(r["identical"] for s in point["up"] for r in point["up"][s])
            row(f"{where}: upload MB/s (min-max)", fmt(up["seed"]), fmt(up["ours"]), f"{ratio:.2f}x",
                ">= 0.95x, ours within +-10%", ratio >= 0.95 and spread <= 0.10 and ok)
            cpu = {s: median([r["server"].workerd / (size / GIB) for r in point["up"][s]]) for s in point["up"]}
            row(f"{where}: workerd CPU s/GiB (upload)", f"{cpu['seed']:.2f}", f"{cpu['ours']:.2f}",
                f"{cpu['ours'] / cpu['seed']:.2f}x", "<= 1.0x", cpu["ours"] <= cpu["seed"])
            down = self.sweep_rates(size, point, "down")
            ratio = median(down["ours"]) / median(down["seed"])
            target = 0.95 if rtt == 0 else 3.0
            ok = all(r["identical"] for s in point["down"] for r in point["down"][s])
            row(f"{where}: download MB/s (curl vs r2mpu)", fmt(down["seed"]), fmt(down["ours"]), f"{ratio:.2f}x",
                f">= {target}x", ratio >= target and ok)
            if size >= 4 * GIB:
                rss = max(r["rss"] for d in ("up", "down") for r in point[d]["ours"])
                row(f"{where}: CLI peak RSS MiB", "-", f"{rss / MIB:.0f}", "", "<= 64 MiB", rss <= 64 * MIB)
        skipped = [human(s) for s in self.args.sweep_sizes if s > self.args.sweep_wan_max]
        if skipped and any(r for r in self.args.sweep_rtts if r):
            self.notes.append(f"sweep: {', '.join(skipped)} measured on loopback only (above --sweep-wan-max "
                              f"{human(self.args.sweep_wan_max)})")

    def sweep_details(self):
        S, out = self.results.get("sweep"), []
        if not S:
            return out
        out.append(f"Sweep: {self.args.sweep_runs} run(s) per side, direction and point, alternating; links through "
                   f"`bench/link.py` ({human(self.args.wan_window)} window per connection). Per run: MB/s / workerd "
                   f"CPU s / client CPU s / peak RSS / check")
        who = {("up", "seed"): "mpuscript.py", ("up", "ours"): "r2mpu upload", ("down", "seed"): "curl",
               ("down", "ours"): "r2mpu download"}
        for (size, rtt), point in S.items():
            for d in ("up", "down"):
                for s in ("seed", "ours"):
                    runs = ", ".join(f"{size / r['wall'] / MB:.1f} / {r['server'].workerd:.2f} / {r['cpu']:.2f} / "
                                     f"{r['rss'] / MIB:.0f} MiB / {'ok' if r['identical'] else 'DIFFERS'}"
                                     + (f" ({r['parts']} parts of {human(r['part_size'])})"
                                        if d == "up" and s == "ours" and r.get("part_size") else "")
                                     for r in point[d][s])
                    out.append(f"- {human(size)} {link_name(rtt)} {d}load {who[d, s]}: {runs}")
        chart = getattr(self, "sweep_chart_path", None)
        if chart and chart.resolve() == (REPO / "bench/sweep.svg").resolve():
            out.append("![Our throughput over theirs against the file size, one line per link](sweep.svg)")
        else:
            out.append(f"Chart: {chart or '(not written)'}")
        out.append("")
        return out

    def write_sweep_chart(self):
        S, a = self.results["sweep"], self.args
        colours = ["#1864ab", "#e8590c", "#2b8a3e", "#862e9c", "#c92a2a"]
        panels = []
        for d, title in (("up", "Upload: r2mpu upload / mpuscript.py"), ("down", "Download: r2mpu download / curl")):
            series = []
            for k, rtt in enumerate(a.sweep_rtts):
                pts = {}
                for (size, r), point in S.items():
                    if r == rtt:
                        rates = self.sweep_rates(size, point, d)
                        pts[size] = median(rates["ours"]) / median(rates["seed"])
                if pts:
                    series.append((link_name(rtt), colours[k % len(colours)], pts))
            panels.append((title, series))
        svg = ratio_svg(panels, f"median of {a.sweep_runs} run(s) per point and side; wrangler dev on "
                                f"{os.cpu_count()} cores; {self.revision}; {time.strftime('%Y-%m-%d')}")
        path = REPO / "bench/sweep.svg" if a.write else self.tmp / "sweep.svg"
        Path(path).write_text(svg)
        self.sweep_chart_path = Path(path)
        log(f"wrote the sweep chart: {path}")
