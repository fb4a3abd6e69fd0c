"""Requests r2mpu's /s3 must refuse, each made with boto3 (a hook alters what it must after
botocore signed it). Prints {case: S3 error code} as one JSON line, and the ids it made.

Usage: refusals.py SETTINGS_JSON  (endpoint, bucket, and credentials: good, expired, read_only,
other; good's token has the prefix `s3-refuse/`)
"""
import json
import sys
import urllib.error
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

settings = json.loads(sys.argv[1])
endpoint, bucket = settings["endpoint"], settings["bucket"]


def client(creds, secret=None):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="auto",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=secret or creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def code_of(call):
    try:
        call()
        return "accepted"
    except ClientError as error:
        return error.response["Error"]["Code"]


good = client(settings["good"])
results, made = {}, {}

# A signature altered after signing.
tampered = client(settings["good"])
def tamper(request, **_):
    header = request.headers["Authorization"]
    header = header.decode() if isinstance(header, bytes) else header
    last = header[-1]
    request.headers["Authorization"] = header[:-1] + ("0" if last != "0" else "1")
tampered.meta.events.register("before-send.s3.PutObject", tamper)
results["tampered"] = code_of(lambda: tampered.put_object(Bucket=bucket, Key="s3-refuse/tampered", Body=b"x" * 10))

results["wrong_secret"] = code_of(
    lambda: client(settings["good"], secret="0" * 40).put_object(Bucket=bucket, Key="s3-refuse/wrong", Body=b"x")
)
results["expired"] = code_of(
    lambda: client(settings["expired"]).put_object(Bucket=bucket, Key="s3-refuse/expired", Body=b"x")
)
results["outside_prefix"] = code_of(lambda: good.put_object(Bucket=bucket, Key="elsewhere/x", Body=b"x"))
results["read_only_writing"] = code_of(
    lambda: client(settings["read_only"]).put_object(Bucket=bucket, Key="s3-refuse/read-only", Body=b"x")
)
results["unknown_bucket"] = code_of(lambda: good.put_object(Bucket="nope", Key="s3-refuse/nope", Body=b"x"))

# Another subject's upload id.
upload_id = good.create_multipart_upload(Bucket=bucket, Key="s3-refuse/mine")["UploadId"]
made["upload_id"] = upload_id
results["other_subjects_upload"] = code_of(
    lambda: client(settings["other"]).upload_part(
        Bucket=bucket, Key="s3-refuse/mine", UploadId=upload_id, PartNumber=1, Body=b"y" * 100
    )
)

# Bodies that are not the bytes their x-amz-content-sha256 names (same length).
altered = client(settings["good"])
def alter(request, **_):
    body = request.body if isinstance(request.body, bytes) else request.body.read()
    request.body = b"Z" + body[1:]
altered.meta.events.register("before-send.s3.PutObject", alter)
altered.meta.events.register("before-send.s3.UploadPart", alter)
results["sha256_put"] = code_of(
    lambda: altered.put_object(Bucket=bucket, Key="s3-refuse/altered", Body=b"a" * 1000)
)
results["sha256_part"] = code_of(
    lambda: altered.upload_part(Bucket=bucket, Key="s3-refuse/mine", UploadId=upload_id, PartNumber=1, Body=b"b" * 1000)
)

# A presigned GET works as signed, and not once altered.
good.put_object(Bucket=bucket, Key="s3-refuse/presigned", Body=b"presigned bytes")
url = good.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "s3-refuse/presigned"}, ExpiresIn=60)
made["presigned_body"] = urllib.request.urlopen(url).read().decode()
try:
    urllib.request.urlopen(url.replace("presigned", "presigneX", 1))
    results["presigned_altered"] = "accepted"
except urllib.error.HTTPError as error:
    results["presigned_altered"] = error.headers.get("x-amz-error-code")

print(json.dumps({"results": results, "made": made}))
