"""boto3 list_multipart_uploads against r2mpu's /s3: begins an upload over S3, then lists the
caller's unfinished uploads (all of them under PREFIX, and under PREFIX + "rest"). Prints one
JSON line.

Usage: list_uploads.py ENDPOINT BUCKET CREDENTIALS_JSON PREFIX
"""
import json
import sys

import boto3
from botocore.config import Config

endpoint, bucket, credentials, prefix = sys.argv[1:5]
creds = json.loads(credentials)
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    region_name="auto",
    aws_access_key_id=creds["AccessKeyId"],
    aws_secret_access_key=creds["SecretAccessKey"],
    aws_session_token=creds["SessionToken"],
    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
)
made = s3.create_multipart_upload(Bucket=bucket, Key=prefix + "s3-made.bin")["UploadId"]


def listed(under):
    answer = s3.list_multipart_uploads(Bucket=bucket, Prefix=under)
    return sorted([u["Key"], u["UploadId"]] for u in answer.get("Uploads", []))


print(json.dumps({"made": made, "all": listed(prefix), "rest": listed(prefix + "rest")}))
