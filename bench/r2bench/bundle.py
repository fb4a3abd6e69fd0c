"""Phase `bundle`: the Worker's gzip size (zlib level 6 of build/index_bg.wasm + build/index.js),
against issue 3's 300 KiB."""

import gzip

from .util import log


class Bundle:
    def bundle(self):
        js = (self.worker_dir / "build/index.js").read_bytes()
        wasm = (self.worker_dir / "build/index_bg.wasm").read_bytes()
        gz = lambda b: len(gzip.compress(b, compresslevel=6))  # zlib's default, as wrangler and tests/deploy.rs
        self.results["bundle"] = {"js": len(js), "wasm": len(wasm), "js_gz": gz(js), "wasm_gz": gz(wasm),
                                  "gz": gz(js + wasm)}
        log(f"bundle: {self.results['bundle']}")

