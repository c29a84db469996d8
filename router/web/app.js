// The Shippy web UI: register and log in (the token lives in this tab's sessionStorage), add and
// list vessels, ship consignments and watch their status change live (a consignmentUpdated
// subscription), and read my activity log (logAdded keeps it current). Errors from the API are
// shown in plain words next to the field or form that caused them.
import { ApiError, post, request, SubscriptionClient } from "/assets/graphql-client.js";

const TOKEN_KEY = "shippy.token";

const ME = "query Me { me { id name email } }";
const REGISTER = `mutation Register($input: RegisterInput!) { register(input: $input) { token user { id name email } } }`;
const LOGIN = `mutation Login($email: String!, $password: String!) { login(email: $email, password: $password) { token user { id name email } } }`;
const VESSELS = `query Vessels { vessels(first: 100) { id name capacity maxWeight remainingCapacity remainingWeight available owner { id name } } }`;
const CREATE_VESSEL = `mutation CreateVessel($input: CreateVesselInput!) { createVessel(input: $input) { id } }`;
const CONSIGNMENT_FIELDS = `id description weight status containers { customerId origin } vessel { id name owner { id } }`;
const CONSIGNMENTS = `query Consignments { consignments(first: 100) { ${CONSIGNMENT_FIELDS} } }`;
const CREATE_CONSIGNMENT = `mutation CreateConsignment($input: CreateConsignmentInput!) { createConsignment(input: $input) { ${CONSIGNMENT_FIELDS} } }`;
const UPDATE_STATUS = `mutation UpdateStatus($id: ID!, $status: ConsignmentStatus!) { updateConsignmentStatus(id: $id, status: $status) { ${CONSIGNMENT_FIELDS} } }`;
const CONSIGNMENT_UPDATED = `subscription ConsignmentUpdated { consignmentUpdated { ${CONSIGNMENT_FIELDS} } }`;
const ACTIVITY = `query Activity { me { activity(first: 30) { id kind message createdAt } } }`;
const LOG_ADDED = `subscription LogAdded { logAdded { id kind message createdAt } }`;

/** How each status reads, and the next step the vessel's owner may take. */
// `stage` orders the lifecycle (it only moves forward), so a late answer cannot undo a newer event.
const STATUS = {
  PENDING: { stage: 0, label: "Pending: waiting for a vessel" },
  ASSIGNED: { stage: 1, label: "Assigned", next: "IN_TRANSIT", action: "Mark in transit" },
  UNASSIGNABLE: { stage: 1, label: "Unassignable: no vessel had room" },
  IN_TRANSIT: { stage: 2, label: "In transit", next: "DELIVERED", action: "Mark delivered" },
  DELIVERED: { stage: 3, label: "Delivered" },
};

const $ = (selector, root = document) => root.querySelector(selector);

const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  user: null,
  /** Consignment id -> consignment, in the order they were created. */
  consignments: new Map(),
  /** Log entry ids shown, so a live entry already loaded is not shown twice. */
  activityIds: new Set(),
  live: null,
  stopLive: [],
  reconnect: null,
};

// ---------------------------------------------------------------- errors

/** The error's plain-words text, and the field it belongs to (if the API named one). */
function describe(error, { login = false } = {}) {
  if (!(error instanceof ApiError)) return { text: "Something went wrong in this page. Reload it and try again." };
  const first = error.errors[0];
  const code = first?.extensions?.code;
  const retryAfter = first?.extensions?.retryAfter;
  switch (code) {
    case "RATE_LIMITED": {
      const seconds = Math.max(1, Math.ceil(Number(retryAfter) || 1));
      return { text: `Too many attempts. Try again in ${seconds} second${seconds === 1 ? "" : "s"}.`, retryAfter: seconds };
    }
    case "UNAUTHENTICATED":
      return login
        ? { text: "That email and password do not match an account." }
        : { text: "Your session has ended. Log in again.", signedOut: true };
    case "FORBIDDEN":
      return { text: "You are not allowed to do that." };
    case "BAD_USER_INPUT": {
      const field = first.extensions.field;
      const detail = field && first.message.startsWith(`${field}: `) ? first.message.slice(field.length + 2) : first.message;
      return { text: detail, field };
    }
    case "INTERNAL_SERVER_ERROR":
      return { text: "Something went wrong on the server. Try again in a moment." };
    default:
      return { text: first?.message ?? error.message };
  }
}

/** The input a field path names (`input.containers[1].origin`, `input.weight`, `email`) inside `form`. */
function inputFor(form, field) {
  const path = field.replace(/^input\./, "");
  const container = path.match(/^containers\[(\d+)\]\.(\w+)$/);
  if (container) {
    const row = form.querySelectorAll(".container-row")[Number(container[1])];
    return row ? $(`[name="${container[2]}"]`, row) : null;
  }
  return form.querySelector(`[name="${CSS.escape(path)}"]`) ?? form.querySelector(`[data-field="${CSS.escape(path)}"]`);
}

function clearErrors(form) {
  $(`#${form.id}-error`).textContent = "";
  for (const el of form.querySelectorAll(".field-error")) el.remove();
  for (const el of form.querySelectorAll("[aria-invalid]")) {
    el.removeAttribute("aria-invalid");
    el.removeAttribute("aria-describedby");
  }
}

let fieldErrorIds = 0;

/** Shows `error` next to its field in `form` (focused, so keyboard and screen reader users land there), else under the form. */
function showError(form, error, options) {
  const described = describe(error, options);
  if (described.signedOut) {
    signOut(described.text);
    return;
  }
  const input = described.field ? inputFor(form, described.field) : null;
  if (input) {
    const message = document.createElement("span");
    message.className = "field-error";
    message.id = `field-error-${++fieldErrorIds}`;
    const label = input.labels?.[0] ?? input.closest("fieldset")?.querySelector("legend");
    const name = label ? label.childNodes[0].textContent.trim() : "";
    message.textContent = name ? `${name} ${described.text}` : described.text;
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", message.id);
    input.insertAdjacentElement("afterend", message);
    input.focus();
  } else {
    $(`#${form.id}-error`).textContent = described.text;
  }
  if (described.retryAfter) holdSubmit(form, described.retryAfter);
}

/** Keeps a rate-limited form's submit button disabled until the API takes requests again, counting down. */
function holdSubmit(form, seconds) {
  const button = $('button[type="submit"]', form);
  const label = button.dataset.label ?? button.textContent;
  button.dataset.label = label;
  button.disabled = true;
  let left = seconds;
  const tick = () => {
    if (left <= 0) {
      button.disabled = false;
      button.textContent = label;
      $(`#${form.id}-error`).textContent = "";
      return;
    }
    button.textContent = `${label} (wait ${left}s)`;
    left -= 1;
    setTimeout(tick, 1000);
  };
  tick();
}

/** Runs a form's submit handler with its button disabled and its old errors cleared. */
function onSubmit(form, handler, options) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = $('button[type="submit"]', form);
    if (button.disabled) return;
    clearErrors(form);
    button.disabled = true;
    form.setAttribute("aria-busy", "true");
    let held = false;
    try {
      await handler(new FormData(form));
    } catch (error) {
      showError(form, error, options);
      held = Boolean(describe(error, options).retryAfter);
    } finally {
      form.removeAttribute("aria-busy");
      if (!held) button.disabled = false;
    }
  });
}

/** Shows a failed load in `element`; an ended session signs out instead. */
function report(element, error) {
  const described = describe(error);
  if (described.signedOut) signOut(described.text);
  else element.textContent = described.text;
}

function say(text) {
  $("#status").textContent = text;
}

/** The live-updates line: news about consignments, or why updates stopped. */
function live(text, problem = false) {
  $("#live").textContent = text;
  $("#live").classList.toggle("problem", problem);
}

// ---------------------------------------------------------------- session

async function call(query, variables) {
  return request(query, variables, { token: state.token });
}

/** Like `call`, but keeps a partial answer: an error on one item's field (say, a vessel owner the
 * user service cannot find) must not blank the whole list. Fails only when no data came back. */
async function callPartial(query, variables) {
  const all = await post({ query, variables }, { token: state.token });
  if (all.data == null) {
    throw new ApiError(all.errors?.[0]?.message ?? "The server sent no data.", { errors: all.errors ?? [], status: all.status });
  }
  return all.data;
}

/** A vessel owner's name for the fleet table (an owner the user service cannot find reads as unknown). */
function ownerName(owner) {
  if (!owner) return "Unknown owner";
  return owner.id === state.user?.id ? `${owner.name} (you)` : owner.name;
}

function signIn(token, user) {
  state.token = token;
  state.user = user;
  sessionStorage.setItem(TOKEN_KEY, token);
  render();
}

function signOut(message = "") {
  for (const stop of state.stopLive) stop();
  state.stopLive = [];
  clearTimeout(state.reconnect);
  state.live?.close();
  state.live = null;
  state.token = null;
  state.user = null;
  state.consignments.clear();
  state.activityIds.clear();
  sessionStorage.removeItem(TOKEN_KEY);
  render();
  say(message);
}

function render() {
  const signedIn = Boolean(state.user);
  $("#signed-out").hidden = signedIn;
  $("#signed-in").hidden = !signedIn;
  $("#logout").hidden = !signedIn;
  $("#whoami").hidden = !signedIn;
  $("#whoami").textContent = signedIn ? `Signed in as ${state.user.name}` : "";
  if (signedIn) {
    say("");
    loadAll();
    startLive();
    $("#main").focus();
  }
}

// ---------------------------------------------------------------- vessels

async function loadVessels() {
  try {
    const { vessels } = await callPartial(VESSELS);
    const body = $("#vessels tbody");
    body.replaceChildren(
      ...vessels.map((v) =>
        row([v.name, ownerName(v.owner), `${v.remainingCapacity} of ${v.capacity}`, `${number(v.remainingWeight)} of ${number(v.maxWeight)} kg`, v.available ? "Yes" : "No"]),
      ),
    );
    if (!vessels.length) body.replaceChildren(emptyRow(5, "No vessels yet. Add one above."));
    labelCells($("#vessels"));
    $("#vessels-error").textContent = "";
  } catch (error) {
    report($("#vessels-error"), error);
  }
}

// ---------------------------------------------------------------- consignments

async function loadConsignments() {
  try {
    const { consignments } = await call(CONSIGNMENTS);
    state.consignments.clear();
    for (const c of consignments) state.consignments.set(c.id, c);
    renderConsignments();
    $("#consignments-error").textContent = "";
  } catch (error) {
    report($("#consignments-error"), error);
  }
}

function renderConsignments() {
  const body = $("#consignments tbody");
  if (!state.consignments.size) {
    body.replaceChildren(emptyRow(6, "Nothing shipped yet."));
    return;
  }
  body.replaceChildren(...[...state.consignments.values()].map(consignmentRow));
  labelCells($("#consignments"));
}

function consignmentRow(c) {
  const status = STATUS[c.status] ?? { label: c.status };
  const tr = row([c.description, `${number(c.weight)} kg`, String(c.containers.length), c.vessel?.name ?? "None yet"]);
  tr.dataset.id = c.id;
  const statusCell = document.createElement("td");
  statusCell.className = `status status-${c.status.toLowerCase()}`;
  statusCell.dataset.status = c.status;
  statusCell.textContent = status.label;
  tr.append(statusCell);
  const actions = document.createElement("td");
  // Only the vessel's owner moves a consignment along.
  if (status.next && c.vessel?.owner?.id === state.user?.id) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = status.action;
    button.setAttribute("aria-label", `${status.action}: ${c.description}`);
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        const { updateConsignmentStatus } = await call(UPDATE_STATUS, { id: c.id, status: status.next });
        upsertConsignment(updateConsignmentStatus);
      } catch (error) {
        button.disabled = false;
        const described = describe(error);
        if (described.signedOut) signOut(described.text);
        else $("#consignments-error").textContent = `${c.description}: ${described.text}`;
      }
    });
    actions.append(button);
  }
  tr.append(actions);
  return tr;
}

function upsertConsignment(c) {
  const previous = state.consignments.get(c.id);
  // The subscription can deliver ASSIGNED before the createConsignment answer (PENDING) arrives;
  // whichever comes last must not move the row back to an earlier stage.
  if (previous && (STATUS[previous.status]?.stage ?? 0) > (STATUS[c.status]?.stage ?? 0)) return;
  state.consignments.set(c.id, c);
  renderConsignments();
  if (previous && previous.status !== c.status) {
    live(`${c.description} is now ${(STATUS[c.status] ?? { label: c.status }).label.toLowerCase()}.`);
    // Capacity on the vessels changes when a consignment is booked or delivered.
    loadVessels();
  }
}

function addContainerRow() {
  const item = $("#container-row").content.firstElementChild.cloneNode(true);
  $(".remove-container", item).addEventListener("click", () => {
    item.remove();
    renumberContainers();
    $("#add-container").focus();
  });
  $("#container-list").append(item);
  renumberContainers();
  return item;
}

/** Keeps "Remove container 2" style labels in step with the list. */
function renumberContainers() {
  const rows = [...document.querySelectorAll("#container-list .container-row")];
  rows.forEach((r, i) => {
    $(".remove-container", r).setAttribute("aria-label", `Remove container ${i + 1}`);
    $(".remove-container", r).hidden = rows.length === 1;
  });
}

// ---------------------------------------------------------------- activity

async function loadActivity() {
  try {
    const { me } = await call(ACTIVITY);
    state.activityIds.clear();
    $("#activity").replaceChildren(...(me?.activity ?? []).map(activityItem));
    $("#activity-error").textContent = "";
  } catch (error) {
    report($("#activity-error"), error);
  }
}

function activityItem(entry) {
  state.activityIds.add(entry.id);
  const li = document.createElement("li");
  const time = document.createElement("time");
  time.dateTime = entry.createdAt;
  time.textContent = new Date(entry.createdAt).toLocaleString();
  li.append(time, ` ${entry.message}`);
  return li;
}

// ---------------------------------------------------------------- live updates

function startLive() {
  if (state.live) return;
  state.live = new SubscriptionClient({ connectionParams: { Authorization: `Bearer ${state.token}` } });
  const onError = (error) => {
    if (!state.user) return;
    live(`${error.message} Reconnecting…`, true);
    for (const stop of state.stopLive) stop();
    state.stopLive = [];
    state.live?.close();
    state.live = null;
    if (error.retryable === false) {
      signOut(error.message);
      return;
    }
    // Reconnect, and reload what may have changed while disconnected.
    clearTimeout(state.reconnect);
    state.reconnect = setTimeout(() => {
      if (!state.user) return;
      startLive();
      state.live.connect().then(() => live("Live updates are back."), () => {});
      loadAll();
    }, 3000);
  };
  state.stopLive.push(
    state.live.subscribe({ query: CONSIGNMENT_UPDATED }, {
      next: (result) => {
        if (result.data?.consignmentUpdated) upsertConsignment(result.data.consignmentUpdated);
        else if (result.errors?.length) live(result.errors[0].message, true);
      },
      error: onError,
    }),
    state.live.subscribe({ query: LOG_ADDED }, {
      next: (result) => {
        const entry = result.data?.logAdded;
        if (entry && !state.activityIds.has(entry.id)) $("#activity").prepend(activityItem(entry));
      },
      error: onError,
    }),
  );
}

function loadAll() {
  loadVessels();
  loadConsignments();
  loadActivity();
}

// ---------------------------------------------------------------- helpers

/** Labels each cell of `table`'s body with its column's header, for the phone layout's cards. */
function labelCells(table) {
  const headers = [...table.querySelectorAll("thead th")].map((th) => th.textContent.trim());
  for (const tr of table.querySelectorAll("tbody tr")) {
    [...tr.children].forEach((td, i) => {
      if (headers[i] && td.colSpan === 1) td.dataset.label = headers[i];
    });
  }
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const text of cells) {
    const td = document.createElement("td");
    td.textContent = text;
    tr.append(td);
  }
  return tr;
}

function emptyRow(span, text) {
  const tr = document.createElement("tr");
  const td = document.createElement("td");
  td.colSpan = span;
  td.className = "empty";
  td.textContent = text;
  tr.append(td);
  return tr;
}

function number(n) {
  return Number(n).toLocaleString();
}

/** A number input's value: NaN for empty, so the API (not this page) reports what is wrong with it. */
function numeric(value) {
  const text = String(value ?? "").trim();
  return text === "" ? Number.NaN : Number(text);
}

// ---------------------------------------------------------------- wiring

onSubmit($("#register"), async (data) => {
  const input = { name: data.get("name"), email: data.get("email"), password: data.get("password") };
  const company = String(data.get("company") ?? "").trim();
  if (company) input.company = company;
  const { register } = await call(REGISTER, { input });
  $("#register").reset();
  signIn(register.token, register.user);
});

onSubmit(
  $("#login"),
  async (data) => {
    const { login } = await call(LOGIN, { email: data.get("email"), password: data.get("password") });
    $("#login").reset();
    signIn(login.token, login.user);
  },
  { login: true },
);

onSubmit($("#create-vessel"), async (data) => {
  const capacity = numeric(data.get("capacity"));
  const maxWeight = numeric(data.get("maxWeight"));
  const form = $("#create-vessel");
  if (!Number.isInteger(capacity)) throw new ApiError("", { errors: [badInput("input.capacity", "must be a whole number")] });
  if (!Number.isInteger(maxWeight)) throw new ApiError("", { errors: [badInput("input.maxWeight", "must be a whole number of kilograms")] });
  await call(CREATE_VESSEL, { input: { name: data.get("name"), capacity, maxWeight } });
  form.reset();
  say("Vessel added.");
  loadVessels();
});

onSubmit($("#create-consignment"), async (data) => {
  const weight = numeric(data.get("weight"));
  if (!Number.isInteger(weight)) throw new ApiError("", { errors: [badInput("input.weight", "must be a whole number of kilograms")] });
  const containers = [...document.querySelectorAll("#container-list .container-row")].map((r) => ({
    customerId: $('[name="customerId"]', r).value,
    origin: $('[name="origin"]', r).value,
  }));
  const { createConsignment } = await call(CREATE_CONSIGNMENT, { input: { description: data.get("description"), weight, containers } });
  $("#create-consignment").reset();
  $("#container-list").replaceChildren();
  addContainerRow();
  upsertConsignment(createConsignment);
  say(`Shipped ${createConsignment.description}. Its status updates below as it changes.`);
});

/** A local check's error, in the shape the API uses, so it is shown the same way. */
function badInput(field, message) {
  return { message: `${field}: ${message}`, extensions: { code: "BAD_USER_INPUT", field } };
}

$("#add-container").addEventListener("click", () => $("input", addContainerRow()).focus());
$("#logout").addEventListener("click", () => signOut("You are logged out."));
addContainerRow();

// A token from earlier in this tab's session: check it is still good.
if (state.token) {
  call(ME).then(
    ({ me }) => (me ? signIn(state.token, me) : signOut()),
    (error) => signOut(describe(error).signedOut ? "Your session has ended. Log in again." : describe(error).text),
  );
}
