"""Phase `resume`: `r2mpu upload` SIGKILLed once the server holds half the parts, then rerun:
the bytes lost in flight (from /proc/PID/io's rchar) and the parts re-sent, against the parts it
had in flight."""

import http.client
import json
import math
import os
import queue
import re
import signal
import subprocess
import threading
import time

from .util import free_port, log, proc_rchar
from .runner import Timeout, describe_stuck, run_timed


class Resume:
    def startup_rchar(self):
        """What `r2mpu upload` reads besides the file's bytes (glibc and ld.so at startup, about
        9 KB): the rchar of one whose create fails, read from its zombie before it is reaped."""
        env = dict(self.cli_env, R2MPU_ENDPOINT=f"http://127.0.0.1:{free_port()}")  # nothing listens there
        proc = subprocess.Popen([self.cli, "--retries", "0", "upload", self.big, "baseline"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rchar = 0
        deadline = time.monotonic() + 30
        while True:
            rchar = proc_rchar(proc.pid) or rchar
            with open(f"/proc/{proc.pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    rchar = proc_rchar(proc.pid) or rchar
                    break
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                raise Timeout("resume: an `r2mpu upload` to a closed port did not exit within 30 s")
            time.sleep(0.01)
        proc.wait()
        return rchar

    def resume(self):
        key = "ours-resume.bin"
        self.ensure_big()
        baseline = self.startup_rchar()
        self.wait_quiet("resume")
        proc = subprocess.Popen([self.cli, "upload", self.big, key], env=self.cli_env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        lines = queue.Queue()
        stderr_lines = []

        def pump(stream):
            for line in stream:
                stderr_lines.append(line)
                lines.put(line)

        threading.Thread(target=pump, args=(proc.stderr,), daemon=True).start()
        threading.Thread(target=proc.stdout.read, daemon=True).start()
        upload_id = None
        deadline = time.monotonic() + 60
        while upload_id is None and time.monotonic() < deadline:
            try:
                m = re.search(r"upload (\w+): (\d+) bytes in (\d+) parts of (\d+) bytes", lines.get(timeout=1))
            except queue.Empty:
                continue
            if m:
                upload_id, count, part_size = m.group(1), int(m.group(3)), int(m.group(4))
        if upload_id is None:
            proc.kill()
            raise RuntimeError("resume: the CLI never printed its upload id:\n" + "".join(stderr_lines))
        conn = http.client.HTTPConnection("127.0.0.1", self.ours.port, timeout=30)

        def server_parts():
            conn.request("GET", f"/uploads/{upload_id}", headers={"Authorization": f"Bearer {self.token}"})
            resp = conn.getresponse()
            return json.loads(resp.read())["parts"]

        target = math.ceil(count / 2)
        deadline = time.monotonic() + self.budget(self.args.size // 2)
        while len(server_parts()) < target:
            if proc.poll() is not None:
                raise RuntimeError("resume: the upload finished before it could be killed")
            if time.monotonic() > deadline:
                what = describe_stuck(proc.pid, self.ours, 0, os.devnull)
                proc.kill()
                proc.wait()
                raise Timeout(f"resume: the server held fewer than {target} of {count} parts after "
                              f"{self.budget(self.args.size // 2):.0f} s (upload killed); at that moment:\n{what}")
            time.sleep(0.05)
        rchar = proc_rchar(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # Parts in flight are lost whole at a kill: the bound is the most the CLI reported in flight.
        levels = [int(n) for line in stderr_lines for n in re.findall(r"(\d+) in flight", line)]
        in_flight_most = max(levels, default=None)
        at_kill = len(server_parts())
        time.sleep(1.0)  # let a part whose body had fully arrived get recorded
        conn.request("GET", f"/uploads/{upload_id}", headers={"Authorization": f"Bearer {self.token}"})
        state = json.loads(conn.getresponse().read())
        held = state["parts"]
        conn.close()
        if state["status"] != "open" or len(held) == count:
            self.notes.append(f"resume: the upload was {state['status']} with {len(held)} of {count} parts when "
                              f"killed, too late to measure; use a larger --size")
            return
        layout_len = lambda n: min(part_size, self.args.size - (n - 1) * part_size)
        held_bytes = sum(p["size"] for p in held)
        missing = [n for n in range(1, count + 1) if n not in {p["partNumber"] for p in held}]
        rerun = run_timed([self.cli, "upload", self.big, key], self.cli_env, self.tmp, "resume-rerun",
                          self.budget(self.args.size), self.ours)
        m_resumed = re.search(r"resumed: (\d+) of (\d+) parts already on the server", rerun["stderr"])
        m_sent = re.search(r"sent: (\d+) parts", rerun["stderr"])
        sent = int(m_sent.group(1)) if m_sent else None
        # The rerun sends whole parts: the missing ones, plus any the server holds but whose MD5
        # the killed run never journaled. Which ones is not printed; count them as full parts.
        redundant_parts = (sent - len(missing)) if sent is not None else None
        in_flight = max(0, rchar - baseline - held_bytes) if rchar is not None else None
        resent = (in_flight or 0) + max(0, redundant_parts or 0) * part_size
        self.results["resume"] = {
            "upload_id": upload_id, "parts": count, "part_size": part_size, "concurrency": in_flight_most,
            "killed_at_parts": at_kill, "held_after": len(held), "held_bytes": held_bytes,
            "rchar_at_kill": rchar, "rchar_baseline": baseline, "in_flight_bytes": in_flight, "missing_parts": len(missing),
            "missing_bytes": sum(layout_len(n) for n in missing),
            "resumed_line": m_resumed.group(0) if m_resumed else None, "rerun_sent_parts": sent,
            "redundant_parts": redundant_parts, "resent_bytes": resent, "bound": in_flight_most * part_size if in_flight_most else None,
            "rerun_wall": rerun["wall"], "completed": "etag:" in rerun["stdout"],
        }
        log(f"resume: {self.results['resume']}")

