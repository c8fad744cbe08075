// {{project-name}}: an HTTP component that calls another service.
//
// `GET /` fetches `UPSTREAM_URL` (an environment variable set in
// `.nimbus/config.yaml`) with the standard `fetch` and answers with the
// upstream status and body. Nimbus denies outgoing requests by default; the
// upstream's host must be listed in `workload.allowedHosts`.

import { getEnvironment } from "wasi:cli/environment@0.2.10";

addEventListener("fetch", (event: FetchEvent) => {
  event.respondWith(forward());
});

async function forward(): Promise<Response> {
  const url = getEnvironment().find(([name]) => name === "UPSTREAM_URL")?.[1];
  if (url === undefined) {
    return text(500, "UPSTREAM_URL is not set\n");
  }
  try {
    const upstream = await fetch(url);
    const body = await upstream.text();
    return text(200, `upstream ${url} answered ${upstream.status}\n${body}`);
  } catch (error) {
    return text(502, `upstream ${url} failed: ${(error as Error).message}\n`);
  }
}

function text(status: number, body: string): Response {
  return new Response(body, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8" },
  });
}
