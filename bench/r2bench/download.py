"""Phase `download`: the upload phase's objects fetched by curl (seed) and `r2mpu download`
(ours), alternating, each compared byte for byte with the file."""



from .util import MB, log, same_bytes
from .workers import CpuDelta
from .runner import run_timed


class Download:
    def downloads(self):
        size = self.args.size
        seed_key, ours_key = self.results["upload"]["seed"][0]["key"], self.results["upload"]["ours"][0]["key"]
        out = {"seed": [], "ours": []}
        for i in range(self.args.runs):
            order = ("seed", "ours") if i % 2 == 0 else ("ours", "seed")
            for side in order:
                dest = self.tmp / "data" / f"down-{side}-{i}.bin"
                self.wait_quiet(f"down-{side}-{i}")
                if side == "seed":
                    d = CpuDelta(self.seed)
                    url = f"http://127.0.0.1:{self.seed.port}/{seed_key}?action=get"
                    cmd, worker = ["curl", "-s", "-f", "-o", dest, url], self.seed
                else:
                    d = CpuDelta(self.ours)
                    cmd, worker = [self.cli, "download", ours_key, dest, "--force"], self.ours
                env = self.seed_env if side == "seed" else self.cli_env
                r = self.retry_once(f"down-{side}-{i}", lambda: run_timed(cmd, env, self.tmp, f"down-{side}-{i}",
                                                                          self.budget(size), worker))
                r["server"] = d.finish()
                r["identical"] = same_bytes(self.big, dest)
                if side == "ours":
                    r["verified"] = next((l for l in r["stdout"].splitlines() if "verified" in l), "")
                dest.unlink()
                out[side].append(r)
                log(f"download {side} run {i + 1}: {size / r['wall'] / MB:.1f} MB/s, identical={r['identical']}, "
                    f"workerd {r['server'].workerd:.2f} s, client {r['cpu']:.2f} s")
        self.results["download"] = out

