"""Phase `load` (issue 23, item 6): many clients at once, side by side with the guide's Worker.
For each count in --load-clients (default 16,32,64), each side in turn (alternating which goes
first) gets that many clients at once, each on its own keep-alive connection: --load-uploads
uploads each of a size drawn from 5 MiB + 1 to 17 MiB (the same sizes on both sides: one seeded
draw per client and upload), in 5 MiB parts sent in random order, completed, then read back
whole with a GET (the guide's `?action=get`, ours `GET /objects/{key}`) and compared byte for
byte. Measures bytes per second (bytes uploaded and read back over the wall time of the round),
the p50/p99 of part PUTs and of GETs, the slowest requests, the failures and what came back
other than sent. The bodies come from one random buffer, so the clients cost little CPU beside
the Worker's one workerd thread."""

import http.client
import json
import os
import random
import threading
import time
import urllib.parse

from .util import MB, MIB, log, percentile
from .workers import CpuDelta

PART = 5 * MIB


class Load:
    def load(self):
        a = self.args
        pool = os.urandom(17 * MIB + 4096)
        out = {}
        for i, clients in enumerate(a.load_clients):
            out[clients] = {}
            for side in (("seed", "ours") if i % 2 == 0 else ("ours", "seed")):
                self.wait_quiet(f"load {clients} {side}")
                out[clients][side] = self.load_round(side, clients, pool)
                r = out[clients][side]
                log(f"load {clients} clients {side}: {r['bytes'] / r['wall'] / MB:.1f} MB/s, part p99 "
                    f"{r['part_p99']:.0f} ms, GET p99 {r['get_p99']:.0f} ms, failed {len(r['failures'])}, "
                    f"not identical {r['different']}, workerd {r['workerd']:.1f} s")
        self.results["load"] = out

    def load_round(self, side, clients, pool):
        a = self.args
        worker = self.seed if side == "seed" else self.ours
        auth = {"Authorization": f"Bearer {self.token}"}
        rng = random.Random(1000 + clients)
        plans = [[rng.randrange(PART + 1, 17 * MIB + 1) for _ in range(a.load_uploads)] for _ in range(clients)]
        parts, gets, failures, lock = [], [], [], threading.Lock()
        totals = {"bytes": 0, "different": 0, "objects": 0}
        start = threading.Barrier(clients)

        def client(c):
            conn = http.client.HTTPConnection("127.0.0.1", worker.port, timeout=300)

            def call(method, path, body=None, headers=None):
                t0 = time.perf_counter()
                try:
                    conn.request(method, path, body=body, headers=headers or {})
                    resp = conn.getresponse()
                    data = resp.read()
                except (OSError, http.client.HTTPException) as e:
                    conn.close()
                    raise RuntimeError(f"{method} {path}: {e}") from e
                ms = (time.perf_counter() - t0) * 1000
                if resp.status >= 300:
                    raise RuntimeError(f"{method} {path} -> {resp.status} {data[:200]!r}")
                return ms, data, resp

            start.wait()
            order = random.Random(c)
            for u, size in enumerate(plans[c]):
                key = f"load-{clients}-{side}-{c}-{u}.bin"
                offset = (c * 7919 + u * 104729) % 4096
                body = memoryview(pool)[offset:offset + size]
                count = (size + PART - 1) // PART
                try:
                    if side == "seed":
                        _, data, _ = call("POST", f"/{key}?action=mpu-create")
                        upload_id = json.loads(data)["uploadId"]
                        q = lambda **kw: urllib.parse.urlencode({"uploadId": upload_id, **kw})
                        put = lambda n: f"/{key}?action=mpu-uploadpart&{q(partNumber=n)}"
                        get = f"/{key}?action=get"
                        headers = {}
                    else:
                        created = json.dumps({"key": key, "size": size, "partSize": PART})
                        _, data, _ = call("POST", "/uploads", created, {**auth, "Content-Type": "application/json"})
                        upload_id = json.loads(data)["uploadId"]
                        put = lambda n: f"/uploads/{upload_id}/parts/{n}"
                        get = f"/objects/{urllib.parse.quote(key)}"
                        headers = {**auth, "Content-Type": "application/octet-stream"}
                    numbers = list(range(1, count + 1))
                    order.shuffle(numbers)
                    etags = {}
                    for n in numbers:
                        ms, data, _ = call("PUT", put(n), body[(n - 1) * PART:n * PART], headers)
                        etags[n] = json.loads(data)["etag"]
                        with lock:
                            parts.append((ms, f"PUT part {n} of {key}"))
                    listed = json.dumps({"parts": [{"partNumber": n, "etag": etags[n]} for n in sorted(etags)]})
                    if side == "seed":
                        call("POST", f"/{key}?action=mpu-complete&{q()}", listed, {"Content-Type": "application/json"})
                    else:
                        call("POST", f"/uploads/{upload_id}/complete", listed, {**auth, "Content-Type": "application/json"})
                    ms, data, _ = call("GET", get, None, {} if side == "seed" else auth)
                    with lock:
                        gets.append((ms, f"GET {key} ({size / MIB:.1f} MiB)"))
                        totals["bytes"] += 2 * size
                        totals["objects"] += 1
                        totals["different"] += data != body
                except RuntimeError as e:
                    with lock:
                        failures.append(str(e))
            conn.close()

        delta = CpuDelta(worker)
        t0 = time.monotonic()
        threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - t0
        workerd = delta.finish().workerd
        slowest = sorted(parts + gets, reverse=True)[:5]
        return {
            "wall": wall, "bytes": totals["bytes"], "objects": totals["objects"], "different": totals["different"],
            "expected": clients * a.load_uploads, "failures": failures, "workerd": workerd,
            "part_p50": percentile([m for m, _ in parts], 50), "part_p99": percentile([m for m, _ in parts], 99),
            "get_p50": percentile([m for m, _ in gets], 50), "get_p99": percentile([m for m, _ in gets], 99),
            "slowest": [f"{m / 1000:.1f} s {what}" for m, what in slowest],
        }
