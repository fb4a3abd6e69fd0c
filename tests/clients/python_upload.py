"""A whole upload through the Python client generated from openapi.yaml (openapi-python-client):
create, binary parts, resume state, complete, download. Driven by tests/clients.rs.

Usage: python_upload.py FILE KEY OUT   (env: R2MPU_URL, R2MPU_TOKEN, PART_SIZE)
"""

import io
import os
import sys

from r2mpu_client import AuthenticatedClient
from r2mpu_client.api.objects import get_object
from r2mpu_client.api.uploads import complete_upload, create_upload, get_upload, upload_part
from r2mpu_client.models import CreatedUpload, CreateUpload, Problem
from r2mpu_client.types import File


def main(path: str, key: str, out: str) -> None:
    client = AuthenticatedClient(base_url=os.environ["R2MPU_URL"], token=os.environ["R2MPU_TOKEN"], timeout=120)
    part_size = int(os.environ["PART_SIZE"])
    size = os.path.getsize(path)

    created = create_upload.sync(client=client, body=CreateUpload(key=key, size=size, part_size=part_size))
    assert isinstance(created, CreatedUpload), created
    with open(path, "rb") as f:
        for number in range(1, created.part_count + 1):
            chunk = f.read(part_size)
            part = upload_part.sync(created.upload_id, number, client=client, body=File(payload=io.BytesIO(chunk)))
            assert not isinstance(part, Problem), part.to_dict()
            assert part.part_number == number and part.size == len(chunk)

    state = get_upload.sync(created.upload_id, client=client)
    assert [p.part_number for p in state.parts] == list(range(1, created.part_count + 1))

    done = complete_upload.sync(created.upload_id, client=client)
    assert not isinstance(done, Problem), done.to_dict()
    assert done.size == size

    got = get_object.sync_detailed(key, client=client)
    assert got.status_code == 200, got.status_code
    with open(out, "wb") as f:
        f.write(got.content)
    print(f"etag={done.etag}")


if __name__ == "__main__":
    main(*sys.argv[1:])
