"""{{project-name}}: a request counter on `wasi:keyvalue`.

Every request to `/{key}` atomically increments `key` in the bucket named by
`KV_BUCKET` (default `default`) and answers with the new count. The host
decides where the bucket lives (memory, a file, Redis, NATS): see
`dev.keyvalue` in `.nimbus/config.yaml`.
"""

import os

from componentize_py_types import Err
from wasi_http import Response, read_request, send_response
from wit_world import exports
from wit_world.imports import atomics, store


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request, response_out):
        path = read_request(request, with_body=False).path.strip("/")
        send_response(response_out, count(path or "hits"))


def count(key: str) -> Response:
    bucket_name = os.environ.get("KV_BUCKET", "default")
    try:
        value = atomics.increment(store.open(bucket_name), key, 1)
    except Err as error:
        return Response.text(500, f"key-value error: {describe(error.value)}\n")
    return Response.text(200, f"{key}: {value}\n")


def describe(error: store.Error) -> str:
    if isinstance(error, store.Error_NoSuchStore):
        return "no such bucket"
    if isinstance(error, store.Error_AccessDenied):
        return "access denied"
    return error.value
