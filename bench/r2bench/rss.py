"""Phase `rss`: both uploaders' peak RSS at a smaller size (--rss-small), so that the report can
tell whether ours grows with the file."""



from .util import MIB, human, log


class Rss:
    def rss_small(self):
        small = self.args.rss_small if self.args.rss_small < self.args.size else max(self.args.size // 4, 16 * MIB)
        path = self.make_file(small, "small.bin")
        ours = self.upload_ours(path, "ours-small.bin", "rss-ours")
        seed = self.upload_seed(self.alias(path, "seed-small.bin"), "rss-seed")
        self.results["rss_small"] = {"size": small, "ours": ours, "seed": seed}
        log(f"small upload ({human(small)}): ours RSS {human(ours['rss'])}, seed RSS {human(seed['rss'])}")

