"""Phase `tus` (issue 10): tus-js-client under Node (bench/tus-upload.mjs) against `r2mpu upload`
of the same file, every tus object fetched back and compared."""



from .util import MB, REPO, TUS_FLOOR_MBPS, human, log, node_path, same_bytes
from .workers import CpuDelta
from .runner import run_timed


class Tus:
    def tus(self):
        """tus-js-client under Node (bench/tus-upload.mjs) uploads a --tus-size file to /tus in
        --tus-chunk chunks, alternating with `r2mpu upload` of the same file, --runs times each;
        every tus object is fetched back and compared byte for byte."""
        size = self.args.tus_size
        path = self.make_file(size, "tus.bin")
        out = {"tus": [], "rest": []}
        env = dict(self.cli_env, CHUNK_SIZE=str(self.args.tus_chunk), PATH=node_path())
        for i in range(self.args.runs):
            for way in (("tus", "rest") if i % 2 == 0 else ("rest", "tus")):
                key, label = f"{way}-{i}.bin", f"{way}-{i}"
                if way == "rest":
                    out["rest"].append(self.retry_once(label, lambda: self.upload_ours(path, key, label)))
                    continue

                def attempt():
                    self.wait_quiet(label)
                    d = CpuDelta(self.ours)
                    r = run_timed(["node", REPO / "bench/tus-upload.mjs", path, key], env, self.tmp, label,
                                  self.budget(size, TUS_FLOOR_MBPS), self.ours)
                    r["server"] = d.finish()
                    return r

                r = self.retry_once(label, attempt)
                dest = self.tmp / "data" / f"{label}.bin"
                run_timed(["curl", "-s", "-f", "-o", dest, "-H", f"Authorization: Bearer {self.token}",
                           f"http://127.0.0.1:{self.ours.port}/objects/{key}"], self.cli_env, self.tmp, f"{label}-get",
                          self.budget(size))
                r["identical"] = same_bytes(path, dest)
                dest.unlink()
                out["tus"].append(r)
            t, rest = out["tus"][-1], out["rest"][-1]
            log(f"tus run {i + 1}: {size / t['wall'] / MB:.1f} MB/s (r2mpu upload {size / rest['wall'] / MB:.1f}), "
                f"identical={t['identical']}, workerd {t['server'].workerd:.2f} s (r2mpu upload "
                f"{rest['server'].workerd:.2f} s), client {t['cpu']:.2f} s CPU, RSS {human(t['rss'])}")
        self.results["tus"] = out

