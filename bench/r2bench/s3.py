"""Phase `s3` (issue 21): `aws s3 cp` (awscli from .venv, its defaults: 8 MiB parts, 10 at once)
through the Worker's `/s3` surface against `r2mpu upload` of the same file, alternating; every S3
object fetched back and compared."""

from .util import MB, human, log, same_bytes
from .workers import CpuDelta
from .runner import run_timed


class S3:
    def s3_env(self):
        """aws-cli's environment: its credentials from `r2mpu credentials` (credential_process),
        nothing of this machine's AWS_* settings. `request_checksum_calculation = when_required`
        as tests/s3.rs sets it: over plain http botocore then signs each part's SHA-256, which the
        Worker checks as the part streams."""
        home = self.tmp / "aws-home"
        home.mkdir(exist_ok=True)
        (home / "config").write_text(
            f"[default]\nregion = auto\ncredential_process = {self.cli} credentials\n"
            "request_checksum_calculation = when_required\ns3 =\n  addressing_style = path\n")
        env = {k: v for k, v in self.cli_env.items() if not k.startswith("AWS_")}
        env.update(HOME=str(home), AWS_CONFIG_FILE=str(home / "config"),
                   AWS_SHARED_CREDENTIALS_FILE=str(home / "credentials"), AWS_EC2_METADATA_DISABLED="true")
        return env

    def s3(self):
        """`aws s3 cp` of the --size file to /s3, alternating with `r2mpu upload`, --runs times
        each; every S3 object is fetched back with curl and compared byte for byte."""
        self.ensure_big()
        path, size = self.big, self.args.size
        env, endpoint = self.s3_env(), f"http://127.0.0.1:{self.ours.port}/s3"
        out = {"s3": [], "rest": []}
        for i in range(self.args.runs):
            for way in (("s3", "rest") if i % 2 == 0 else ("rest", "s3")):
                key, label = f"{way}-{i}.bin", f"s3-phase-{way}-{i}"
                if way == "rest":
                    out["rest"].append(self.retry_once(label, lambda: self.upload_ours(path, key, label)))
                    continue

                def attempt():
                    self.wait_quiet(label)
                    d = CpuDelta(self.ours)
                    r = run_timed([self.python, "-m", "awscli", "s3", "cp", "--no-progress", path,
                                   f"s3://r2mpu/{key}", "--endpoint-url", endpoint], env, self.tmp, label,
                                  self.budget(size), self.ours)
                    r["server"] = d.finish()
                    return r

                r = self.retry_once(label, attempt)
                dest = self.tmp / "data" / f"{label}.bin"
                run_timed(["curl", "-s", "-f", "-o", dest, "-H", f"Authorization: Bearer {self.token}",
                           f"http://127.0.0.1:{self.ours.port}/objects/{key}"], self.cli_env, self.tmp, f"{label}-get",
                          self.budget(size))
                r["identical"] = same_bytes(path, dest)
                dest.unlink()
                out["s3"].append(r)
            s, rest = out["s3"][-1], out["rest"][-1]
            log(f"s3 run {i + 1}: aws s3 cp {size / s['wall'] / MB:.1f} MB/s (r2mpu upload "
                f"{size / rest['wall'] / MB:.1f}), identical={s['identical']}, workerd {s['server'].workerd:.2f} s "
                f"(r2mpu upload {rest['server'].workerd:.2f} s), client {s['cpu']:.2f} s CPU "
                f"(r2mpu {rest['cpu']:.2f} s), RSS {human(s['rss'])}")
        self.results["s3"] = out
