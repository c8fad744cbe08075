"""Plain request and response values over `wasi:http`, so that `app.py`
reads like an ordinary Python handler.

componentize-py generates the `wit_world` bindings on every build; this
module is the only place that touches their HTTP resources. Calls block:
a component instance serves one request at a time, so nothing is lost by
waiting.
"""

from dataclasses import dataclass, field
from typing import List, Optional, Tuple
from urllib.parse import urlsplit

from componentize_py_types import Err, Ok
from wit_world.imports import types
from wit_world.imports.streams import StreamError_Closed

# Only a world that imports the outgoing handler has it; componentize-py
# resolves imports when it builds, so it is looked up here, not in `get`.
try:
    from wit_world.imports import outgoing_handler
except ImportError:
    outgoing_handler = None

# The most a body may hold when read whole (requests and responses alike).
MAX_BODY_BYTES = 16 * 1024 * 1024
# `blocking-write-and-flush` takes at most 4 KiB per call.
WRITE_CHUNK = 4096

Headers = List[Tuple[str, bytes]]


@dataclass
class Request:
    """An incoming request, its body read whole."""

    method: str
    path: str
    query: str
    headers: Headers
    body: bytes


@dataclass
class Response:
    """A response: a status, a body and its headers."""

    status: int
    body: bytes = b""
    headers: Headers = field(default_factory=list)

    @classmethod
    def text(cls, status: int, text: str) -> "Response":
        return cls(status, text.encode(), [("content-type", b"text/plain; charset=utf-8")])


def read_request(request: types.IncomingRequest, with_body: bool = True) -> Request:
    """The method, path, query, headers and (unless `with_body` is false)
    the whole body of `request`; a body over `MAX_BODY_BYTES` raises
    `HttpError`."""
    path_with_query = request.path_with_query() or "/"
    path, _, query = path_with_query.partition("?")
    with request.headers() as fields:
        headers = fields.entries()
    body = _read_body(request.consume()) if with_body else b""
    return Request(_method_name(request.method()), path, query, headers, body)


def send_response(response_out: types.ResponseOutparam, response: Response) -> None:
    """Sends `response` through `response_out`, body and all."""
    outgoing = types.OutgoingResponse(types.Fields.from_list(response.headers))
    outgoing.set_status_code(response.status)
    body = outgoing.body()
    types.ResponseOutparam.set(response_out, Ok(outgoing))
    _write_body(body, response.body)


def get(url: str) -> Response:
    """GETs `url` through the host (`wasi:http/outgoing-handler`), which
    applies the workload's `allowedHosts`. A refusal, a connection error or
    an unsupported URL raises `HttpError`."""
    if outgoing_handler is None:
        raise HttpError("the world does not import wasi:http/outgoing-handler (add it to wit/world.wit)")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise HttpError(f"not an http(s) URL: {url}")
    request = types.OutgoingRequest(types.Fields())
    request.set_method(types.Method_Get())
    request.set_scheme(types.Scheme_Https() if parts.scheme == "https" else types.Scheme_Http())
    request.set_authority(parts.netloc)
    request.set_path_with_query((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
    types.OutgoingBody.finish(request.body(), None)
    try:
        future = outgoing_handler.handle(request, None)
    except Err as error:
        raise HttpError(_describe(error.value)) from None
    with future:
        with future.subscribe() as ready:
            ready.block()
        outcome = future.get()
    if outcome is None or isinstance(outcome, Err):
        raise HttpError("the response was already taken")
    if isinstance(outcome.value, Err):
        raise HttpError(_describe(outcome.value.value))
    with outcome.value.value as response:
        with response.headers() as fields:
            headers = fields.entries()
        return Response(response.status(), _read_body(response.consume()), headers)


class HttpError(Exception):
    """An outgoing request that got no response."""


def _method_name(method: types.Method) -> str:
    if isinstance(method, types.Method_Other):
        return method.value
    return type(method).__name__.removeprefix("Method_").upper()


def _read_body(body: types.IncomingBody) -> bytes:
    chunks = []
    size = 0
    with body.stream() as stream:
        while True:
            try:
                chunk = stream.blocking_read(64 * 1024)
            except Err as error:
                if isinstance(error.value, StreamError_Closed):
                    break
                raise
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise HttpError(f"a body over {MAX_BODY_BYTES} bytes")
            chunks.append(chunk)
    types.IncomingBody.finish(body)
    return b"".join(chunks)


def _write_body(body: types.OutgoingBody, data: bytes) -> None:
    with body.write() as stream:
        for start in range(0, len(data), WRITE_CHUNK):
            stream.blocking_write_and_flush(data[start : start + WRITE_CHUNK])
    types.OutgoingBody.finish(body, None)


def _describe(code: Optional[types.ErrorCode]) -> str:
    """An error code as words: `DestinationNotFound` → `destination not found`."""
    if code is None:
        return "unknown error"
    name = type(code).__name__.removeprefix("ErrorCode_")
    words = "".join(f" {c.lower()}" if c.isupper() else c for c in name).strip()
    detail = getattr(code, "value", None)
    return f"{words} ({detail})" if isinstance(detail, str) and detail else words
