// {{project-name}}: a minimal HTTP component. Every request gets a greeting.

addEventListener("fetch", (event: FetchEvent) => {
  event.respondWith(
    new Response("Hello from {{project-name}}!\n", {
      headers: { "content-type": "text/plain; charset=utf-8" },
    }),
  );
});
