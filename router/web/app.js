// The Shippy web UI. Signed in, the page opens on the user's consignments (newest first, sortable, a
// page at a time, each with its status timeline), the fleet (with how full each vessel is) and the
// activity log told as a story; "Ship a consignment" and "New vessel" open dialogs. Everything stays
// current without a reload: `consignmentUpdated` moves rows along (a changed row is highlighted,
// Pending is shown for at least a moment), `logAdded` grows the log and refetches the fleet when it
// changed, and the fleet is refetched now and then for vessels other users add. The API's errors are
// never shown as they come: each is put in plain words, beside its field when it names one.
import { ApiError, payloadFor, request, send, SubscriptionClient } from "/assets/graphql-client.js";
import * as ops from "/assets/operations.js";
import { ACTIVITY, CREATE_VESSEL, FEATURES, LOG_ADDED, LOGIN, ME, REGISTER, VESSELS } from "/assets/operations.js";

const TOKEN_KEY = "shippy.token";
/** Rows per page of the consignment and fleet tables (a consignment's row is tall with its timeline). */
const PAGE_SIZE = 8;
/** However fast a vessel is found, Pending stays on screen this long, so the user sees it happen. */
const MIN_PENDING_MS = 1500;
/** Vessels other users add produce no log entry for this user: the fleet is refetched this often. */
const FLEET_REFRESH_MS = 20_000;
/** Good news goes away by itself after this long. */
const NEWS_MS = 8000;

// ---------------------------------------------------------------- API

// The operations live in operations.js, which also lists them all for the router's first-party
// manifest (they are sent by document id).
const consignmentsQuery = () => ops.consignmentsQuery(state.features);
const createConsignment = () => ops.createConsignment(state.features);
const updateStatus = () => ops.updateStatus(state.features);
const retryConsignment = () => ops.retryConsignment(state.features);
const cancelConsignment = () => ops.cancelConsignment(state.features);
const consignmentUpdated = () => ops.consignmentUpdated(state.features);

/** How each status reads; `stage` orders the lifecycle (for the timeline and for sorting by status). */
const STATUS = {
  PENDING: { stage: 0, label: "Pending", badge: "Waiting for a vessel" },
  ASSIGNED: { stage: 1, label: "Assigned", next: "IN_TRANSIT", action: "Mark in transit" },
  UNASSIGNABLE: { stage: 1, label: "No vessel found", badge: "No vessel found" },
  IN_TRANSIT: { stage: 2, label: "In transit", next: "DELIVERED", action: "Mark delivered" },
  DELIVERED: { stage: 3, label: "Delivered" },
  CANCELLED: { stage: 3, label: "Cancelled" },
};
/** The timeline every consignment walks. */
const STEPS = ["PENDING", "ASSIGNED", "IN_TRANSIT", "DELIVERED"];

const $ = (selector, root = document) => root.querySelector(selector);

const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  user: null,
  /** What the API offers (see FEATURES). */
  features: { reason: false, retry: false, cancel: false },
  /** Consignment id -> the consignment as shown. */
  consignments: new Map(),
  /** Consignment id -> a newer state held back while Pending is still on screen. */
  heldBack: new Map(),
  /** Consignment id -> when Pending may give way. */
  pendingUntil: new Map(),
  /** Consignment id -> {STATUS: ISO time it was reached}, from the rows, the log and live updates. */
  times: new Map(),
  /** Consignment id -> why no vessel took it, from the log (until the API says it itself). */
  reasons: new Map(),
  vessels: [],
  /** Log entry id -> entry. */
  activity: new Map(),
  loaded: { consignments: false, vessels: false, activity: false },
  sort: { key: "createdAt", dir: "desc" },
  page: 0,
  fleetPage: 0,
  live: null,
  stopLive: [],
  reconnect: null,
  fleetTimer: null,
  fleetReload: null,
};

// ---------------------------------------------------------------- words and numbers

const numberFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
function number(n) {
  return numberFormat.format(Number(n));
}
function plural(n, one, many = `${one}s`) {
  return `${number(n)} ${Number(n) === 1 ? one : many}`;
}
function kg(n) {
  return `${number(n)} kg`;
}

/** "just now", "5 minutes ago", "3 hours ago", else the time of day (the day is in the group heading). */
function relative(iso) {
  const seconds = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
  if (seconds < 45) return "just now";
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${plural(minutes, "minute")} ago`;
  const hours = Math.round(minutes / 60);
  if (hours < 12) return `${plural(hours, "hour")} ago`;
  return new Date(iso).toLocaleTimeString(undefined, { hour: "numeric", minute: "2-digit" });
}
/** A short absolute time for the timelines: "14:05", or "3 Dec, 14:05" on another day. */
function when(iso) {
  const date = new Date(iso);
  const sameDay = date.toDateString() === new Date().toDateString();
  return sameDay
    ? date.toLocaleTimeString(undefined, { hour: "numeric", minute: "2-digit", second: "2-digit" })
    : date.toLocaleString(undefined, { day: "numeric", month: "short", hour: "numeric", minute: "2-digit" });
}
function dayHeading(date) {
  const today = new Date();
  const yesterday = new Date(today.getTime() - 86_400_000);
  if (date.toDateString() === today.toDateString()) return "Today";
  if (date.toDateString() === yesterday.toDateString()) return "Yesterday";
  return date.toLocaleDateString(undefined, { weekday: "long", day: "numeric", month: "long", year: "numeric" });
}
/** "Try again in about 10 minutes" / "in 40 seconds". */
function waitWords(seconds) {
  if (seconds >= 90) return `about ${plural(Math.round(seconds / 60), "minute")}`;
  if (seconds >= 60) return "about a minute";
  return plural(seconds, "second");
}

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;

// ---------------------------------------------------------------- errors in plain words

/** What each input is called in a sentence, and its unit. */
const NOUNS = {
  name: "a name",
  company: "a company name",
  email: "your email address",
  password: "a password",
  description: "a description",
  weight: "the total weight",
  capacity: "the capacity",
  maxWeight: "the maximum cargo weight",
  customerId: "the customer id",
  origin: "where it comes from",
  containers: "the containers",
};
const UNITS = { weight: "kg", maxWeight: "kg", capacity: "containers" };

/** The field's last name in an API path: `input.containers[1].origin` -> `origin`. */
function fieldKey(path) {
  return path.replace(/^input\./, "").replace(/^containers\[\d+\]\./, "");
}

/** The API's validation message for `path`, in the words this page uses (the API's own text is for developers). */
function plainFieldMessage(path, message) {
  const key = fieldKey(path);
  const noun = NOUNS[key] ?? "this value";
  const unit = UNITS[key];
  let m;
  if (/already registered/i.test(message)) return "This email already has an account: log in instead, or use another email.";
  if (/must not be empty|was not provided|not to be null/i.test(message)) return `Enter ${noun}.`;
  if ((m = message.match(/at least (\d+) characters/))) return `Use at least ${number(m[1])} characters.`;
  if ((m = message.match(/at most (\d+) characters/))) return `Use at most ${number(m[1])} characters.`;
  if (/not an email address/i.test(message)) return "Enter an email address like name@example.com.";
  if (/control characters|invisible|text-direction/i.test(message)) return "Remove line breaks, tabs and invisible characters.";
  if (/at least one container/i.test(message)) return "Add at least one container.";
  if ((m = message.match(/at most (\d+) containers/)) && key === "containers") return `Ship at most ${number(m[1])} containers at once.`;
  if ((m = message.match(/at most ([0-9][0-9.eE+]*)/))) return `Enter at most ${number(Number(m[1]))}${unit ? ` ${unit}` : ""}.`;
  if (/Int cannot represent/i.test(message)) return `Enter a smaller whole number${unit ? ` of ${unit}` : ""}.`;
  if (/positive|greater than zero/i.test(message)) return `Enter more than 0${unit ? ` ${unit}` : ""}.`;
  if (/Expected type "(Int|Float)/.test(message)) return `Enter a number${unit ? ` of ${unit}` : ""}.`;
  return `Check ${noun}: it was not accepted.`;
}

/**
 * What went wrong, in plain words: `fields` (each with the API path it names), else `text` for the
 * form or page; `retryAfter` seconds for a rate limit; `signedOut` when the session is over.
 */
function describe(error, { login = false } = {}) {
  if (!(error instanceof ApiError)) return { text: "Something went wrong in this page. Reload it and try again." };
  if (!error.errors.length) {
    if (error.status === 0) return { text: "Could not reach Shippy. Check your connection and try again." };
    return { text: "Shippy did not answer properly. Try again in a moment." };
  }
  const first = error.errors[0];
  const code = first?.extensions?.code;
  switch (code) {
    case "RATE_LIMITED": {
      const seconds = Math.max(1, Math.ceil(Number(first.extensions.retryAfter) || 1));
      return { text: "Too many attempts.", retryAfter: seconds };
    }
    case "UNAUTHENTICATED":
      return login
        ? { text: "That email and password do not match an account." }
        : { text: "Your session has ended. Log in again.", signedOut: true };
    case "FORBIDDEN":
      return { text: "You are not allowed to do that." };
    case "BAD_USER_INPUT":
    case "GRAPHQL_VALIDATION_FAILED": {
      const fields = [];
      for (const e of error.errors) {
        // A subgraph names the field; the router's variable checks say `at "field"` in the message.
        const path = e.extensions?.field ?? e.message?.match(/at "([\w.]+)"/)?.[1];
        if (path) fields.push({ path, text: plainFieldMessage(path, e.message ?? "") });
      }
      if (fields.length) return { fields };
      return { text: "Shippy could not accept that. Check what you entered and try again." };
    }
    case "INTERNAL_SERVER_ERROR":
    case "DOWNSTREAM_SERVICE_ERROR":
    case "SUBREQUEST_TIMEOUT":
    case "SUBREQUEST_CIRCUIT_OPEN":
    case "REQUEST_TIMEOUT":
      return { text: "Something went wrong on Shippy's side. Try again in a moment." };
    default:
      return { text: "That did not work. Try again in a moment." };
  }
}

// ---------------------------------------------------------------- the status area

/** key -> {element, timer}: one message per key, so a newer one replaces the stale one. */
const notices = new Map();

/** Shows `text` in the status area under `key`; `kind` is info, success, warning or error. */
function notify(key, text, { kind = "info", ttl = kind === "success" || kind === "info" ? NEWS_MS : 0 } = {}) {
  clearNotice(key);
  const element = document.createElement("div");
  element.className = `message ${kind}`;
  element.dataset.key = key;
  const p = document.createElement("p");
  p.textContent = text;
  const dismiss = document.createElement("button");
  dismiss.type = "button";
  dismiss.textContent = "Dismiss";
  dismiss.addEventListener("click", () => clearNotice(key));
  element.append(p, dismiss);
  $("#status").append(element);
  // A few at a time: the oldest is the stalest.
  while (notices.size >= 3) clearNotice(notices.keys().next().value);
  const timer = ttl ? setTimeout(() => clearNotice(key), ttl) : null;
  notices.set(key, { element, timer });
}

function clearNotice(key) {
  const notice = notices.get(key);
  if (!notice) return;
  clearTimeout(notice.timer);
  notice.element.remove();
  notices.delete(key);
}

function clearAllNotices() {
  for (const key of [...notices.keys()]) clearNotice(key);
}

// ---------------------------------------------------------------- forms

function clearErrors(form) {
  $(`#${form.id}-error`).textContent = "";
  for (const el of form.querySelectorAll(".field-error")) el.remove();
  for (const el of form.querySelectorAll("[aria-invalid]")) {
    el.removeAttribute("aria-invalid");
    el.removeAttribute("aria-describedby");
  }
}

let fieldErrorIds = 0;

/** Puts `text` next to `input` (an input, or the containers fieldset). */
function fieldError(input, text) {
  const message = document.createElement("span");
  message.className = "field-error";
  message.id = `field-error-${++fieldErrorIds}`;
  message.textContent = text;
  input.setAttribute("aria-invalid", "true");
  input.setAttribute("aria-describedby", message.id);
  if (input.tagName === "FIELDSET") $("#add-container", input).insertAdjacentElement("beforebegin", message);
  else input.insertAdjacentElement("afterend", message);
}

/** The input a field path names (`input.containers[1].origin`, `input.weight`, `email`) inside `form`. */
function inputFor(form, field) {
  const path = field.replace(/^input\./, "");
  const container = path.match(/^containers\[(\d+)\]\.(\w+)$/);
  if (container) {
    const row = form.querySelectorAll(".container-row")[Number(container[1])];
    return row ? $(`[name="${container[2]}"]`, row) : null;
  }
  const key = path.replace(/\[\d+\]$/, "");
  return form.querySelector(`[name="${CSS.escape(key)}"]`) ?? form.querySelector(`[data-field="${CSS.escape(key)}"]`);
}

/** Shows every problem beside its field at once and focuses the first; the rest goes under the form. */
function showProblems(form, problems) {
  const leftover = [];
  let first = null;
  for (const { input, text } of problems) {
    if (input) {
      fieldError(input, text);
      first ??= input;
    } else leftover.push(text);
  }
  $(`#${form.id}-error`).textContent = leftover.join(" ");
  first?.focus();
}

/** A local check's problems, or the API's error, shown on `form`. */
function showError(form, error, options) {
  const described = describe(error, options);
  if (described.signedOut) {
    closeDialogs();
    signOut(described.text);
    return described;
  }
  if (described.fields) {
    showProblems(form, described.fields.map(({ path, text }) => ({ input: inputFor(form, path), text })));
  } else if (described.retryAfter) {
    holdSubmit(form, described.text, described.retryAfter);
  } else {
    $(`#${form.id}-error`).textContent = described.text;
  }
  return described;
}

/** Keeps a rate-limited form's submit button disabled until the API takes requests again, counting down in words. */
function holdSubmit(form, text, seconds) {
  const button = $('button[type="submit"]', form);
  const error = $(`#${form.id}-error`);
  button.disabled = true;
  form.dataset.heldUntil = String(Date.now() + seconds * 1000);
  const tick = () => {
    const left = Math.ceil((Number(form.dataset.heldUntil) - Date.now()) / 1000);
    if (left <= 0) {
      button.disabled = false;
      delete form.dataset.heldUntil;
      error.textContent = "";
      return;
    }
    const sentence = `${text} Try again in ${waitWords(left)}.`;
    if (error.textContent !== sentence) error.textContent = sentence;
    setTimeout(tick, 1000);
  };
  tick();
}

/** Runs a form's submit handler after its local checks (all problems at once), with its button disabled while it runs. */
function onSubmit(form, { check, handle, options }) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = $('button[type="submit"]', form);
    if (button.disabled) return;
    clearErrors(form);
    const { problems, values } = check ? check(form) : { problems: [], values: null };
    if (problems.length) {
      showProblems(form, problems);
      return;
    }
    button.disabled = true;
    form.setAttribute("aria-busy", "true");
    let held = false;
    try {
      await handle(values, form);
    } catch (error) {
      held = Boolean(showError(form, error, options).retryAfter);
    } finally {
      form.removeAttribute("aria-busy");
      if (!held) button.disabled = false;
    }
  });
}

/** A whole number typed by a person ("20,000", "20 000" and "2e4" too), or NaN. */
function wholeNumber(text) {
  const cleaned = String(text ?? "").trim().replace(/[\s,_']/g, "");
  if (cleaned === "") return Number.NaN;
  const value = Number(cleaned);
  return Number.isFinite(value) ? value : Number.NaN;
}

/** The largest weight the API takes, in whole kilograms. */
const MAX_WEIGHT = 1_000_000_000;

/** Problems with a weight in kg (`label`: what it is called), or none. */
function weightProblem(text, what) {
  const value = wholeNumber(text);
  if (String(text ?? "").trim() === "") return `Enter ${what} in kg.`;
  if (Number.isNaN(value)) return `Enter ${what} as a number of kg, like 20,000.`;
  if (!Number.isInteger(value)) return "Enter whole kilograms.";
  if (value <= 0) return "Enter more than 0 kg.";
  if (value > MAX_WEIGHT) return `Enter at most ${kg(MAX_WEIGHT)}.`;
  return null;
}

function checkText(input, noun, problems, max) {
  const value = input.value.trim();
  if (!value) problems.push({ input, text: `Enter ${noun}.` });
  else if (max && value.length > max) problems.push({ input, text: `Use at most ${number(max)} characters.` });
  return value;
}

// ---------------------------------------------------------------- session

function call(query, variables) {
  return request(query, variables, { token: state.token });
}

/** Like `call`, but keeps a partial answer: an error on one item's field (say, a vessel owner the
 * user service cannot find) must not blank the whole list. Fails only when no data came back. */
async function callPartial(query, variables) {
  const all = await send(query, variables, { token: state.token });
  if (all.data == null) {
    throw new ApiError(all.errors?.[0]?.message ?? "no data", { errors: all.errors ?? [], status: all.status });
  }
  return all.data;
}

/** Finds out which optional parts of the API this router serves (introspection off: the basics). */
async function detectFeatures() {
  try {
    const data = await callPartial(FEATURES);
    const consignment = new Set((data.consignment?.fields ?? []).map((f) => f.name));
    const mutation = new Set((data.mutation?.fields ?? []).map((f) => f.name));
    state.features = {
      reason: consignment.has("unassignableReason"),
      retry: mutation.has("retryConsignment"),
      cancel: mutation.has("cancelConsignment"),
    };
  } catch {
    state.features = { reason: false, retry: false, cancel: false };
  }
}

async function signIn(token, user) {
  state.token = token;
  state.user = user;
  sessionStorage.setItem(TOKEN_KEY, token);
  await detectFeatures();
  render();
}

function signOut(message = "", kind = "info") {
  for (const stop of state.stopLive) stop();
  state.stopLive = [];
  clearTimeout(state.reconnect);
  clearInterval(state.fleetTimer);
  state.live?.close();
  state.live = null;
  state.token = null;
  state.user = null;
  state.consignments.clear();
  state.heldBack.clear();
  state.pendingUntil.clear();
  state.times.clear();
  state.reasons.clear();
  state.vessels = [];
  state.activity.clear();
  state.loaded = { consignments: false, vessels: false, activity: false };
  state.page = 0;
  state.fleetPage = 0;
  sessionStorage.removeItem(TOKEN_KEY);
  clearAllNotices();
  render();
  if (message) notify("session", message, { kind, ttl: 0 });
}

function render() {
  const signedIn = Boolean(state.user);
  $("#signed-out").hidden = signedIn;
  $("#signed-in").hidden = !signedIn;
  $("#logout").hidden = !signedIn;
  $("#whoami").hidden = !signedIn;
  $("#whoami").textContent = signedIn ? `Signed in as ${state.user.name}` : "";
  closeMenu();
  if (signedIn) {
    clearNotice("session");
    renderConsignments();
    renderVessels();
    renderActivity();
    loadAll();
    startLive();
    clearInterval(state.fleetTimer);
    state.fleetTimer = setInterval(() => {
      if (document.visibilityState === "visible") loadVessels();
    }, FLEET_REFRESH_MS);
  }
  // The new view starts at its top, with the focus there for keyboard and screen reader users.
  window.scrollTo(0, 0);
  $("#main").focus({ preventScroll: true });
}

// ---------------------------------------------------------------- loading

/** Every page of a cursor-paginated list (100 at a time). */
async function all(query, field, partial = false) {
  const items = [];
  let after = null;
  for (;;) {
    const data = partial ? await callPartial(query, { after }) : await call(query, { after });
    const page = data[field] ?? [];
    items.push(...page);
    if (page.length < 100) return items;
    after = page[page.length - 1].id;
  }
}

/** Fetches one part of the page (`fetch` stores it); then marks it loaded, drops its old failure message and redraws. */
async function load(part, what, fetch, ...redraw) {
  try {
    await fetch();
    state.loaded[part] = true;
    clearNotice(`load-${part}`);
    for (const draw of redraw) draw();
  } catch (error) {
    loadFailed(`load-${part}`, what, error);
  }
}

function loadConsignments() {
  return load(
    "consignments",
    "your consignments",
    async () => {
      for (const c of await all(consignmentsQuery(), "consignments")) {
        // A row still showing its Pending moment keeps it; the held-back state follows.
        if (holding(c.id)) holdBack(c);
        else state.consignments.set(c.id, c);
        noteTimes(c);
      }
    },
    renderConsignments,
    renderActivity,
  );
}

function loadVessels() {
  return load(
    "vessels",
    "the fleet",
    async () => {
      state.vessels = await all(VESSELS, "vessels", true);
    },
    renderVessels,
  );
}

/** Refetches the fleet soon (several events in a row cost one request). */
function reloadVesselsSoon() {
  clearTimeout(state.fleetReload);
  state.fleetReload = setTimeout(loadVessels, 250);
}

function loadActivity() {
  return load(
    "activity",
    "your activity",
    async () => {
      const { me } = await call(ACTIVITY);
      state.activity.clear();
      for (const entry of me?.activity ?? []) addEntry(entry);
    },
    renderActivity,
    renderConsignments,
  );
}

function loadFailed(key, what, error) {
  const described = describe(error);
  if (described.signedOut) signOut(described.text);
  else notify(key, `Could not load ${what}. ${described.text}`, { kind: "error", ttl: 0 });
}

function loadAll() {
  loadVessels();
  loadConsignments();
  loadActivity();
}

// ---------------------------------------------------------------- consignments

/** Remembers when `c` reached its current status (and Pending, at creation). */
function noteTimes(c) {
  const times = state.times.get(c.id) ?? {};
  times.PENDING ??= c.createdAt;
  if (c.status !== "PENDING") times[c.status] ??= c.updatedAt;
  state.times.set(c.id, times);
}

/** Takes in a consignment as the API says it is now (a mutation's answer or a live update). */
function upsertConsignment(c) {
  const shown = state.consignments.get(c.id);
  if (!shown) {
    // A consignment just shipped is shown as Pending first, however quickly it was assigned.
    noteTimes(c);
    startPendingMoment(c.id);
    state.consignments.set(c.id, { ...c, status: "PENDING", vessel: null });
    renderConsignments();
    markChanged(c.id);
    if (c.status !== "PENDING") holdBack(c);
    return;
  }
  if (holding(c.id)) {
    holdBack(c);
    return;
  }
  // Answers can arrive out of order (the subscription's before the mutation's): the older one loses.
  if (older(c, shown)) return;
  if (c.status === "PENDING" && shown.status !== "PENDING") {
    // Tried again: a new search for a vessel, with its own Pending moment and timeline.
    state.times.set(c.id, { PENDING: c.updatedAt });
    startPendingMoment(c.id);
  }
  noteTimes(c);
  state.consignments.set(c.id, c);
  renderConsignments();
  if (shown.status !== c.status) {
    markChanged(c.id);
    announce(c);
    // Room on the vessels changes when a consignment is booked, delivered or cancelled.
    reloadVesselsSoon();
  }
}

/** Whether `a` is an earlier state of a consignment than `b` (every change moves `updatedAt` on). */
function older(a, b) {
  return new Date(a.updatedAt).getTime() < new Date(b.updatedAt).getTime();
}

function startPendingMoment(id) {
  state.pendingUntil.set(id, Date.now() + MIN_PENDING_MS);
}

/** Whether `id`'s row is still in its Pending moment. */
function holding(id) {
  return (state.pendingUntil.get(id) ?? 0) > Date.now();
}

/** Keeps the newest state of `c` until its Pending has been on screen long enough. */
function holdBack(c) {
  const previous = state.heldBack.get(c.id);
  if (previous && older(c, previous)) return;
  state.heldBack.set(c.id, c);
  if (previous) return;
  setTimeout(() => {
    state.pendingUntil.delete(c.id);
    const held = state.heldBack.get(c.id);
    state.heldBack.delete(c.id);
    if (held) upsertConsignment(held);
  }, Math.max(0, state.pendingUntil.get(c.id) - Date.now()));
}

/** Says in the status area what happened to `c` (one message per consignment: the newest replaces the last). */
function announce(c) {
  const name = c.description ?? "A consignment";
  switch (c.status) {
    case "ASSIGNED":
      notify(`c:${c.id}`, `${name} is booked on ${c.vessel?.name ?? "a vessel"}.`, { kind: "success" });
      break;
    case "IN_TRANSIT":
      notify(`c:${c.id}`, `${name} is now in transit.`, { kind: "info" });
      break;
    case "DELIVERED":
      notify(`c:${c.id}`, `${name} was delivered.`, { kind: "success" });
      break;
    case "UNASSIGNABLE":
      notify(`c:${c.id}`, `No vessel had room for ${name}. See its row for what you can do.`, { kind: "warning", ttl: 0 });
      break;
    case "CANCELLED":
      notify(`c:${c.id}`, `${name} was cancelled.`, { kind: "info" });
      break;
    default:
      break;
  }
}

/** Highlights `id`'s row for a moment, so a change is seen where it happened. */
function markChanged(id) {
  const tr = document.querySelector(`#consignments tr[data-id="${CSS.escape(id)}"]`);
  if (!tr) return;
  tr.classList.remove("changed");
  void tr.offsetWidth; // restart the animation
  tr.classList.add("changed");
  setTimeout(() => tr.classList.remove("changed"), 2600);
}

const SORTS = {
  description: (c) => (c.description ?? "").toLocaleLowerCase(),
  createdAt: (c) => c.createdAt,
  weight: (c) => Number(c.weight),
  containers: (c) => c.containers.length,
  vessel: (c) => (c.vessel?.name ?? "").toLocaleLowerCase(),
  status: (c) => STATUS[c.status]?.stage ?? 0,
};

function sortedConsignments() {
  const key = SORTS[state.sort.key];
  const dir = state.sort.dir === "asc" ? 1 : -1;
  return [...state.consignments.values()].sort((a, b) => {
    const x = key(a);
    const y = key(b);
    if (x < y) return -dir;
    if (x > y) return dir;
    return b.createdAt < a.createdAt ? -1 : 1;
  });
}

function renderConsignments() {
  const table = $("#consignments");
  const body = $("tbody", table);
  table.setAttribute("aria-busy", String(!state.loaded.consignments));
  const choice = `${state.sort.key}:${state.sort.dir}`;
  if ([...$("#sort-select").options].some((o) => o.value === choice)) $("#sort-select").value = choice;
  for (const th of table.querySelectorAll("th[data-sort]")) {
    if (th.dataset.sort === state.sort.key) th.setAttribute("aria-sort", state.sort.dir === "asc" ? "ascending" : "descending");
    else th.removeAttribute("aria-sort");
  }
  if (!state.loaded.consignments && !state.consignments.size) {
    body.replaceChildren(...skeletonRows(3, 6));
    $("#consignments-count").textContent = "";
    $("#consignments-pager").replaceChildren();
    return;
  }
  paged({
    table,
    rows: sortedConsignments(),
    page: "page",
    count: $("#consignments-count"),
    nav: $("#consignments-pager"),
    noun: "consignment",
    empty: "Nothing shipped yet. Choose “Ship a consignment” to send your first.",
    row: consignmentRow,
    rerender: () => {
      renderConsignments();
      $("#consignments-title").scrollIntoView({ block: "start" });
    },
  });
}

/** Shows one page of `rows` in `table` (`page`: which field of `state` holds the page number), with its count and pager. */
function paged({ table, rows, page, count, nav, noun, empty, row, rerender }) {
  const body = $("tbody", table);
  count.textContent = rows.length ? `(${number(rows.length)})` : "";
  if (!rows.length) {
    body.replaceChildren(emptyRow(table.tHead.rows[0].cells.length, empty));
    nav.replaceChildren();
    return;
  }
  const pages = Math.ceil(rows.length / PAGE_SIZE);
  state[page] = Math.min(state[page], pages - 1);
  body.replaceChildren(...rows.slice(state[page] * PAGE_SIZE, (state[page] + 1) * PAGE_SIZE).map(row));
  labelCells(table);
  pager(nav, state[page], pages, rows.length, noun, (next) => {
    state[page] = next;
    rerender();
  });
}

function consignmentRow(c) {
  const tr = document.createElement("tr");
  tr.dataset.id = c.id;
  tr.id = `c-${c.id}`;
  const description = cell(c.description ?? "A consignment");
  const shipped = cell(when(c.createdAt));
  const weight = cell(kg(c.weight), "number");
  const containers = cell(plural(c.containers.length, "container"), "number");
  const vessel = cell(c.vessel?.name ?? (c.status === "PENDING" ? "Looking for one…" : "None"));
  tr.append(description, shipped, weight, containers, vessel, statusCell(c));
  return tr;
}

function statusCell(c) {
  const td = document.createElement("td");
  td.className = "status-cell";
  td.dataset.status = c.status;
  const status = STATUS[c.status] ?? { label: c.status.toLowerCase().replace(/_/g, " ") };
  const badge = document.createElement("span");
  badge.className = `badge badge-${c.status.toLowerCase()}`;
  if (c.status === "PENDING") {
    const spinner = document.createElement("span");
    spinner.className = "spinner";
    spinner.setAttribute("aria-hidden", "true");
    badge.append(spinner);
  }
  badge.append(status.badge ?? status.label);
  td.append(badge, timeline(c));

  if (c.status === "UNASSIGNABLE") td.append(problemBox(c));
  const actions = [];
  // Only the vessel's owner moves a consignment along.
  if (status.next && c.vessel?.owner?.id === state.user?.id) {
    actions.push(actionButton(status.action, c, () => call(updateStatus(), { id: c.id, status: status.next }).then((d) => d.updateConsignmentStatus)));
  }
  if (actions.length) {
    const div = document.createElement("div");
    div.append(...actions);
    td.append(div);
  }
  return td;
}

/** Pending -> Assigned -> In transit -> Delivered, with the time of each step reached. */
function timeline(c) {
  const ol = document.createElement("ol");
  ol.className = "timeline";
  ol.setAttribute("aria-label", `Progress of ${c.description ?? "this consignment"}`);
  const times = state.times.get(c.id) ?? {};
  const reached = STATUS[c.status]?.stage ?? 0;
  const failed = c.status === "UNASSIGNABLE" || c.status === "CANCELLED";
  const steps = failed ? ["PENDING", c.status] : STEPS;
  steps.forEach((step, i) => {
    const li = document.createElement("li");
    const stage = failed ? i : STATUS[step].stage;
    const isCurrent = step === c.status;
    const end = c.status === "CANCELLED" ? "ended" : "failed";
    li.className = isCurrent ? (failed ? end : "current") : stage < reached || (failed && i === 0) ? "done" : "todo";
    li.append(STATUS[step].label);
    if (isCurrent) li.setAttribute("aria-current", "step");
    const at = times[step];
    if (at && (isCurrent || li.className === "done")) {
      const time = document.createElement("time");
      time.dateTime = at;
      time.textContent = when(at);
      li.append(" ", time);
    }
    ol.append(li);
  });
  return ol;
}

/** Why no vessel took `c`, and what the user can do about it. */
function problemBox(c) {
  const box = document.createElement("div");
  box.className = "problem";
  const p = document.createElement("p");
  const reason = c.unassignableReason ?? state.reasons.get(c.id);
  // A vessel that did not answer in time may yet; one with no room needs another vessel first.
  const advice = /answer/i.test(reason ?? "") ? "Try again in a moment" : "When a vessel with room is in the fleet, try again";
  const cancel = state.features.cancel ? ", or cancel it." : ".";
  p.textContent = `${sentence(reason ?? "No vessel had room for it")} ${advice}${cancel}`;
  box.append(p);
  const buttons = document.createElement("div");
  if (state.features.retry) {
    buttons.append(actionButton("Try again", c, () => call(retryConsignment(), { id: c.id }).then((d) => d.retryConsignment)));
  } else {
    // Without a retry in the API, shipping the same goods again is the way to try again.
    const again = document.createElement("button");
    again.type = "button";
    again.textContent = "Ship it again";
    again.setAttribute("aria-label", `Ship it again: ${c.description ?? "this consignment"}`);
    again.addEventListener("click", () => openShipDialog(c));
    buttons.append(again);
  }
  if (state.features.cancel) {
    const cancel = actionButton("Cancel", c, () => call(cancelConsignment(), { id: c.id }).then((d) => d.cancelConsignment));
    cancel.classList.add("danger");
    buttons.append(cancel);
  }
  box.append(buttons);
  return box;
}

/** "no available vessel has room for it" -> "No available vessel has room for it." */
function sentence(text) {
  const clean = text.replace(UUID, "it").trim();
  const capital = clean.charAt(0).toUpperCase() + clean.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

/** A button that runs `act` for `c` and shows the consignment as it is afterwards. */
function actionButton(label, c, act) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = label;
  button.setAttribute("aria-label", `${label}: ${c.description ?? "this consignment"}`);
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      upsertConsignment(await act());
    } catch (error) {
      button.disabled = false;
      const described = describe(error);
      if (described.signedOut) signOut(described.text);
      else if (described.retryAfter) notify(`c:${c.id}`, `${described.text} Try again in ${waitWords(described.retryAfter)}.`, { kind: "error" });
      else notify(`c:${c.id}`, `${c.description ?? "The consignment"}: ${described.text ?? "that change was not accepted."}`, { kind: "error", ttl: 0 });
    }
  });
  return button;
}

// ---------------------------------------------------------------- fleet

/** "Taking cargo" only when the vessel takes consignments and has room left in both containers and weight. */
function vesselState(v) {
  if (!v.available) return { key: "closed", label: "No (not taking cargo)" };
  if (v.remainingCapacity <= 0 || v.remainingWeight <= 0) return { key: "full", label: "No, full" };
  return { key: "open", label: "Yes" };
}

function renderVessels() {
  const table = $("#vessels");
  const body = $("tbody", table);
  table.setAttribute("aria-busy", String(!state.loaded.vessels));
  if (!state.loaded.vessels) {
    body.replaceChildren(...skeletonRows(2, 5));
    return;
  }
  // The user's own vessels first, then everyone else's, newest first.
  const mine = (v) => (v.owner?.id === state.user?.id ? 0 : 1);
  const vessels = [...state.vessels].sort((a, b) => mine(a) - mine(b) || (b.createdAt > a.createdAt ? 1 : -1));
  paged({
    table,
    rows: vessels,
    page: "fleetPage",
    count: $("#fleet-count"),
    nav: $("#vessels-pager"),
    noun: "vessel",
    empty: "No vessels yet. Choose “New vessel” to add one you own.",
    row: vesselRow,
    rerender: renderVessels,
  });
}

function vesselRow(v) {
  const tr = document.createElement("tr");
  tr.dataset.id = v.id;
  const taking = vesselState(v);
  const badge = document.createElement("span");
  badge.className = `badge badge-${taking.key}`;
  badge.textContent = taking.label;
  const status = document.createElement("td");
  status.dataset.available = taking.key;
  status.append(badge);
  tr.append(
    cell(v.name),
    cell(ownerName(v.owner)),
    usage(v.capacity - v.remainingCapacity, v.capacity, (n) => plural(n, "container")),
    usage(v.maxWeight - v.remainingWeight, v.maxWeight, kg),
    status,
  );
  return tr;
}

/** "120 of 500 containers" and a bar showing the same. */
function usage(used, total, format) {
  const td = document.createElement("td");
  td.className = "usage";
  const share = total > 0 ? Math.min(1, Math.max(0, used / total)) : 0;
  // Anything booked shows, however small next to the total.
  const width = used > 0 ? Math.max(share * 100, 2) : 0;
  const text = document.createElement("span");
  text.textContent = `${number(used)} of ${format(total)}`;
  const bar = document.createElement("div");
  bar.className = share >= 0.9 ? "bar high" : "bar";
  bar.setAttribute("aria-hidden", "true");
  const fill = document.createElement("span");
  fill.style.width = `${Math.round(width)}%`;
  bar.append(fill);
  td.append(text, bar);
  return td;
}

/** A vessel owner's name for the fleet table (an owner the user service cannot find reads as unknown). */
function ownerName(owner) {
  if (!owner) return "Unknown owner";
  return owner.id === state.user?.id ? `${owner.name} (you)` : owner.name;
}

// ---------------------------------------------------------------- activity

function addEntry(entry) {
  state.activity.set(entry.id, entry);
  const p = entry.payload ?? {};
  const id = p.consignment_id;
  if (!id) return;
  // The log says when each step happened, for the timelines.
  const times = state.times.get(id) ?? {};
  if (entry.kind === "consignment.created") times.PENDING ??= entry.createdAt;
  if (entry.kind === "consignment.assigned") times.ASSIGNED ??= entry.createdAt;
  if (entry.kind === "consignment.unassignable") {
    times.UNASSIGNABLE ??= entry.createdAt;
    const reason = entry.message.match(/could not be assigned: (.+)$/)?.[1];
    // The log comes newest first: the newest reason stays.
    if (reason && !state.reasons.has(id)) state.reasons.set(id, reason);
  }
  if (entry.kind === "consignment.status_changed" && p.status) times[p.status] ??= entry.createdAt;
  state.times.set(id, times);
}

/** A consignment's name: its description, linked to its row. */
function consignmentLink(id, fallback = "a consignment") {
  const c = state.consignments.get(id);
  if (!c?.description) return fallback;
  const a = document.createElement("a");
  a.href = `#c-${id}`;
  a.textContent = c.description;
  a.addEventListener("click", (event) => {
    event.preventDefault();
    showConsignment(id);
  });
  return a;
}

/** Goes to the page with `id`'s row, scrolls to it and highlights it. */
function showConsignment(id) {
  const index = sortedConsignments().findIndex((c) => c.id === id);
  if (index < 0) return;
  state.page = Math.floor(index / PAGE_SIZE);
  renderConsignments();
  const tr = document.getElementById(`c-${id}`);
  tr.scrollIntoView({ block: "center" });
  tr.classList.add("focus-target");
  setTimeout(() => tr.classList.remove("focus-target"), 2500);
}

function vesselName(id, fallback) {
  return state.vessels.find((v) => v.id === id)?.name ?? fallback ?? "a vessel";
}

/**
 * The log as a story: one entry per thing that happened (a booking is one entry, not the
 * consignment's and the vessel's record of it; logging in several times in a row is one entry),
 * newest first. Each item: {at, parts (text and links), warning}.
 */
function story() {
  const entries = [...state.activity.values()].sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1));
  const booked = new Set(entries.filter((e) => e.kind === "consignment.assigned").map((e) => e.payload?.consignment_id));
  const delivered = new Map(
    entries.filter((e) => e.kind === "consignment.status_changed" && e.payload?.status === "DELIVERED").map((e) => [e.payload.consignment_id, e]),
  );
  const released = new Map(entries.filter((e) => e.kind === "vessel.released").map((e) => [e.payload?.consignment_id, e]));
  const items = [];
  for (const e of entries) {
    const p = e.payload ?? {};
    const c = p.consignment_id;
    if (e.kind === "vessel.reserved" && booked.has(c)) continue;
    if (e.kind === "vessel.released" && delivered.has(c)) continue;
    if (e.kind === "user.logged_in") {
      const last = items[items.length - 1];
      if (last?.kind === "user.logged_in" && new Date(last.at).toDateString() === new Date(e.createdAt).toDateString()) {
        last.times += 1;
        last.parts = [`You logged in ${number(last.times)} times`];
        continue;
      }
    }
    const item = { kind: e.kind, at: e.createdAt, times: 1, warning: false, parts: [] };
    item.parts = storyParts(e, p, c, released);
    if (e.kind === "consignment.unassignable") item.warning = true;
    items.push(item);
  }
  return items;
}

function storyParts(e, p, c, released) {
  // Someone else's consignment (on the user's vessel) has no description for this user.
  const thing = (start = true) => consignmentLink(c, start ? "A consignment" : "a consignment");
  switch (e.kind) {
    case "user.registered":
      return [`You joined Shippy as ${p.name ?? state.user?.name ?? "yourself"}${p.company ? ` of ${p.company}` : ""}`];
    case "user.logged_in":
      return ["You logged in"];
    case "vessel.created":
      return [`You added the vessel ${p.name ?? "(unnamed)"}, with room for ${plural(p.capacity ?? 0, "container")} and ${kg(p.max_weight ?? 0)}`];
    case "consignment.created":
      return ["You shipped ", thing(false), `: ${plural(p.container_count ?? 0, "container")}, ${kg(p.weight ?? 0)}`];
    case "consignment.assigned": {
      const named = e.message.match(/assigned to vessel (.+)$/)?.[1];
      return [thing(), ` was booked on ${vesselName(p.vessel_id, named)}`];
    }
    case "consignment.unassignable":
      return ["No vessel had room for ", thing(false)];
    case "consignment.status_changed": {
      const after = p.status === "DELIVERED" && released.get(c);
      if (p.status === "IN_TRANSIT") return [thing(), " set off"];
      if (p.status === "DELIVERED") {
        const freed = after ? `; ${plural(after.payload.containers ?? 0, "container")} free again on ${vesselName(after.payload.vessel_id)}` : "";
        return [thing(), ` was delivered${freed}`];
      }
      return [thing(), ` is now ${(STATUS[p.status]?.label ?? "changed").toLowerCase()}`];
    }
    case "vessel.reserved":
      return [`${plural(p.containers ?? 0, "container")} (${kg(p.weight ?? 0)}) of another shipper were booked on ${vesselName(p.vessel_id)}`];
    case "vessel.released":
      return [`${plural(p.containers ?? 0, "container")} are free again on ${vesselName(p.vessel_id)}`];
    case "consignment.cancelled":
      return ["You cancelled ", thing(false)];
    case "consignment.retried":
      return ["You tried again to find a vessel for ", thing(false)];
    default: {
      // Something this page does not know yet: its message, with ids turned into names.
      const text = e.message.replace(/consignment ([0-9a-f-]{36})/gi, (_, id) => `“${state.consignments.get(id)?.description ?? "a consignment"}”`);
      return [sentence(text.replace(UUID, "")).replace(/\.$/, "")];
    }
  }
}

function renderActivity() {
  const root = $("#activity");
  root.setAttribute("aria-busy", String(!state.loaded.activity));
  if (!state.loaded.activity) {
    const list = document.createElement("ol");
    for (let i = 0; i < 3; i += 1) {
      const li = document.createElement("li");
      const line = document.createElement("span");
      line.className = "skeleton-line";
      line.style.width = `${60 - i * 10}%`;
      li.append(line);
      list.append(li);
    }
    root.replaceChildren(list);
    return;
  }
  const items = story();
  if (!items.length) {
    const p = document.createElement("p");
    p.className = "empty";
    p.textContent = "Nothing yet.";
    root.replaceChildren(p);
    return;
  }
  const children = [];
  let day = null;
  let list = null;
  for (const item of items) {
    const heading = dayHeading(new Date(item.at));
    if (heading !== day) {
      day = heading;
      const h3 = document.createElement("h3");
      h3.textContent = heading;
      list = document.createElement("ol");
      children.push(h3, list);
    }
    const li = document.createElement("li");
    if (item.warning) li.className = "warning";
    const text = document.createElement("span");
    text.append(...item.parts, ".");
    const time = document.createElement("time");
    time.dateTime = item.at;
    time.title = new Date(item.at).toLocaleString();
    time.textContent = relative(item.at);
    li.append(text, time);
    list.append(li);
  }
  root.replaceChildren(...children);
}

// ---------------------------------------------------------------- live updates

function startLive() {
  if (state.live) return;
  state.live = new SubscriptionClient({ connectionParams: { Authorization: `Bearer ${state.token}` } });
  const onError = (error) => {
    if (!state.user) return;
    for (const stop of state.stopLive) stop();
    state.stopLive = [];
    state.live?.close();
    state.live = null;
    if (error.retryable === false) {
      signOut("Your session has ended. Log in again.");
      return;
    }
    notify("live", "Live updates stopped. Reconnecting…", { kind: "warning", ttl: 0 });
    // Reconnect, and reload what may have changed while disconnected.
    clearTimeout(state.reconnect);
    state.reconnect = setTimeout(() => {
      if (!state.user) return;
      startLive();
      state.live.connect().then(() => notify("live", "Live updates are back.", { kind: "success" }), () => {});
      loadAll();
    }, 3000);
  };
  state.stopLive.push(
    state.live.subscribe(payloadFor(consignmentUpdated()), {
      next: (result) => {
        if (result.data?.consignmentUpdated) upsertConsignment(result.data.consignmentUpdated);
      },
      error: onError,
    }),
    state.live.subscribe(payloadFor(LOG_ADDED), {
      next: (result) => {
        const entry = result.data?.logAdded;
        if (!entry) {
          // Missed entries (a slow connection): read the log again.
          if (result.errors?.length) loadActivity();
          return;
        }
        if (state.activity.has(entry.id)) return;
        addEntry(entry);
        renderActivity();
        if (entry.kind.startsWith("vessel.")) reloadVesselsSoon();
        if (entry.payload?.consignment_id) renderConsignments();
      },
      error: onError,
    }),
  );
}

// Relative times ("5 minutes ago") move on by themselves.
setInterval(() => {
  if (state.user && state.loaded.activity) renderActivity();
}, 30_000);

document.addEventListener("visibilitychange", () => {
  if (state.user && document.visibilityState === "visible") loadVessels();
});

// ---------------------------------------------------------------- table helpers

/** Labels each cell of `table`'s body with its column's header, for the phone layout's cards. */
function labelCells(table) {
  const headers = [...table.querySelectorAll("thead th")].map((th) => th.textContent.trim());
  for (const tr of table.querySelectorAll("tbody tr")) {
    [...tr.children].forEach((td, i) => {
      if (headers[i] && td.colSpan === 1) td.dataset.label = headers[i];
    });
  }
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
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

/** Grey placeholder rows while a table loads. */
function skeletonRows(count, columns) {
  return Array.from({ length: count }, () => {
    const tr = document.createElement("tr");
    tr.className = "skeleton";
    tr.setAttribute("aria-hidden", "true");
    for (let i = 0; i < columns; i += 1) {
      const td = document.createElement("td");
      td.append(document.createElement("span"));
      tr.append(td);
    }
    return tr;
  });
}

/** "Showing 11–20 of 23 consignments", with Previous and Next. */
function pager(nav, page, pages, total, noun, go) {
  if (pages <= 1) {
    nav.replaceChildren();
    return;
  }
  const previous = document.createElement("button");
  previous.type = "button";
  previous.textContent = "Previous page";
  previous.disabled = page === 0;
  previous.addEventListener("click", () => go(page - 1));
  const next = document.createElement("button");
  next.type = "button";
  next.textContent = "Next page";
  next.disabled = page >= pages - 1;
  next.addEventListener("click", () => go(page + 1));
  const info = document.createElement("span");
  info.textContent = `Showing ${number(page * PAGE_SIZE + 1)}–${number(Math.min(total, (page + 1) * PAGE_SIZE))} of ${plural(total, noun)}`;
  nav.replaceChildren(previous, info, next);
}

// Column headings sort the consignments (a button each, so the keyboard reaches them).
for (const th of document.querySelectorAll("#consignments th[data-sort]")) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "sort";
  button.textContent = th.textContent;
  th.replaceChildren(button);
  button.addEventListener("click", () => {
    const key = th.dataset.sort;
    // The same column again reverses the order; a new one starts A to Z for words, newest or largest first for the rest.
    const firstDir = key === "description" || key === "vessel" ? "asc" : "desc";
    const dir = state.sort.key === key ? (state.sort.dir === "asc" ? "desc" : "asc") : firstDir;
    state.sort = { key, dir };
    state.page = 0;
    renderConsignments();
  });
}

$("#sort-select").addEventListener("change", (event) => {
  const [key, dir] = event.target.value.split(":");
  state.sort = { key, dir };
  state.page = 0;
  renderConsignments();
});

// ---------------------------------------------------------------- dialogs

function openDialog(dialog, opener) {
  clearErrors($("form", dialog));
  dialog.returnFocus = opener;
  dialog.showModal();
  $("input", dialog)?.focus();
}

function closeDialogs() {
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
}

for (const dialog of document.querySelectorAll("dialog")) {
  for (const button of dialog.querySelectorAll("[data-close]")) button.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => dialog.returnFocus?.focus());
}

/** Opens "Ship a consignment", filled in with `from` (to ship the same goods again) or empty. */
function openShipDialog(from, opener = document.activeElement) {
  const form = $("#create-consignment");
  form.reset();
  $("#container-list").replaceChildren();
  if (from) {
    $("#consignment-description").value = from.description ?? "";
    $("#consignment-weight").value = String(from.weight);
    for (const container of from.containers) {
      const row = addContainerRow();
      $('[name="customerId"]', row).value = container.customerId;
      $('[name="origin"]', row).value = container.origin;
    }
  } else addContainerRow();
  openDialog($("#ship-dialog"), opener);
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

// ---------------------------------------------------------------- menu (phones)

function closeMenu() {
  $("#top-nav").classList.remove("open");
  $("#menu-toggle").setAttribute("aria-expanded", "false");
}

$("#menu-toggle").addEventListener("click", () => {
  const open = !$("#top-nav").classList.contains("open");
  $("#top-nav").classList.toggle("open", open);
  $("#menu-toggle").setAttribute("aria-expanded", String(open));
});
// A tap anywhere else closes it, as does Escape.
document.addEventListener("click", (event) => {
  if ($("#top-nav").classList.contains("open") && !event.target.closest("#top-nav, #menu-toggle")) closeMenu();
});
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && $("#top-nav").classList.contains("open")) {
    closeMenu();
    $("#menu-toggle").focus();
  }
});

// ---------------------------------------------------------------- wiring

onSubmit($("#register"), {
  check(form) {
    const problems = [];
    const name = checkText($("#register-name"), "your name", problems, 100);
    const email = checkText($("#register-email"), "your email address", problems, 254);
    if (email && !/^[^@\s]+@[^@\s]+$/.test(email)) problems.push({ input: $("#register-email"), text: "Enter an email address like name@example.com." });
    const password = $("#register-password").value;
    if (!password) problems.push({ input: $("#register-password"), text: "Enter a password." });
    else if (password.length < 8) problems.push({ input: $("#register-password"), text: "Use at least 8 characters." });
    else if (password.length > 128) problems.push({ input: $("#register-password"), text: "Use at most 128 characters." });
    const company = $("#register-company").value.trim();
    const input = { name, email, password };
    if (company) input.company = company;
    return { problems, values: input };
  },
  async handle(input, form) {
    const { register } = await call(REGISTER, { input });
    form.reset();
    await signIn(register.token, register.user);
    notify("session", `Welcome to Shippy, ${register.user.name}.`, { kind: "success" });
  },
});

onSubmit($("#login"), {
  check() {
    const problems = [];
    const email = checkText($("#login-email"), "your email address", problems);
    const password = $("#login-password").value;
    if (!password) problems.push({ input: $("#login-password"), text: "Enter your password." });
    return { problems, values: { email, password } };
  },
  async handle(values, form) {
    const { login } = await call(LOGIN, values);
    form.reset();
    await signIn(login.token, login.user);
  },
  options: { login: true },
});

onSubmit($("#create-vessel"), {
  check() {
    const problems = [];
    const name = checkText($("#vessel-name"), "a name", problems, 100);
    const capacityInput = $("#vessel-capacity");
    const capacity = wholeNumber(capacityInput.value);
    if (capacityInput.value.trim() === "") problems.push({ input: capacityInput, text: "Enter how many containers it takes." });
    else if (!Number.isInteger(capacity)) problems.push({ input: capacityInput, text: "Enter a whole number of containers, like 500." });
    else if (capacity < 1) problems.push({ input: capacityInput, text: "Enter at least 1 container." });
    else if (capacity > 1_000_000) problems.push({ input: capacityInput, text: `Enter at most ${plural(1_000_000, "container")}.` });
    const weightInput = $("#vessel-max-weight");
    const weightProblemText = weightProblem(weightInput.value, "the maximum cargo weight");
    if (weightProblemText) problems.push({ input: weightInput, text: weightProblemText });
    return { problems, values: { name, capacity, maxWeight: wholeNumber(weightInput.value) } };
  },
  async handle(input, form) {
    const { createVessel } = await call(CREATE_VESSEL, { input });
    form.reset();
    $("#vessel-dialog").close();
    state.vessels = [...state.vessels.filter((v) => v.id !== createVessel.id), createVessel];
    renderVessels();
    notify("vessel", `${createVessel.name} is in the fleet, with room for ${plural(createVessel.capacity, "container")} and ${kg(createVessel.maxWeight)}.`, { kind: "success" });
  },
});

onSubmit($("#create-consignment"), {
  check() {
    const problems = [];
    const description = checkText($("#consignment-description"), "a description", problems, 500);
    const weightInput = $("#consignment-weight");
    const weightText = weightProblem(weightInput.value, "the total weight");
    if (weightText) problems.push({ input: weightInput, text: weightText });
    const rows = [...document.querySelectorAll("#container-list .container-row")];
    if (!rows.length) problems.push({ input: $("#containers"), text: "Add at least one container." });
    const containers = rows.map((r) => ({
      customerId: checkText($('[name="customerId"]', r), "the customer id", problems, 100),
      origin: checkText($('[name="origin"]', r), "where it comes from", problems, 100),
    }));
    return { problems, values: { description, weight: wholeNumber(weightInput.value), containers } };
  },
  async handle(input) {
    const { createConsignment: created } = await call(createConsignment(), { input });
    $("#ship-dialog").close();
    state.sort = { key: "createdAt", dir: "desc" };
    state.page = 0;
    upsertConsignment(created);
    notify(`c:${created.id}`, `${created.description} is shipped. Looking for a vessel with room…`, { kind: "info", ttl: 0 });
  },
});

$("#open-ship").addEventListener("click", (event) => openShipDialog(null, event.currentTarget));
$("#open-vessel").addEventListener("click", (event) => {
  $("#create-vessel").reset();
  openDialog($("#vessel-dialog"), event.currentTarget);
});
$("#add-container").addEventListener("click", () => $("input", addContainerRow()).focus());
$("#logout").addEventListener("click", () => signOut("You are logged out."));

// A token from earlier in this tab's session: check it is still good (placeholders meanwhile).
if (state.token) {
  $("#signed-out").hidden = true;
  call(ME).then(
    ({ me }) => (me ? signIn(state.token, me) : signOut()),
    (error) => signOut(describe(error).signedOut ? "Your session has ended. Log in again." : describe(error).text, "error"),
  );
}
