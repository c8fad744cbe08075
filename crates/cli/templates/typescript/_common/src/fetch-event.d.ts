// The component's HTTP entry point: componentize-js's runtime
// (StarlingMonkey) hands each request to a service worker's `fetch` event
// listener. TypeScript's WebWorker library types the event, not this
// listener on the global scope.
declare function addEventListener(type: "fetch", listener: (event: FetchEvent) => void): void;
