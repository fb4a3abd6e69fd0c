"""Phase `upload`: the file uploaded on loopback by mpuscript.py and by `r2mpu upload`, alternating,
--runs times each: wall time, workerd CPU, client CPU and peak RSS. The download, rss and hashing
phases use what it leaves (its objects, its figures)."""

import os

from .util import MB, human, log
from .workers import foreign


class Upload:
    def uploads(self):
        size, runs = self.args.size, self.args.runs
        self.ensure_big()
        out = {"seed": [], "ours": []}
        for i in range(runs):
            order = ("seed", "ours") if i % 2 == 0 else ("ours", "seed")
            for side in order:
                key = f"{side}-up-{i}.bin"
                if side == "seed":
                    path = self.alias(self.big, key)
                    r = self.retry_once(f"up-seed-{i}", lambda: self.upload_seed(path, f"up-seed-{i}"))
                else:
                    r = self.retry_once(f"up-ours-{i}", lambda: self.upload_ours(self.big, key, f"up-ours-{i}"))
                r["key"] = key
                if side == "ours":
                    self.part_size = r["part_size"]
                out[side].append(r)
                log(f"upload {side} run {i + 1}: {r['wall']:.2f} s, {size / r['wall'] / MB:.1f} MB/s, "
                    f"workerd {r['server'].workerd:.2f} s CPU, client {r['cpu']:.2f} s CPU, RSS {human(r['rss'])}, "
                    f"machine busy {r['server'].system_busy:.1f} s")
        self.results["upload"] = out
        busy = [foreign(r) / r["wall"] for side in out for r in out[side]]
        if max(busy) > 0.2:
            self.notes.append(f"other processes kept up to {max(busy):.1f} of {os.cpu_count()} cores busy during "
                              f"the upload runs (compilers?); figures are noisier than they should be")

