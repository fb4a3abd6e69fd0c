"""Phase `wan` (issue 11): both sides through bench/link.py, an emulated long link, at each
--wan-rtts RTT: uploads (mpuscript.py vs `r2mpu upload`, checked by the object's multipart ETag)
and downloads (curl vs `r2mpu download`, compared byte for byte). Every client run gets its own
link process (`LinkProcess`), so its CPU and counters belong to that run. The phase ends by
writing the chart (the report's `write_chart`)."""

import hashlib
import http.client
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path

from .util import MB, REPO, SEED_PART_SIZE, human, log, proc_cpu, same_bytes
from .runner import Timeout, run_timed


class LinkProcess:
    """One bench/link.py process between a client and a Worker: its own process, so that its CPU
    is its own and it shares no interpreter with the bench; its counters (connections, bytes
    each way) come from the line it prints when it stops."""

    def __init__(self, name, target_port, rtt_ms, window, log_path):
        self.name, self.target_port, self.rtt_ms, self.window, self.log_path = name, target_port, rtt_ms, window, log_path
        self.proc, self.port, self.counters = None, None, {}

    def start(self):
        self.log_file = open(self.log_path, "w")
        self.proc = subprocess.Popen([sys.executable, str(REPO / "bench/link.py"), "--to", f"127.0.0.1:{self.target_port}",
                                      "--rtt", f"{self.rtt_ms}ms", "--window", str(self.window)],
                                     stdout=subprocess.PIPE, stderr=self.log_file, text=True, start_new_session=True)
        first = []
        reader = threading.Thread(target=lambda: first.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(15)
        m = re.search(r"listening on [\d.]+:(\d+)", first[0] if first else "")
        if not m:
            self.stop()
            raise Timeout(f"{self.name}: bench/link.py did not say where it listens within 15 s: {first}")
        self.port = int(m.group(1))

    def cpu(self):
        return proc_cpu(self.proc.pid) or 0.0

    def stop(self):
        if not self.proc:
            return
        self.proc.send_signal(signal.SIGTERM)  # it prints its counters on the way out
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log_file.close()
        m = re.search(r"(\d+) connections, (\d+) bytes up, (\d+) down, (\d+) stalls", Path(self.log_path).read_text())
        if m:
            self.counters = dict(zip(("connections", "bytes_up", "bytes_down", "stalls"), map(int, m.groups())))
        self.proc = None


class Wan:
    def through_link(self, side, rtt_ms, label, run):
        """Runs run(env) with the client's traffic through a fresh link process to `side`'s Worker
        (one per client run, so its counters and CPU belong to that run alone)."""
        worker = self.seed if side == "seed" else self.ours
        link = LinkProcess(f"{label}-link", worker.port, rtt_ms, self.args.wan_window, self.tmp / f"link-{label}.log")
        link.start()
        try:
            url = f"http://127.0.0.1:{link.port}"
            env = (dict(self.seed_env, WORKER_ENDPOINT=url + "/") if side == "seed"
                   else dict(self.cli_env, R2MPU_ENDPOINT=url))
            cpu0 = link.cpu()
            r = run(env, url)
            r["link_cpu"] = link.cpu() - cpu0
        finally:
            link.stop()
        r["link"] = link.counters
        return r

    def object_etag(self, side, key):
        """The ETag the Worker serves for key, read over loopback (headers only)."""
        worker = self.seed if side == "seed" else self.ours
        conn = http.client.HTTPConnection("127.0.0.1", worker.port, timeout=30)
        try:
            if side == "seed":
                conn.request("GET", f"/{urllib.parse.quote(key)}?action=get")
            else:
                conn.request("HEAD", f"/objects/{urllib.parse.quote(key)}",
                             headers={"Authorization": f"Bearer {self.token}"})
            resp = conn.getresponse()
            return resp.getheader("etag", "").strip('"') if resp.status == 200 else f"HTTP {resp.status}"
        finally:
            conn.close()

    def expected_etag(self, path, part_size):
        """R2's multipart ETag of path uploaded in part_size parts: MD5 of the parts' MD5s, `-N`."""
        cache = self.__dict__.setdefault("_etags", {})
        if (path, part_size) not in cache:
            digests = []
            with open(path, "rb") as f:
                while chunk := f.read(part_size):
                    digests.append(hashlib.md5(chunk).digest())
            cache[path, part_size] = f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"
        return cache[path, part_size]

    def wan(self):
        """Upload (mpuscript.py vs r2mpu upload) and download (curl vs r2mpu download) through
        the emulated link at each --wan-rtts RTT with a --wan-window window, the same file for
        both sides, every result checked: uploads by the object's multipart ETag against the
        file's, downloads byte for byte."""
        a = self.args
        up_file = self.make_file(a.wan_up_size, "wan-up.bin")
        down_file = self.make_file(a.wan_down_size, "wan-down.bin")
        # The objects the WAN downloads fetch, put over loopback (not measured).
        self.upload_seed(self.alias(down_file, "wan-down-seed.bin"), "wan-put-seed")
        put = self.upload_ours(down_file, "wan-down-ours.bin", "wan-put-ours")
        out = {}
        for rtt in a.wan_rtts:
            one = a.wan_window / (rtt / 1000) / MB  # MB/s of one connection: window / RTT
            floor = one / 4  # time box: a quarter of one connection's rate
            res = out[rtt] = {"up": {"seed": [], "ours": []}, "down": {"seed": [], "ours": []}}
            for i in range(a.wan_runs):
                for side in (("seed", "ours") if i % 2 == 0 else ("ours", "seed")):
                    key, label = f"wan-{rtt}-{side}-{i}.bin", f"wan-up-{rtt}-{side}-{i}"
                    if side == "seed":
                        path = self.alias(up_file, key)
                        up = lambda env, url: self.upload_seed(path, label, env=env, floor=floor)
                    else:
                        up = lambda env, url: self.upload_ours(up_file, key, label, env=env, floor=floor)
                    r = self.retry_once(label, lambda: self.through_link(side, rtt, label, up))
                    part_size = SEED_PART_SIZE if side == "seed" else r["part_size"]
                    r["identical"] = self.object_etag(side, key) == self.expected_etag(up_file, part_size)
                    res["up"][side].append(r)
                    log(f"WAN {rtt} ms upload {side} run {i + 1}: {a.wan_up_size / r['wall'] / MB:.1f} MB/s, "
                        f"ETag matches={r['identical']}, client {r['cpu']:.2f} s CPU, RSS {human(r['rss'])}, "
                        f"link {r['link_cpu']:.2f} s CPU, {r['link'].get('connections')} connections")
                for side in (("seed", "ours") if i % 2 == 0 else ("ours", "seed")):
                    label = f"wan-down-{rtt}-{side}-{i}"
                    dest = self.tmp / "data" / f"{label}.bin"
                    if side == "seed":
                        cmd = lambda url: ["curl", "-s", "-f", "-o", dest, f"{url}/wan-down-seed.bin?action=get"]
                    else:
                        cmd = lambda url: [self.cli, "download", "wan-down-ours.bin", dest, "--force"]

                    def down(env, url, side=side, cmd=cmd, label=label):
                        self.wait_quiet(label)
                        return run_timed(cmd(url), env, self.tmp, label, self.budget(a.wan_down_size, floor),
                                         self.seed if side == "seed" else self.ours)

                    r = self.retry_once(label, lambda: self.through_link(side, rtt, label, down))
                    r["identical"] = same_bytes(down_file, dest)
                    dest.unlink()
                    res["down"][side].append(r)
                    log(f"WAN {rtt} ms download {side} run {i + 1}: {a.wan_down_size / r['wall'] / MB:.1f} MB/s, "
                        f"identical={r['identical']}, client {r['cpu']:.2f} s CPU, RSS {human(r['rss'])}, "
                        f"link {r['link_cpu']:.2f} s CPU, {r['link'].get('connections')} connections")
        self.results["wan"] = {"rtts": out, "put_part_size": put["part_size"]}
        self.write_chart()

