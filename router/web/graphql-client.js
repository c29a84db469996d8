// A small GraphQL client for the Shippy web UI and the playground: queries and mutations over HTTP
// POST, subscriptions over one WebSocket speaking graphql-transport-ws (the protocol the router
// serves on the same path). Plain ES module, no dependencies. Operations listed in the router's
// first-party manifest (/assets/persisted-documents.json) are sent as trusted documents, by id, so
// the UI keeps working on a router that runs nothing else (`persisted_documents.only`).

/** The GraphQL endpoint of this router (same origin as the page). */
export const GRAPHQL_PATH = "/graphql";

/** A failed GraphQL request: `errors` are the response's GraphQL errors (maybe empty), `status` the HTTP status (0: no answer). */
export class ApiError extends Error {
  constructor(message, { errors = [], status = 0, data = null } = {}) {
    super(message);
    this.name = "ApiError";
    this.errors = errors;
    this.status = status;
    this.data = data;
  }
}

/** Operation text -> document id, from the first-party manifest (loaded once). */
let documentIds = null;

async function documentIdOf(query) {
  documentIds ??= fetch("/assets/persisted-documents.json")
    .then((response) => (response.ok ? response.json() : { operations: [] }))
    .then((manifest) => new Map(manifest.operations.map((operation) => [operation.body, operation.id])))
    .catch(() => new Map());
  return (await documentIds).get(query);
}

/** Codes with which a router says it does not know a document id. */
const UNKNOWN_DOCUMENT = new Set(["PERSISTED_QUERY_NOT_FOUND", "PERSISTED_QUERY_NOT_SUPPORTED"]);

/**
 * The payload for `query`: by its document id when the manifest lists it, else its text. A
 * router that does not know the id (an older one) gets the text on a second try (see `send`).
 */
export async function payloadFor(query, variables = {}) {
  const documentId = await documentIdOf(query);
  return documentId ? { documentId, variables } : { query, variables };
}

/** Sends `query` by id when it can, falling back to its text; the whole result. */
export async function send(query, variables = {}, options = {}) {
  const payload = await payloadFor(query, variables);
  const all = await post(payload, options);
  if (payload.documentId && all.errors?.some((e) => UNKNOWN_DOCUMENT.has(e.extensions?.code))) {
    return post({ query, variables }, options);
  }
  return all;
}

/**
 * Sends one operation; resolves to its `data` when there are no errors, throws an ApiError otherwise
 * (partial data is kept on the error).
 */
export async function request(query, variables = {}, { token, headers = {}, signal } = {}) {
  const all = await send(query, variables, { token, headers, signal });
  if (all.errors && all.errors.length) {
    throw new ApiError(all.errors[0].message, { errors: all.errors, status: all.status, data: all.data ?? null });
  }
  return all.data;
}

/** Sends one operation and returns the whole result (`data`, `errors`, plus `status`) without throwing on GraphQL errors. */
export async function post(payload, { token, headers = {}, signal } = {}) {
  const sent = { "content-type": "application/json", accept: "application/graphql-response+json, application/json", ...headers };
  if (token) sent.authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(GRAPHQL_PATH, { method: "POST", headers: sent, body: JSON.stringify(payload), signal });
  } catch (cause) {
    if (cause && cause.name === "AbortError") throw cause;
    throw new ApiError("Could not reach the Shippy server. Check your connection and try again.");
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`The server answered ${response.status} without a GraphQL response.`, { status: response.status });
  }
  return { ...body, status: response.status };
}

/** The WebSocket URL of the endpoint. */
export function websocketUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${GRAPHQL_PATH}`;
}

/** Close codes of graphql-transport-ws that mean "do not retry with the same token". */
const FATAL_CLOSES = new Set([4400, 4401, 4403, 4406]);

/**
 * One graphql-transport-ws connection, opened lazily on the first subscription and shared by all of
 * them. `connectionParams` go in `connection_init` (Shippy reads `{Authorization: "Bearer ..."}`).
 * When the socket drops unexpectedly, each live subscription's `error` is called with an
 * ApiError whose `retryable` says whether reconnecting may help.
 */
export class SubscriptionClient {
  constructor({ url = websocketUrl(), connectionParams = {} } = {}) {
    this.url = url;
    this.connectionParams = connectionParams;
    this.socket = null;
    this.ready = null;
    this.nextId = 1;
    /** id -> sink {next, error, complete}: which subscriber each server message is for. */
    this.sinks = new Map();
  }

  /** Opens the socket and finishes the handshake once; later callers share the same promise. */
  connect() {
    if (this.ready) return this.ready;
    this.ready = new Promise((resolve, reject) => {
      const socket = new WebSocket(this.url, "graphql-transport-ws");
      this.socket = socket;
      let acknowledged = false;
      socket.onopen = () => socket.send(JSON.stringify({ type: "connection_init", payload: this.connectionParams }));
      socket.onmessage = (event) => {
        let message;
        try {
          message = JSON.parse(event.data);
        } catch {
          socket.close(4400, "Invalid message");
          return;
        }
        const sink = message.id === undefined ? undefined : this.sinks.get(message.id);
        switch (message.type) {
          case "connection_ack":
            acknowledged = true;
            resolve();
            break;
          case "ping":
            socket.send(JSON.stringify({ type: "pong" }));
            break;
          case "next":
            sink?.next(message.payload);
            break;
          case "error":
            this.sinks.delete(message.id);
            sink?.error(new ApiError(message.payload?.[0]?.message ?? "The subscription failed.", { errors: message.payload ?? [] }));
            break;
          case "complete":
            this.sinks.delete(message.id);
            sink?.complete();
            break;
          default:
            break;
        }
      };
      socket.onclose = (event) => {
        this.ready = null;
        this.socket = null;
        const error = new ApiError(closeReason(event), { status: event.code });
        error.retryable = !FATAL_CLOSES.has(event.code);
        if (!acknowledged) reject(error);
        const sinks = [...this.sinks.values()];
        this.sinks.clear();
        for (const sink of sinks) sink.error(error);
      };
    });
    return this.ready;
  }

  /**
   * Starts `payload` ({query, variables, operationName}); `sink.next(result)` gets each result
   * ({data, errors}), then one `error(e)` or `complete()`. Returns a function that stops it.
   */
  subscribe(payload, sink) {
    const id = String(this.nextId++);
    let active = true;
    const guarded = {
      next: (value) => active && sink.next(value),
      error: (error) => {
        if (active) {
          active = false;
          sink.error(error);
        }
      },
      complete: () => {
        if (active) {
          active = false;
          sink.complete?.();
        }
      },
    };
    this.sinks.set(id, guarded);
    // `payload` may be a promise (`payloadFor` looks the document id up).
    Promise.all([this.connect(), payload]).then(
      ([, ready]) => {
        if (active && this.socket?.readyState === WebSocket.OPEN) {
          this.socket.send(JSON.stringify({ id, type: "subscribe", payload: ready }));
        }
      },
      (error) => guarded.error(error),
    );
    return () => {
      if (!active) return;
      active = false;
      this.sinks.delete(id);
      if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify({ id, type: "complete" }));
    };
  }

  /** The same subscription as an async iterable of results (what GraphiQL's fetcher returns). */
  iterate(payload) {
    const queue = [];
    let wake = null;
    let finished = false;
    let failure = null;
    const push = () => {
      if (wake) {
        const w = wake;
        wake = null;
        w();
      }
    };
    const stop = this.subscribe(payload, {
      next: (value) => {
        queue.push(value);
        push();
      },
      error: (error) => {
        failure = error;
        finished = true;
        push();
      },
      complete: () => {
        finished = true;
        push();
      },
    });
    return {
      [Symbol.asyncIterator]() {
        return this;
      },
      async next() {
        while (queue.length === 0 && !finished) await new Promise((resolve) => (wake = resolve));
        if (queue.length) return { value: queue.shift(), done: false };
        if (failure) {
          // GraphiQL shows a result, not an exception: report the failure as one.
          const errors = failure.errors?.length ? failure.errors : [{ message: failure.message }];
          failure = null;
          return { value: { errors }, done: false };
        }
        return { value: undefined, done: true };
      },
      async return() {
        finished = true;
        stop();
        return { value: undefined, done: true };
      },
    };
  }

  /** Ends every subscription and the socket. */
  close() {
    this.sinks.clear();
    this.socket?.close(1000, "Normal Closure");
    this.socket = null;
    this.ready = null;
  }
}

function closeReason(event) {
  switch (event.code) {
    case 4401:
    case 4403:
      return "Live updates were refused: your session is not valid any more. Log in again.";
    case 4429:
      return "Live updates were refused: too many connections. Try again shortly.";
    default:
      return event.reason ? `Live updates stopped: ${event.reason}` : "Live updates stopped: the connection closed.";
  }
}
