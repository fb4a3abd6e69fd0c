"""Phase `jwt` (issue 11's lean control path): what verifying the bearer token costs a request,
from the same cheap route asked with a valid token and without one."""

import http.client
import json
import time

from .util import log, percentile
from .workers import CpuDelta


class Jwt:
    def jwt_cost(self):
        """Per-request cost of verifying the bearer token, with the key set parsed once per
        isolate: the same cheap route (`GET /uploads/{id}` with an id that is not one, answered 404
        by the handler without waking a Durable Object) asked with a valid token and without one
        (401 before any verification), alternating; the difference of the p50s and of workerd CPU
        per request is what verifying costs."""
        n = self.args.jwt_iters
        path = "/uploads/not-an-upload-id"
        sides = {"with": {"Authorization": f"Bearer {self.token}"}, "without": {}}
        expect = {"with": 404, "without": 401}
        times = {side: [] for side in sides}
        cpu = {side: 0.0 for side in sides}
        self.wait_quiet("jwt cost")
        conn = http.client.HTTPConnection("127.0.0.1", self.ours.port, timeout=30)
        for i in range(-20, n):  # 20 warm-up rounds each
            for side in (("with", "without") if i % 2 == 0 else ("without", "with")):
                delta = CpuDelta(self.ours)
                t0 = time.perf_counter()
                conn.request("GET", path, headers=sides[side])
                resp = conn.getresponse()
                resp.read()
                elapsed = (time.perf_counter() - t0) * 1000
                used = delta.finish().workerd
                if resp.status != expect[side]:
                    raise RuntimeError(f"jwt cost: {side} a token -> {resp.status}, not {expect[side]}")
                if i >= 0:
                    times[side].append(elapsed)
                    cpu[side] += used
        conn.close()
        out = {side: {"p50": percentile(times[side], 50), "p99": percentile(times[side], 99),
                      "cpu_ms": cpu[side] / n * 1000} for side in sides}
        out["n"] = n
        self.results["jwt_cost"] = out
        log(f"jwt cost: {json.dumps(out)}")

