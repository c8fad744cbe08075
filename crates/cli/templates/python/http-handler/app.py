"""{{project-name}}: an HTTP component with several routes, JSON in and out.

- `GET /`                → service info
- `GET /hello/{name}`    → `{"greeting": "Hello, {name}!"}`
- `POST /echo`           → the JSON body back, with its size
- anything else          → 404 `{"error": ...}`
"""

import json
import math

from wasi_http import HttpError, Request, Response, read_request, send_response
from wit_world import exports


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request, response_out):
        try:
            response = route(read_request(request))
        except HttpError as error:
            response = reply(413, {"error": str(error)})
        send_response(response_out, response)


def route(request: Request) -> Response:
    segments = request.path.strip("/").split("/")
    if request.method == "GET" and segments == [""]:
        return reply(200, {
            "service": "{{project-name}}",
            "routes": ["GET /", "GET /hello/{name}", "POST /echo"],
        })
    if request.method == "GET" and len(segments) == 2 and segments[0] == "hello" and segments[1]:
        return reply(200, {"greeting": f"Hello, {segments[1]}!"})
    if request.method == "POST" and segments == ["echo"]:
        try:
            received = json.loads(
                request.body.decode("utf-8"),
                parse_constant=refuse_constant,
                parse_float=finite_float,
            )
        except ValueError as error:
            return reply(400, {"error": f"body is not JSON: {error}"})
        return reply(200, {"received": sorted_keys(received), "bytes": len(request.body)})
    return reply(404, {"error": f"no route for {request.path}"})


def refuse_constant(name: str):
    """`NaN` and `Infinity` are not JSON (Python's parser takes them)."""
    raise ValueError(f"{name} is not a JSON value")


def finite_float(text: str) -> float:
    """Numbers JSON cannot hold (`1e400`) are refused, as the Rust
    version's parser does."""
    value = float(text)
    if math.isinf(value):
        raise ValueError("number out of range")
    return value


def reply(status: int, value) -> Response:
    body = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return Response(status, body.encode(), [("content-type", b"application/json")])


def sorted_keys(value):
    """Objects with their keys in order, as the Rust and TypeScript versions
    of this template print them."""
    if isinstance(value, dict):
        return {key: sorted_keys(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [sorted_keys(item) for item in value]
    return value
