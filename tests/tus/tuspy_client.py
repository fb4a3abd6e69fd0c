"""tuspy (PyPI `tuspy`): upload FILE as KEY in CHUNK_SIZE chunks, stop half-way, then resume
from the upload URL alone with a fresh client; every chunk carries a sha1 Upload-Checksum. Env: R2MPU_URL, R2MPU_TOKEN, CHUNK_SIZE."""
import os
import sys

from tusclient import client

path, key = sys.argv[1], sys.argv[2]
chunk = int(os.environ["CHUNK_SIZE"])
headers = {"Authorization": "Bearer " + os.environ["R2MPU_TOKEN"]}
endpoint = os.environ["R2MPU_URL"] + "/tus"
size = os.path.getsize(path)

first = client.TusClient(endpoint, headers=headers).uploader(
    path, chunk_size=chunk, metadata={"filename": key}, upload_checksum=True
)
first.upload(stop_at=size // 2)
url = first.url
print("stopped at", first.offset, "of", size, "at", url)

fresh = client.TusClient(endpoint, headers=headers).uploader(path, url=url, chunk_size=chunk, upload_checksum=True)
print("resumed from", fresh.offset)
fresh.upload()
assert fresh.offset == size, (fresh.offset, size)
