"""Phase `wan` (issue 11): both sides through bench/link.py, an emulated long link, at each
--wan-rtts RTT: uploads (mpuscript.py vs `r2mpu upload`, checked by the object's multipart ETag)
and downloads (curl vs `r2mpu download`, compared byte for byte). Every client run gets its own
link process (links.py), so its CPU and counters belong to that run. The phase ends by writing
the chart (the report's `write_chart`)."""

from .util import MB, human, log, same_bytes
from .runner import run_timed


class Wan:
    def wan(self):
        """Upload (mpuscript.py vs r2mpu upload) and download (curl vs r2mpu download) through
        the emulated link at each --wan-rtts RTT with a --wan-window window, the same file for
        both sides, every result checked: uploads by the object's multipart ETag against the
        file's, downloads byte for byte."""
        a = self.args
        up_file = self.make_file(a.wan_up_size, "wan-up.bin")
        down_file = self.make_file(a.wan_down_size, "wan-down.bin")
        # The objects the WAN downloads fetch, put over loopback (not measured).
        self.upload_seed(self.alias(down_file, "wan-down-seed.bin"), "wan-put-seed")
        put = self.upload_ours(down_file, "wan-down-ours.bin", "wan-put-ours")
        out = {}
        for rtt in a.wan_rtts:
            one = a.wan_window / (rtt / 1000) / MB  # MB/s of one connection: window / RTT
            floor = one / 4  # time box: a quarter of one connection's rate
            res = out[rtt] = {"up": {"seed": [], "ours": []}, "down": {"seed": [], "ours": []}}
            for i in range(a.wan_runs):
                for side in (("seed", "ours") if i % 2 == 0 else ("ours", "seed")):
                    key, label = f"wan-{rtt}-{side}-{i}.bin", f"wan-up-{rtt}-{side}-{i}"
                    if side == "seed":
                        path = self.alias(up_file, key)
                        up = lambda env, url: self.upload_seed(path, label, env=env, floor=floor)
                    else:
                        up = lambda env, url: self.upload_ours(up_file, key, label, env=env, floor=floor)
                    r = self.retry_once(label, lambda: self.through_link(side, rtt, label, up))
                    r["identical"] = self.uploaded_intact(side, key, up_file, r)
                    res["up"][side].append(r)
                    log(f"WAN {rtt} ms upload {side} run {i + 1}: {a.wan_up_size / r['wall'] / MB:.1f} MB/s, "
                        f"ETag matches={r['identical']}, client {r['cpu']:.2f} s CPU, RSS {human(r['rss'])}, "
                        f"link {r['link_cpu']:.2f} s CPU, {r['link'].get('connections')} connections")
                for side in (("seed", "ours") if i % 2 == 0 else ("ours", "seed")):
                    label = f"wan-down-{rtt}-{side}-{i}"
                    dest = self.tmp / "data" / f"{label}.bin"
                    cmd = lambda url, side=side, dest=dest: self.download_cmd(side, url, f"wan-down-{side}.bin", dest)

                    def down(env, url, side=side, cmd=cmd, label=label):
                        self.wait_quiet(label)
                        return run_timed(cmd(url), env, self.tmp, label, self.budget(a.wan_down_size, floor),
                                         self.seed if side == "seed" else self.ours)

                    r = self.retry_once(label, lambda: self.through_link(side, rtt, label, down))
                    r["identical"] = same_bytes(down_file, dest)
                    dest.unlink()
                    res["down"][side].append(r)
                    log(f"WAN {rtt} ms download {side} run {i + 1}: {a.wan_down_size / r['wall'] / MB:.1f} MB/s, "
                        f"identical={r['identical']}, client {r['cpu']:.2f} s CPU, RSS {human(r['rss'])}, "
                        f"link {r['link_cpu']:.2f} s CPU, {r['link'].get('connections')} connections")
        self.results["wan"] = {"rtts": out, "put_part_size": put["part_size"]}
        self.write_chart()

