"""Phase `sweep` (issue 23): every size of --sweep-sizes on every link of --sweep-rtts (0 is
loopback, the rest through bench/link.py with --wan-window), both sides alternating at each point,
--sweep-runs runs each: uploads (mpuscript.py vs `r2mpu upload`, checked by the object's multipart
ETag), then downloads of those objects (curl vs `r2mpu download`, compared byte for byte). A
defaults tuned to one size shows up here as a ratio that falls away at the others, and a
controller that swings as a wide spread of our own runs. The WAN points skip the sizes above
--sweep-wan-max (the guide's client moves one 256 KiB window per round trip per thread: 4 GiB at
200 ms is a quarter of an hour a run); the report says which. Each point's objects are deleted
once measured, so local R2 holds at most one point's worth."""

from .util import LOOPBACK_FLOOR_MBPS, MB, human, link_name, log, same_bytes
from .workers import CpuDelta
from .runner import run_timed

LOOPBACK = 0


class Sweep:
    def sweep_points(self):
        """(size, rtt) of every point to measure, in order: each size on loopback, then on each link."""
        a = self.args
        return [(size, rtt) for rtt in a.sweep_rtts for size in a.sweep_sizes
                if rtt == LOOPBACK or size <= a.sweep_wan_max]

    def sweep(self):
        a = self.args
        out = {}
        for size in a.sweep_sizes:
            path = self.make_file(size, f"sweep-{size}.bin")
            for rtt in [r for r in a.sweep_rtts if (size, r) in self.sweep_points()]:
                out[size, rtt] = self.sweep_point(path, size, rtt)
            path.unlink()
        self.results["sweep"] = out
        self.write_sweep_chart()

    def sweep_point(self, path, size, rtt):
        a = self.args
        # The time box: a quarter of one connection's rate (window / RTT) on a link.
        floor = a.wan_window / (rtt / 1000) / MB / 4 if rtt else LOOPBACK_FLOOR_MBPS
        point = {"up": {"seed": [], "ours": []}, "down": {"seed": [], "ours": []}}
        keys = []
        for i in range(a.sweep_runs):
            for side in (("seed", "ours") if i % 2 == 0 else ("ours", "seed")):
                key, label = f"sweep-{size}-{rtt}-{side}-{i}.bin", f"sweep-up-{human(size)}-{rtt}-{side}-{i}"
                keys.append((side, key))
                r = self.retry_once(label, lambda: self.sweep_run(side, rtt, label, self.sweep_upload(side, path, key,
                                                                                                      label, floor)))
                r["identical"] = self.uploaded_intact(side, key, path, r)
                point["up"][side].append(r)
                log(f"sweep {human(size)} at {link_name(rtt)}: upload {side} {i + 1}: "
                    f"{size / r['wall'] / MB:.1f} MB/s, workerd {r['server'].workerd:.2f} s CPU, "
                    f"RSS {human(r['rss'])}, ETag matches={r['identical']}")
            for side in (("seed", "ours") if i % 2 == 0 else ("ours", "seed")):
                key, label = f"sweep-{size}-{rtt}-{side}-{i}.bin", f"sweep-down-{human(size)}-{rtt}-{side}-{i}"
                dest = self.tmp / "data" / f"{label}.bin"
                r = self.retry_once(label, lambda: self.sweep_run(side, rtt, label,
                                                                  self.sweep_download(side, key, dest, label, size, floor)))
                r["identical"] = same_bytes(path, dest)
                dest.unlink()
                point["down"][side].append(r)
                log(f"sweep {human(size)} at {link_name(rtt)}: download {side} {i + 1}: "
                    f"{size / r['wall'] / MB:.1f} MB/s, identical={r['identical']}")
        for side, key in keys:
            self.delete_object(side, key)
        self.forget_etags(path)
        return point

    def sweep_run(self, side, rtt, label, run):
        """run(env, url) on loopback, or through a fresh link process at `rtt` ms."""
        if rtt == LOOPBACK:
            worker = self.seed if side == "seed" else self.ours
            env = self.seed_env if side == "seed" else self.cli_env
            return run(env, f"http://127.0.0.1:{worker.port}")
        return self.through_link(side, rtt, label, run)

    def sweep_upload(self, side, path, key, label, floor):
        def up(env, url):
            if side == "seed":
                return self.upload_seed(self.alias(path, key), label, env=env, floor=floor)
            return self.upload_ours(path, key, label, env=env, floor=floor)
        return up

    def sweep_download(self, side, key, dest, label, size, floor):
        def down(env, url):
            self.wait_quiet(label)
            worker = self.seed if side == "seed" else self.ours
            d = CpuDelta(worker)
            r = run_timed(self.download_cmd(side, url, key, dest), env, self.tmp, label, self.budget(size, floor),
                          worker)
            r["server"] = d.finish()
            return r
        return down
