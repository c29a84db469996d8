// Starts GraphiQL (the vendored UMD build) on the router's own endpoint: queries and mutations over
// HTTP, subscriptions over graphql-transport-ws, and the token of the web UI's session (if any) in
// the headers editor, from where it is sent as a header and in `connection_init`. A bar above it
// leads back to the app; on a phone a note comes first, and the panes are stacked once it is opened.
import { post, SubscriptionClient, GRAPHQL_PATH } from "/assets/graphql-client.js";

const TOKEN_KEY = "shippy.token";

/** The subscription connection per Authorization header value, so a changed token opens a new one. */
const clients = new Map();

function clientFor(authorization) {
  const key = authorization ?? "";
  let client = clients.get(key);
  if (!client) {
    client = new SubscriptionClient({ connectionParams: authorization ? { Authorization: authorization } : {} });
    clients.set(key, client);
  }
  return client;
}

/**
 * The operation GraphiQL asks to run: its type (parsed with GraphiQL's own graphql-js) and its name.
 * GraphiQL can pass a stale operation name for a moment after the editor changed; with one operation
 * in the document, that one is meant.
 */
function operationOf(params) {
  try {
    const document = window.GraphiQL.GraphQL.parse(params.query);
    const operations = document.definitions.filter((d) => d.kind === "OperationDefinition");
    const named = params.operationName ? operations.find((o) => o.name?.value === params.operationName) : undefined;
    const chosen = named ?? (operations.length === 1 ? operations[0] : undefined);
    return { type: chosen?.operation, operationName: chosen ? (chosen.name?.value ?? undefined) : (params.operationName ?? undefined) };
  } catch {
    // Let the server report the syntax error.
    return { type: undefined, operationName: params.operationName ?? undefined };
  }
}

function headerValue(headers, name) {
  const found = Object.entries(headers ?? {}).find(([key]) => key.toLowerCase() === name);
  return found ? String(found[1]) : undefined;
}

async function fetcher(params, options = {}) {
  const headers = options.headers ?? {};
  const { type, operationName } = operationOf(params);
  const payload = { query: params.query, variables: params.variables ?? {}, operationName };
  if (type === "subscription") {
    return clientFor(headerValue(headers, "authorization")).iterate(payload);
  }
  const { status: _status, ...result } = await post(payload, { headers });
  return result;
}

function start() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = token ? JSON.stringify({ Authorization: `Bearer ${token}` }, null, 2) : undefined;
  const root = window.ReactDOM.createRoot(document.getElementById("playground"));
  root.render(
    window.React.createElement(window.GraphiQL, {
      fetcher,
      defaultHeaders: headers,
      headers,
      // The token belongs to this browser tab's session; do not copy it into localStorage.
      shouldPersistHeaders: false,
      isHeadersEditorEnabled: true,
      defaultEditorToolsVisibility: token ? "headers" : false,
      defaultQuery: `# Shippy's whole API, through the router at ${GRAPHQL_PATH}.\n# Log in in the web UI (/) and your token is in the Headers tab below. Back to the app: the link above.\n\n{\n  vessels { name capacity owner { name } }\n}\n`,
    }),
  );
}

/**
 * GraphiQL's editors are CodeMirror 5 instances whose hidden textareas have no label and whose
 * scrolling areas cannot be reached with the keyboard: name each after the pane it is in and let the
 * keyboard scroll them, whenever GraphiQL (re)renders one.
 */
function labelEditors() {
  const names = [
    [".graphiql-query-editor", "Query editor"],
    [".graphiql-editor-tool .graphiql-editor:nth-of-type(1)", "Variables editor"],
    [".graphiql-editor-tool .graphiql-editor:nth-of-type(2)", "Headers editor"],
    [".graphiql-response", "Response"],
  ];
  for (const [selector, name] of names) {
    for (const pane of document.querySelectorAll(selector)) {
      for (const textarea of pane.querySelectorAll(".CodeMirror textarea:not([aria-label])")) textarea.setAttribute("aria-label", name);
    }
  }
  // CodeMirror takes them out of the tab order (tabindex -1).
  for (const scroll of document.querySelectorAll('.CodeMirror-scroll:not([tabindex="0"])')) scroll.tabIndex = 0;
}
new MutationObserver(labelEditors).observe(document.getElementById("playground"), { childList: true, subtree: true });

// On a phone the page first says the playground works best on a wider screen; this opens it all the same.
document.getElementById("show-anyway").addEventListener("click", () => {
  document.body.classList.add("show-anyway");
  document.querySelector(".graphiql-query-editor textarea")?.focus();
});

// The module runs after the deferred UMD scripts (module scripts are deferred too, in order).
start();
