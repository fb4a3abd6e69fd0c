"""Phase `content-md5` (issue 12, only when --only names it): `r2mpu upload` with and without
--verify-parts (Content-MD5 on every part), alternating: client CPU per GiB and MB/s."""



from .util import GIB, MB, log, median


class ContentMd5:
    def content_md5(self):
        """Issue 12: what sending Content-MD5 with every part costs the CLI (each part hashed
        before it is sent, so the file is read twice), in CPU per GiB and in upload MB/s.
        Alternates the two ways; reports the median and the range of --runs."""
        size, runs = self.args.size, self.args.runs
        self.ensure_big()
        ways = {"without": (), "with": ("--verify-parts",)}
        out = {way: [] for way in ways}
        for i in range(runs):
            for way in (("without", "with") if i % 2 == 0 else ("with", "without")):
                r = self.retry_once(f"md5-{way}-{i}", lambda: self.upload_ours(self.big, f"md5-{way}-{i}.bin",
                                                                               f"md5-{way}-{i}", ways[way]))
                out[way].append(r)
                log(f"content-md5 {way} run {i + 1}: {size / r['wall'] / MB:.1f} MB/s, client {r['cpu']:.2f} s CPU, "
                    f"workerd {r['server'].workerd:.2f} s CPU, machine busy {r['server'].system_busy:.1f} s")
        per_gib = lambda r: r["cpu"] / (size / GIB)
        mbs = lambda r: size / r["wall"] / MB
        for way, rs in out.items():
            cpu, rate = sorted(map(per_gib, rs)), sorted(map(mbs, rs))
            log(f"content-md5 {way}: client CPU {median(cpu):.2f} s/GiB ({cpu[0]:.2f}-{cpu[-1]:.2f}), "
                f"{median(rate):.1f} MB/s ({rate[0]:.1f}-{rate[-1]:.1f}), n={len(rs)}")
        self.results["content_md5"] = out

