"""The load phase's part of the report (issue 23, item 6): per client count, bytes per second,
part and GET p99 of each side with the targets, then the per-round figures and the slowest
requests. Reads only `self.results["load"]`."""

from .util import MB


class LoadReport:
    def load_rows(self, row):
        for clients, sides in self.results.get("load", {}).items():
            seed, ours = sides["seed"], sides["ours"]
            whole = all(not s["failures"] and not s["different"] and s["objects"] == s["expected"] for s in sides.values())
            rate = {s: sides[s]["bytes"] / sides[s]["wall"] / MB for s in sides}
            row(f"load, {clients} clients: MB/s up + read back (all intact)", f"{rate['seed']:.1f}",
                f"{rate['ours']:.1f}", f"{rate['ours'] / rate['seed']:.2f}x", ">= 0.95x, nothing lost",
                rate["ours"] >= 0.95 * rate["seed"] and whole)
            for name in ("part", "get"):
                p99 = f"{name}_p99"
                row(f"load, {clients} clients: {name.upper() if name == 'get' else name} p99 ms (p50)",
                    f"{seed[p99]:.0f} ({seed[f'{name}_p50']:.0f})", f"{ours[p99]:.0f} ({ours[f'{name}_p50']:.0f})",
                    f"{ours[p99] / seed[p99]:.2f}x", "<= 1.2x", ours[p99] <= 1.2 * seed[p99])

    def load_details(self):
        L, out = self.results.get("load"), []
        if not L:
            return out
        out.append(f"Load: each client {self.args.load_uploads} upload(s) of 5 MiB + 1 to 17 MiB in 5 MiB parts in "
                   f"random order, complete, GET back; per round: wall s / objects intact of expected / failures / "
                   f"workerd CPU s / the five slowest requests")
        for clients, sides in L.items():
            for side in ("seed", "ours"):
                r = sides[side]
                intact = r["objects"] - r["different"]
                failures = f"; first failure: {r['failures'][0]}" if r["failures"] else ""
                out.append(f"- {clients} clients, {side}: {r['wall']:.1f} / {intact} of {r['expected']} / "
                           f"{len(r['failures'])} / {r['workerd']:.1f} / {', '.join(r['slowest'])}{failures}")
        out.append("")
        return out
