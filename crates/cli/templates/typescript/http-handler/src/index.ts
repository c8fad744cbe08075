// {{project-name}}: an HTTP component with several routes, JSON in and out.
//
// - `GET /`                → service info
// - `GET /hello/{name}`    → `{"greeting": "Hello, {name}!"}`
// - `POST /echo`           → the JSON body back, with its size
// - anything else          → 404 `{"error": ...}`

addEventListener("fetch", (event: FetchEvent) => {
  event.respondWith(route(event.request));
});

async function route(request: Request): Promise<Response> {
  const path = rawPath(request.url);
  const segments = path.replace(/^\/+|\/+$/g, "").split("/");
  if (request.method === "GET" && segments.length === 1 && segments[0] === "") {
    return json(200, {
      service: "{{project-name}}",
      routes: ["GET /", "GET /hello/{name}", "POST /echo"],
    });
  }
  if (request.method === "GET" && segments.length === 2 && segments[0] === "hello" && segments[1] !== "") {
    return json(200, { greeting: `Hello, ${segments[1]}!` });
  }
  if (request.method === "POST" && segments.length === 1 && segments[0] === "echo") {
    const bytes = new Uint8Array(await request.arrayBuffer());
    let received: unknown;
    try {
      // A byte-order mark is kept, so it fails to parse as in the Rust and
      // Python versions.
      const text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
      received = JSON.parse(text, finiteNumbers);
    } catch (error) {
      return json(400, { error: `body is not JSON: ${(error as Error).message}` });
    }
    return json(200, { received: sortedKeys(received), bytes: bytes.length });
  }
  return json(404, { error: `no route for ${path}` });
}

// The path as the client sent it: `new URL()` would resolve `.` and `..`
// segments, which the Rust and Python versions route as they are.
function rawPath(url: string): string {
  const afterAuthority = url.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i, "");
  const end = afterAuthority.search(/[?#]/);
  return (end === -1 ? afterAuthority : afterAuthority.slice(0, end)) || "/";
}

// Numbers JSON cannot hold (`1e400` parses as Infinity) are refused, as
// the Rust version's parser does.
function finiteNumbers(_key: string, value: unknown): unknown {
  if (typeof value === "number" && !Number.isFinite(value)) {
    throw new SyntaxError("number out of range");
  }
  return value;
}

function json(status: number, value: unknown): Response {
  return new Response(JSON.stringify(value), {
    status,
    headers: { "content-type": "application/json" },
  });
}

// Objects with their keys in order, as the Rust and Python versions of
// this template print them.
function sortedKeys(value: unknown): unknown {
  if (Array.isArray(value)) {
    return value.map(sortedKeys);
  }
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return Object.fromEntries(entries.map(([key, inner]) => [key, sortedKeys(inner)]));
  }
  return value;
}
