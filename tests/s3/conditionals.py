"""boto3 GetObject and HeadObject against r2mpu's /s3: a Range, and each conditional header
(If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since) holding and failing. Prints
each call's HTTP status (and the range's bytes) as one JSON line.

Usage: conditionals.py ENDPOINT BUCKET CREDENTIALS_JSON KEY
"""
import datetime
import json
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint, bucket, credentials, key = sys.argv[1:5]
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
data = bytes(range(256)) * 4
etag = s3.put_object(Bucket=bucket, Key=key, Body=data)["ETag"]
modified = s3.head_object(Bucket=bucket, Key=key)["LastModified"]
hour = datetime.timedelta(hours=1)


def status(call, **conditions):
    try:
        answer = call(Bucket=bucket, Key=key, **conditions)
        if "Body" in answer:
            answer["Body"].read()
        return answer["ResponseMetadata"]["HTTPStatusCode"]
    except ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"]


ranged = s3.get_object(Bucket=bucket, Key=key, Range="bytes=5-14")
out = {
    "range": list(ranged["Body"].read()),
    "content_range": ranged["ContentRange"],
    "range_status": ranged["ResponseMetadata"]["HTTPStatusCode"],
}
for name, call in [("get", s3.get_object), ("head", s3.head_object)]:
    out[name] = {
        "if_match": status(call, IfMatch=etag),
        "if_match_other": status(call, IfMatch='"other"'),
        "if_none_match": status(call, IfNoneMatch=etag),
        "if_none_match_other": status(call, IfNoneMatch='"other"'),
        "if_modified_since_later": status(call, IfModifiedSince=modified + hour),
        "if_modified_since_earlier": status(call, IfModifiedSince=modified - hour),
        "if_unmodified_since_earlier": status(call, IfUnmodifiedSince=modified - hour),
        "if_unmodified_since_later": status(call, IfUnmodifiedSince=modified + hour),
    }
print(json.dumps(out))
