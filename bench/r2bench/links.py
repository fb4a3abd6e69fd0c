"""What the phases that measure through a long link share: `LinkProcess`, one bench/link.py
process per client run, and `Links`, a base of the bench with `through_link` (a client run
through a fresh link to one side's Worker), the check of an uploaded object's multipart ETag
(`uploaded_intact`), the download client of each side and the deletion of a measured object."""

import contextlib
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

from .util import MB, REPO, SEED_PART_SIZE, proc_cpu
from .runner import Timeout


class LinkProcess:
    """One bench/link.py process between a client and a Worker: its own process, so that its CPU
    is its own and it shares no interpreter with the bench; its counters (connections, bytes
    each way) come from the line it prints when it stops."""

    def __init__(self, name, target_port, rtt_ms, window, log_path, listen_port=0):
        self.name, self.target_port, self.rtt_ms, self.window, self.log_path = name, target_port, rtt_ms, window, log_path
        self.listen_port = listen_port  # 0: a free port
        self.proc, self.port, self.counters = None, None, {}

    def start(self):
        self.log_file = open(self.log_path, "w")
        self.proc = subprocess.Popen([sys.executable, str(REPO / "bench/link.py"), "--to", f"127.0.0.1:{self.target_port}",
                                      "--rtt", f"{self.rtt_ms}ms", "--window", str(self.window),
                                      "--listen", f"127.0.0.1:{self.listen_port}"],
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


class Links:
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

    @contextlib.contextmanager
    def object_request(self, side, key, seed_action, ours_method, timeout=30):
        """One request for `key` at `side`'s Worker over loopback, its response open: the guide's
        `?action=` (GET for `get`, DELETE for `delete`), or ours on `/objects/{key}` with the
        bench's token."""
        worker = self.seed if side == "seed" else self.ours
        conn = http.client.HTTPConnection("127.0.0.1", worker.port, timeout=timeout)
        try:
            quoted = urllib.parse.quote(key)
            if side == "seed":
                method = "DELETE" if seed_action == "delete" else "GET"
                conn.request(method, f"/{quoted}?action={seed_action}")
            else:
                conn.request(ours_method, f"/objects/{quoted}", headers={"Authorization": f"Bearer {self.token}"})
            yield conn.getresponse()
        finally:
            conn.close()

    def object_etag(self, side, key):
        """The ETag the Worker serves for key (headers only). The guide's Worker has no HEAD: its
        `?action=get` answers only once local R2 has the object's body ready, which for 4 GiB took
        longer than the 30 s a request is otherwise given (the sweep's first 4 GiB run failed so)."""
        with self.object_request(side, key, "get", "HEAD", timeout=600) as resp:
            return resp.getheader("etag", "").strip('"') if resp.status == 200 else f"HTTP {resp.status}"

    def delete_object(self, side, key):
        with self.object_request(side, key, "delete", "DELETE", timeout=60) as resp:
            resp.read()

    def uploaded_intact(self, side, key, path, r):
        """Whether the object an upload run `r` made is `path`'s bytes in that run's parts: its
        multipart ETag is the file's."""
        part_size = SEED_PART_SIZE if side == "seed" else r["part_size"]
        return self.object_etag(side, key) == self.expected_etag(path, part_size)

    def download_cmd(self, side, url, key, dest):
        """The client that downloads `key` from `side`'s Worker at `url`: curl from the guide's,
        `r2mpu download` from ours."""
        if side == "seed":
            return ["curl", "-s", "-f", "-o", dest, f"{url}/{key}?action=get"]
        return [self.cli, "download", key, dest, "--force"]

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

    def forget_etags(self, path):
        """Drops the cached ETags of `path` (a file about to be deleted)."""
        cache = self.__dict__.get("_etags", {})
        for k in [k for k in cache if k[0] == path]:
            del cache[k]
