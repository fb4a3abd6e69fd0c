"""Phase `part-cost` (issue 11's lean control path): what a part costs at part 1 and at part
--part-cost-parts (10,000) of one upload: PUT p50/p99, workerd CPU and response bytes per part."""

import http.client
import json
import queue
import threading
import time

from .util import MIB, log, percentile
from .workers import CpuDelta


class PartCost:
    def part_cost(self):
        """A part's cost as the upload grows: one upload whose size is left open (so 1-byte parts
        are accepted, as R2 accepts any size for a part until complete), `--part-cost-window`
        1-byte parts measured one at a time at its start, then parts filled up to
        `--part-cost-parts` minus the window from 8 connections, then the last window measured the
        same way. Per window: the PUT's p50/p99 on a keep-alive connection, workerd CPU per part
        (the Worker and the upload's Durable Object share the runtime process) and the response
        size. Then a GET of the upload checks that every part is listed, and the upload is aborted."""
        total, window = self.args.part_cost_parts, self.args.part_cost_window
        auth = {"Authorization": f"Bearer {self.token}"}
        octets = {**auth, "Content-Type": "application/octet-stream"}
        conn = http.client.HTTPConnection("127.0.0.1", self.ours.port, timeout=60)

        def call(c, method, path, body=None, headers=None):
            c.request(method, path, body=body, headers=headers or auth)
            resp = c.getresponse()
            data = resp.read()
            if resp.status >= 300:
                raise RuntimeError(f"part cost: {method} {path} -> {resp.status} {data[:300]!r}")
            return data

        created = call(conn, "POST", "/uploads", body=json.dumps({"key": "part-cost", "partSize": 5 * MIB}),
                       headers={**auth, "Content-Type": "application/json"})
        upload_id = json.loads(created)["uploadId"]

        def measure(first):
            # A fresh keep-alive connection: waiting for a quiet machine may outlast an idle one.
            c = http.client.HTTPConnection("127.0.0.1", self.ours.port, timeout=60)
            call(c, "GET", "/healthz")
            times, sizes = [], []
            delta = CpuDelta(self.ours)
            for n in range(first, first + window):
                t0 = time.perf_counter()
                data = call(c, "PUT", f"/uploads/{upload_id}/parts/{n}", body=b"x", headers=octets)
                times.append((time.perf_counter() - t0) * 1000)
                sizes.append(len(data))
            cpu = delta.finish()
            c.close()
            return {"first": first, "last": first + window - 1, "p50": percentile(times, 50),
                    "p99": percentile(times, 99), "cpu_ms": cpu.workerd / window * 1000,
                    "runtime_cpu_ms": cpu.by_role.get("runtime", 0) / window * 1000,
                    "bytes": max(sizes)}

        self.wait_quiet("part cost")
        start = measure(1)
        log(f"part cost: parts 1-{window}: {start}")
        todo = queue.Queue()
        for n in range(window + 1, total - window + 1):
            todo.put(n)
        errors = []

        def fill():
            c = http.client.HTTPConnection("127.0.0.1", self.ours.port, timeout=60)
            try:
                while not errors:
                    try:
                        n = todo.get_nowait()
                    except queue.Empty:
                        return
                    call(c, "PUT", f"/uploads/{upload_id}/parts/{n}", body=b"x", headers=octets)
            except Exception as e:  # reported below
                errors.append(e)
            finally:
                c.close()

        t0 = time.monotonic()
        threads = [threading.Thread(target=fill) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        log(f"part cost: filled to part {total - window} in {time.monotonic() - t0:.0f} s")
        self.wait_quiet("part cost")
        end = measure(total - window + 1)
        log(f"part cost: parts {end['first']}-{end['last']}: {end}")
        conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", self.ours.port, timeout=60)
        listed = json.loads(call(conn, "GET", f"/uploads/{upload_id}"))["parts"]
        if len(listed) != total:
            raise RuntimeError(f"part cost: the upload lists {len(listed)} parts, not {total}")
        call(conn, "DELETE", f"/uploads/{upload_id}")
        conn.close()
        self.results["part_cost"] = {"parts": total, "window": window, "start": start, "end": end}

