"""boto3 against r2mpu's /s3: upload_file in parts (multipart threshold 5 MiB), download_file,
with credentials from POST /credentials. Prints what happened as one JSON line.

Usage: boto_round_trip.py ENDPOINT BUCKET CREDENTIALS_JSON FILE KEY OUT
"""
import json
import sys

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

endpoint, bucket, credentials, path, key, out = sys.argv[1:7]
creds = json.loads(credentials)
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    region_name="auto",
    aws_access_key_id=creds["AccessKeyId"],
    aws_secret_access_key=creds["SecretAccessKey"],
    aws_session_token=creds["SessionToken"],
    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
)
MiB = 1 << 20
transfer = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=4)
s3.upload_file(path, bucket, key, Config=transfer)
head = s3.head_object(Bucket=bucket, Key=key)
s3.download_file(bucket, key, out, Config=transfer)
listed = s3.list_objects_v2(Bucket=bucket, Prefix=key)
print(json.dumps({
    "etag": head["ETag"],
    "size": head["ContentLength"],
    "listed": [o["Key"] for o in listed.get("Contents", [])],
    "buckets": [b["Name"] for b in s3.list_buckets()["Buckets"]],
}))
