"""boto3 over https against r2mpu's /s3, with botocore's defaults: each part and PutObject goes
as aws-chunked with a CRC32 trailer (x-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER).
A `before-send` hook records what was sent and, for the refusals, flips one data byte in
flight (the trailer then no longer matches). Prints what happened as one JSON line.

Usage: boto_chunked.py ENDPOINT BUCKET CREDENTIALS_JSON FILE KEY OUT
"""
import json
import sys
import warnings

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

warnings.filterwarnings("ignore")  # wrangler's self-signed certificate, taken on purpose

endpoint, bucket, credentials, path, key, out = sys.argv[1:7]
creds = json.loads(credentials)
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    region_name="auto",
    verify=False,
    aws_access_key_id=creds["AccessKeyId"],
    aws_secret_access_key=creds["SecretAccessKey"],
    aws_session_token=creds["SessionToken"],
    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
)
sent = []
corrupt = {"on": False}


def text(value):
    return value.decode() if isinstance(value, bytes) else value


def before_send(request, **_):
    headers = {name.lower(): text(value) for name, value in request.headers.items()}
    sent.append({
        "method": request.method,
        "sha256": headers.get("x-amz-content-sha256"),
        "trailer": headers.get("x-amz-trailer"),
        "encoding": headers.get("content-encoding"),
        "partNumber": "partNumber=" in request.url,
    })
    if corrupt["on"] and request.method == "PUT":
        raw = request.body.read()
        at = raw.index(b"\r\n") + 2 + 3  # the fourth byte of the first chunk's data
        raw = raw[:at] + bytes([raw[at] ^ 0xFF]) + raw[at + 1:]
        request.body = raw


s3.meta.events.register("before-send.s3.*", before_send)
MiB = 1 << 20
transfer = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=4)
s3.upload_file(path, bucket, key, Config=transfer)
parts_sent = [s for s in sent if s["partNumber"]]
head = s3.head_object(Bucket=bucket, Key=key)
s3.download_file(bucket, key, out, Config=transfer)


def code_of(call):
    try:
        call()
        return "accepted"
    except ClientError as e:
        return e.response["Error"]["Code"]


corrupt["on"] = True
bad_put = code_of(lambda: s3.put_object(Bucket=bucket, Key=key + ".bad", Body=b"x" * 100_000))
upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key + ".badpart")["UploadId"]
bad_part = code_of(
    lambda: s3.upload_part(Bucket=bucket, Key=key + ".badpart", UploadId=upload_id, PartNumber=1, Body=b"y" * (5 * MiB))
)
corrupt["on"] = False
bad_put_stored = code_of(lambda: s3.head_object(Bucket=bucket, Key=key + ".bad"))
bad_parts = s3.list_parts(Bucket=bucket, Key=key + ".badpart", UploadId=upload_id).get("Parts", [])
s3.abort_multipart_upload(Bucket=bucket, Key=key + ".badpart", UploadId=upload_id)
print(json.dumps({
    "etag": head["ETag"],
    "size": head["ContentLength"],
    "parts_sent": parts_sent,
    "bad_put": bad_put,
    "bad_put_stored": bad_put_stored,
    "bad_part": bad_part,
    "bad_parts_listed": len(bad_parts),
}))
