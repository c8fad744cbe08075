"""{{project-name}}: an HTTP component that calls another service.

`GET /` fetches `UPSTREAM_URL` (an environment variable set in
`.nimbus/config.yaml`) through the host's `wasi:http` client and answers
with the upstream status and body. Nimbus denies outgoing requests by
default; the upstream's host must be listed in `workload.allowedHosts`.
"""

import os

from wasi_http import HttpError, Response, get, send_response
from wit_world import exports


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request, response_out):
        send_response(response_out, forward())


def forward() -> Response:
    url = os.environ.get("UPSTREAM_URL")
    if url is None:
        return Response.text(500, "UPSTREAM_URL is not set\n")
    try:
        upstream = get(url)
    except HttpError as error:
        return Response.text(502, f"upstream {url} failed: {error}\n")
    body = upstream.body.decode("utf-8", errors="replace")
    return Response.text(200, f"upstream {url} answered {upstream.status}\n{body}")
