"""Phase `direct` (issue 22): `r2mpu upload` with direct parts (presigned UploadParts straight to
R2's S3 endpoint, here wrangler dev's /cdn-cgi/local/r2/s3/r2mpu) against `r2mpu upload
--via-worker`, alternating, on loopback (the --size file) and through bench/link.py at each
--direct-rtts RTT (--direct-wan-size); every object fetched back over loopback and compared.

In one `wrangler dev` the Worker, the S3 endpoint (miniflare's r2/s3 JS worker) and the R2
storage behind both run in the same runtime workerd process, on its one event-loop thread (its
other threads, V8's GC and compiler helpers and a few of workerd's own, do little): per-thread CPU (/proc/PID/task) cannot tell the
Worker's share from the endpoint's. So the phase serves the S3 endpoint from a second `wrangler
dev` (`r2`: the same build, on the same --persist-to, so the same local bucket; its own Worker
gets no request) and restarts ours with the four R2_S3_* settings signing for it: ours' workerd
CPU is the Worker's (signing, reports, create and complete through the binding, and with
--via-worker every byte and its storage), r2's is the S3 endpoint's and the storage of direct
parts. (The bench's other phases run ours without R2_S3_*, so there every part goes through the
Worker.)

Through a link, each process gets its own bench/link.py with the same RTT and window, as the
Worker and R2 are two hosts on two paths in production: the CLI reaches the Worker through one,
and the Worker signs for the other's address (R2_S3_ENDPOINT = http://127.0.0.1:LINKPORT/...), so
the presigned URL sends the part PUTs through it; their byte counters say what crossed each.
Which requests reached our Worker (wrangler logs them) tells which way each part went: a direct
run must send no part PUT to the Worker, a --via-worker run all of them."""

import os

from .util import CLK_TCK, GIB, MB, MIB, free_port, human, log, same_bytes
from .runner import run_timed
from .workers import CpuDelta, Wrangler
from .links import LinkProcess


def thread_cpu(pid):
    """{tid: (comm, utime + stime s)} of a process's threads; {} if it is gone."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        out[int(tid)] = (stat[stat.index("(") + 1 : stat.rindex(")")], (int(fields[11]) + int(fields[12])) / CLK_TCK)
    return out


class Threads:
    """CPU of each workerd thread of a Worker between two points, by `role/main` (the process's
    own thread: workerd's event loop, where every isolate runs) and `role/<comm>` for the rest
    (`V8 DefaultWorker`: GC, compilation; a thread of workerd's own shows as `role/workerd`)."""

    def __init__(self, worker):
        self.worker = worker
        self.before = self.snapshot()

    def snapshot(self):
        out = {}
        for pid, role in self.worker.roles().items():
            if role == "node":
                continue
            for tid, (comm, cpu) in thread_cpu(pid).items():
                out[pid, tid] = (f"{role}/main" if tid == pid else f"{role}/{comm}", cpu)
        return out

    def finish(self):
        totals = {}
        for k, (name, cpu) in self.snapshot().items():
            start = self.before.get(k, (name, 0.0))[1]
            totals[name] = totals.get(name, 0.0) + cpu - start
        return totals


class Direct:
    def direct_vars(self, endpoint_port):
        """wrangler dev's --var arguments for direct parts, signed for 127.0.0.1:endpoint_port."""
        values = {"R2_S3_ENDPOINT": f"http://127.0.0.1:{endpoint_port}/cdn-cgi/local/r2/s3", "R2_S3_BUCKET": "r2mpu",
                  "R2_S3_ACCESS_KEY_ID": "r2mpu-local", "R2_S3_SECRET_ACCESS_KEY": "r2mpu-local-secret"}
        return [a for k, v in values.items() for a in ("--var", f"{k}:{v}")]

    def restart_ours_direct(self, endpoint_port, plain_args):
        log(f"direct: restarting ours with direct parts signed for 127.0.0.1:{endpoint_port}")
        self.ours.stop()
        self.ours.extra_args = plain_args + self.direct_vars(endpoint_port)
        self.ours.start()
        self.upload_ours(self.make_file(8 * MIB, "warm-direct.bin"), "warm-direct.bin", f"warm-direct-{endpoint_port}")

    def through_links(self, rtt, label, run):
        """run(env) with the CLI's requests to our Worker through one fresh link and its part PUTs to
        R2 through another, on the port the Worker signs for; both links' counters and CPU kept."""
        links = {"worker": LinkProcess(f"{label}-link-worker", self.ours.port, rtt, self.args.wan_window,
                                       self.tmp / f"link-{label}-worker.log"),
                 "r2": LinkProcess(f"{label}-link-r2", self.r2.port, rtt, self.args.wan_window,
                                   self.tmp / f"link-{label}-r2.log", self.direct_link_port)}
        try:
            for link in links.values():
                link.start()
            cpu0 = {k: link.cpu() for k, link in links.items()}
            r = run(dict(self.cli_env, R2MPU_ENDPOINT=f"http://127.0.0.1:{links['worker'].port}"))
            r["link_cpu"] = sum(link.cpu() - cpu0[k] for k, link in links.items())
        finally:
            for link in links.values():
                link.stop()
        r["links"] = {k: link.counters for k, link in links.items()}
        return r

    def direct_run(self, way, path, key, label, floor=None, rtt=0):
        """One upload, direct or --via-worker, checked for the way its parts went and fetched back."""
        kw = {"extra": ["--via-worker"] if way == "worker" else []} | ({"floor": floor} if floor else {})

        def attempt():
            threads, r2 = Threads(self.ours), CpuDelta(self.r2)
            if rtt == 0:
                r = self.upload_ours(path, key, label, **kw)
            else:
                r = self.through_links(rtt, label, lambda env: self.upload_ours(path, key, label, env=env, **kw))
            r["threads"], r["r2"] = threads.finish(), r2.finish()
            return r

        r = self.retry_once(label, attempt)
        puts, fallbacks = len(r["requests"].get("PUT", [])), r["stderr"].count("through the Worker")
        posts = len(r["requests"].get("POST", []))
        r["part_puts"] = puts
        if way == "direct" and (puts or fallbacks):
            raise RuntimeError(f"{label}: a direct run sent {puts} part PUT(s) through the Worker:\n{r['stderr']}")
        if way == "worker" and puts != r["parts"]:
            raise RuntimeError(f"{label}: --via-worker sent {puts} part PUTs through the Worker for {r['parts']} parts")
        # The create brings the URLs and complete does not wait for the reports: the last ones may
        # still be on their way when the CLI exits, so only create and complete are sure.
        if way == "direct" and posts < 2:
            raise RuntimeError(f"{label}: only {posts} POSTs reached the Worker for {r['parts']} direct parts")
        dest = self.tmp / "data" / f"{label}.bin"
        run_timed(["curl", "-s", "-f", "-o", dest, "-H", f"Authorization: Bearer {self.token}",
                   f"http://127.0.0.1:{self.ours.port}/objects/{key}"], self.cli_env, self.tmp, f"{label}-get",
                  self.budget(os.path.getsize(path)))
        r["identical"] = same_bytes(path, dest)
        dest.unlink()
        self.delete_object("ours", key)
        return r

    def direct(self):
        """Direct parts against --via-worker, alternating, --runs times each: on loopback with the
        --size file, then at each --direct-rtts RTT with a --direct-wan-size file."""
        a = self.args
        plain_args = list(self.ours.extra_args)
        out = {"sizes": {}, "links": {}}
        self.r2 = Wrangler("r2", self.worker_dir, free_port(), self.ours.persist, self.tmp / "r2-wrangler.log",
                           extra_args=plain_args, ready_path="/healthz")
        self.workers.append(self.r2)
        try:
            self.r2.start()
            for rtt in [0] + a.direct_rtts:
                if rtt == 0:
                    self.ensure_big()
                    path, size, floor = self.big, a.size, None
                    self.restart_ours_direct(self.r2.port, plain_args)
                else:
                    size = a.direct_wan_size
                    path, floor = self.make_file(size, f"direct-{rtt}.bin"), a.wan_window / (rtt / 1000) / MB / 4
                    self.direct_link_port = free_port()
                    self.restart_ours_direct(self.direct_link_port, plain_args)
                res = out["links"][rtt] = {"direct": [], "worker": []}
                out["sizes"][rtt] = size
                for i in range(a.runs):
                    for way in (("direct", "worker") if i % 2 == 0 else ("worker", "direct")):
                        label = f"direct-{rtt}-{way}-{i}"
                        r = self.direct_run(way, path, f"{label}.bin", label, floor=floor, rtt=rtt)
                        res[way].append(r)
                        gib = size / GIB
                        links = "".join(f", {k} link {human(c.get('bytes_up', 0))} up {human(c.get('bytes_down', 0))} down"
                                        for k, c in r.get("links", {}).items())
                        log(f"direct {'loopback' if rtt == 0 else f'{rtt} ms'} {way} run {i + 1}: "
                            f"{size / r['wall'] / MB:.1f} MB/s, identical={r['identical']}, workerd s/GiB: ours "
                            f"{r['server'].workerd / gib:.1f} (" + ", ".join(f"{k} {v / gib:.1f}" for k, v in
                                                                             sorted(r["threads"].items()) if v >= 0.01)
                            + f"), r2 {r['r2'].workerd / gib:.1f}; part PUTs to the Worker {r['part_puts']}, client "
                            f"{r['cpu']:.2f} s CPU, RSS {human(r['rss'])}{links}")
                if path != self.big:
                    path.unlink()
        finally:
            self.r2.stop()
            # Later phases get ours as it was: the next restart starts it without direct parts.
            self.ours.extra_args = plain_args
        self.results["direct"] = out
