"""Phase `latency`: create, a 1-byte part and complete, one round each on a keep-alive connection
per side, alternating, --latency-iters rounds after three warm-up ones: p50/p99 per step and
workerd CPU per round."""

import http.client
import json
import time
import urllib.parse

from .util import log, percentile
from .workers import CpuDelta


class Latency:
    def latency(self):
        n = self.args.latency_iters
        conns = {"seed": http.client.HTTPConnection("127.0.0.1", self.seed.port, timeout=30),
                 "ours": http.client.HTTPConnection("127.0.0.1", self.ours.port, timeout=30)}
        auth = {"Authorization": f"Bearer {self.token}"}

        def call(side, method, path, body=None, headers=None):
            conn = conns[side]
            t0 = time.perf_counter()
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            elapsed = time.perf_counter() - t0
            if resp.status >= 300:
                raise RuntimeError(f"latency {side}: {method} {path} -> {resp.status} {data[:300]!r}")
            return elapsed, data

        def seed_round(i):
            key = f"lat-seed-{i}"
            t_create, data = call("seed", "POST", f"/{key}?action=mpu-create")
            upload_id = json.loads(data)["uploadId"]
            q = lambda **kw: urllib.parse.urlencode({"uploadId": upload_id, **kw})
            t_put, data = call("seed", "PUT", f"/{key}?action=mpu-uploadpart&{q(partNumber=1)}", body=b"x")
            part = json.loads(data)
            body = json.dumps({"parts": [{"partNumber": 1, "etag": part["etag"]}]})
            t_complete, _ = call("seed", "POST", f"/{key}?action=mpu-complete&{q()}", body=body,
                                 headers={"Content-Type": "application/json"})
            return t_create, t_put, t_complete

        def ours_round(i):
            body = json.dumps({"key": f"lat-ours-{i}", "size": 1})
            t_create, data = call("ours", "POST", "/uploads", body=body,
                                  headers={**auth, "Content-Type": "application/json"})
            upload_id = json.loads(data)["uploadId"]
            t_put, data = call("ours", "PUT", f"/uploads/{upload_id}/parts/1", body=b"x",
                               headers={**auth, "Content-Type": "application/octet-stream"})
            part = json.loads(data)
            body = json.dumps({"parts": [{"partNumber": 1, "etag": part["etag"]}]})
            t_complete, _ = call("ours", "POST", f"/uploads/{upload_id}/complete", body=body,
                                 headers={**auth, "Content-Type": "application/json"})
            return t_create, t_put, t_complete

        self.wait_quiet("latency")
        rounds = {"seed": seed_round, "ours": ours_round}
        samples = {side: {"create": [], "put": [], "complete": []} for side in rounds}
        deltas = {side: CpuDelta(w) for side, w in (("seed", self.seed), ("ours", self.ours))}
        for i in range(-3, n):  # three warm-up rounds each, not counted
            for side in (("seed", "ours") if i % 2 == 0 else ("ours", "seed")):
                t = rounds[side](i + 3)
                if i >= 0:
                    for name, value in zip(("create", "put", "complete"), t):
                        samples[side][name].append(value * 1000)
        for c in conns.values():
            c.close()
        out = {}
        for side, s in samples.items():
            out[side] = {name: {"p50": percentile(v, 50), "p99": percentile(v, 99), "n": len(v)} for name, v in s.items()}
            out[side]["workerd_cpu_ms_per_round"] = deltas[side].finish().workerd / (n + 3) * 1000
        self.results["latency"] = out
        log(f"latency: {json.dumps(out)}")

