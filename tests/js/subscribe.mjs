// Subscribes through the router with a third-party client and prints what happens, one JSON
// object a line: {"connected":true} (WebSocket), {"next":<result>}, {"error":<errors>},
// {"complete":true}. Exits 0 after `complete`, 2 after an error; runs until killed otherwise.
//
//   node subscribe.mjs ws|sse <http-url> <token|-> <query> [variables-json]
//
// `ws` uses the graphql-ws library (graphql-transport-ws, token in connection_init), `sse` the
// graphql-sse library in distinct connections mode (token in the Authorization header).

import WebSocket from 'ws';
import { createClient as createWsClient } from 'graphql-ws';
import { createClient as createSseClient } from 'graphql-sse';

const [mode, url, token, query, variablesJson] = process.argv.slice(2);
if (!mode || !url || !token || !query) {
  console.error('usage: subscribe.mjs ws|sse <http-url> <token|-> <query> [variables-json]');
  process.exit(64);
}
const variables = variablesJson ? JSON.parse(variablesJson) : {};
const authorization = token === '-' ? undefined : `Bearer ${token}`;
const print = (value) => process.stdout.write(JSON.stringify(value) + '\n');

let client;
if (mode === 'ws') {
  client = createWsClient({
    url: url.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    connectionParams: authorization ? { Authorization: authorization } : {},
    retryAttempts: 0,
    lazy: false,
    on: {
      connected: () => print({ connected: true }),
      closed: (event) => {
        if (event && event.code !== 1000) print({ closed: event.code, reason: event.reason });
      },
    },
  });
} else if (mode === 'sse') {
  client = createSseClient({
    url,
    singleConnection: false,
    retryAttempts: 0,
    headers: authorization ? { Authorization: authorization } : {},
  });
} else {
  console.error(`unknown mode ${mode}`);
  process.exit(64);
}

client.subscribe(
  { query, variables },
  {
    next: (result) => print({ next: result }),
    error: (error) => {
      print({ error: Array.isArray(error) ? error : String(error?.message ?? error) });
      process.exit(2);
    },
    complete: () => {
      print({ complete: true });
      process.exit(0);
    },
  },
);
