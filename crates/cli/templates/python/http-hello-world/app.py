"""{{project-name}}: a minimal HTTP component. Every request gets a greeting."""

from wasi_http import Response, send_response
from wit_world import exports


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request, response_out):
        send_response(response_out, Response.text(200, "Hello from {{project-name}}!\n"))
