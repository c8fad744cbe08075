// {{project-name}}: a request counter on `wasi:keyvalue`.
//
// Every request to `/{key}` atomically increments `key` in the bucket named
// by `KV_BUCKET` (default `default`) and answers with the new count. The
// host decides where the bucket lives (memory, a file, Redis, NATS): see
// `dev.keyvalue` in `.nimbus/config.yaml`.

import { getEnvironment } from "wasi:cli/environment@0.2.10";
import { increment } from "wasi:keyvalue/atomics@0.2.0-draft";
import { open, type Error as StoreError } from "wasi:keyvalue/store@0.2.0-draft";

addEventListener("fetch", (event: FetchEvent) => {
  event.respondWith(count(event.request));
});

async function count(request: Request): Promise<Response> {
  const path = rawPath(request.url).replace(/^\/+|\/+$/g, "");
  const key = path === "" ? "hits" : path;
  const bucketName = getEnvironment().find(([name]) => name === "KV_BUCKET")?.[1] ?? "default";
  try {
    const count = increment(open(bucketName), key, 1n);
    return text(200, `${key}: ${count}\n`);
  } catch (error) {
    return text(500, `key-value error: ${describe(error)}\n`);
  }
}

// The path as the client sent it: `new URL()` would resolve `.` and `..`
// segments, which the Rust and Python versions keep in the key.
function rawPath(url: string): string {
  const afterAuthority = url.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i, "");
  const end = afterAuthority.search(/[?#]/);
  return (end === -1 ? afterAuthority : afterAuthority.slice(0, end)) || "/";
}

// A failed WIT call throws an error whose `payload` is the WIT error.
function describe(error: unknown): string {
  const payload = (error as { payload?: StoreError }).payload;
  switch (payload?.tag) {
    case "no-such-store":
      return "no such bucket";
    case "access-denied":
      return "access denied";
    case "other":
      return payload.val;
    default:
      return String(error);
  }
}

function text(status: number, body: string): Response {
  return new Response(body, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8" },
  });
}
