// The whole Shippy walkthrough in a real browser (Debian's chromium through playwright-core), checking
// each point of what the web UI promises: the data comes first (consignments and fleet, dialogs for
// new things, newest first, sortable, paginated), progress is visible (Pending even when short, a
// timeline with times, a changed row highlighted, a consignment no vessel took shown as a problem,
// never as a success), plain words (no API text, every field error at once beside its field,
// thousands separators, units, rate limits counting down in minutes or seconds), a live and honest
// fleet (a vessel created through the API appears, a full vessel is not "Yes", utilisation bars), an
// activity log told as a story (no ids, grouped by day, plurals), loading placeholders, the phone
// layout (one-line header with a menu, no sideways scrolling) and the GraphiQL playground (query,
// subscription, the phone note, the way back). After every step it takes a screenshot at 1280x800 and
// at 390x844, checks the page does not scroll sideways at 390 px, and runs axe-core (0 serious or
// critical violations). Run by tests/browser.rs:
//   node tests/browser/walkthrough.mjs <router base URL> <artifacts dir>
// With SHIPPY_WEB_DIR=router/web the page's own files are served from that folder instead of the
// binary (to try changes to the UI without rebuilding).
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [base, artifacts = "target/browser-artifacts"] = process.argv.slice(2);
if (!base) {
  console.error("usage: node walkthrough.mjs <router base URL, e.g. http://127.0.0.1:4000> [artifacts dir]");
  process.exit(2);
}
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
mkdirSync(artifacts, { recursive: true });
const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
// The UI sends its operations by document id (the router's first-party manifest): a request is
// recognised by the ids of the named operations, or by its text.
const manifest = JSON.parse(readFileSync(new URL("../../router/web/persisted-documents.json", import.meta.url), "utf8"));
const sends = (body, names) =>
  manifest.operations.some((o) => names.includes(o.name) && body.includes(o.id)) ||
  names.some((name) => body.includes(`${kindOf(name)} ${name}`));
function kindOf(name) {
  return manifest.operations.find((o) => o.name === name)?.type ?? "query";
}

/** Generous: a loaded 2-core machine runs a debug build of every service next to the browser. */
const WAIT = 20_000;
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i;
/** Text that must never reach the page: the API's own wording. */
const RAW = /Variable "\$|got invalid value|input\.|must not be empty|must be at|BAD_USER_INPUT|extensions|\be1[0-9]\b|GraphQL error/;
let shots = 0;
let steps = 0;
const accessibility = [];

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    // Pages fulfilled by this script (SHIPPY_WEB_DIR) have no address space, so chromium would refuse
    // their WebSocket to 127.0.0.1.
    ...(process.env.SHIPPY_WEB_DIR ? ["--disable-features=LocalNetworkAccessChecks"] : []),
  ],
});
const context = await browser.newContext({ viewport: DESKTOP, locale: "en-US", timezoneId: "UTC" });
context.setDefaultTimeout(WAIT);
const page = await context.newPage();
const problems = [];
/** HTTP statuses the current step provokes on purpose. */
const expectedStatuses = new Set();
page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
page.on("console", (message) => {
  // A CSP violation or a failed asset load shows up here as an error.
  // (The browser also logs the answers a step provokes on purpose, e.g. the 429 of the rate limit.)
  const expected = [...expectedStatuses].some((status) => message.text().includes(`status of ${status}`));
  if (message.type() === "error" && !expected) problems.push(`console error: ${message.text()}`);
});
// Nothing may be loaded from anywhere but the router (the playground works offline).
const origin = new URL(base).origin;
const webDir = process.env.SHIPPY_WEB_DIR;
await context.route("**/*", (route) => {
  const request = route.request();
  const url = new URL(request.url());
  if (url.origin === origin && webDir) {
    const served = fromWebDir(url, request);
    if (served) return route.fulfill(served);
  }
  if (url.origin === origin || request.url().startsWith("data:")) return route.continue();
  problems.push(`request outside the router: ${request.url()}`);
  return route.abort();
});

/** A file of SHIPPY_WEB_DIR for `url`, the way the router serves it (pages with its CSP). */
function fromWebDir(url, request) {
  const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'";
  const type = (name) => (name.endsWith(".js") ? "text/javascript" : name.endsWith(".css") ? "text/css" : "text/html");
  let name = null;
  if (url.pathname === "/") name = "index.html";
  else if (url.pathname === "/graphql" && request.resourceType() === "document") name = "playground.html";
  else if (url.pathname.startsWith("/assets/")) name = url.pathname.slice("/assets/".length);
  if (!name) return null;
  for (const dir of [webDir, join(webDir, "vendor")]) {
    try {
      const body = readFileSync(join(dir, name));
      return { status: 200, body, headers: { "content-type": type(name), "content-security-policy": csp } };
    } catch {
      // not in this folder
    }
  }
  return null;
}

/** Screenshots at both sizes, the 390 px overflow check and axe at both sizes; back to `size` after. */
async function shot(name, size) {
  shots += 1;
  for (const [label, viewport] of [["desktop", DESKTOP], ["phone", PHONE]]) {
    await page.setViewportSize(viewport);
    await page.waitForTimeout(100);
    await page.screenshot({ path: join(artifacts, `${String(shots).padStart(2, "0")}-${name}-${label}.png`), fullPage: true });
    if (label === "phone") await noSidewaysScroll(name);
    await axe(`${name} (${label})`);
  }
  await page.setViewportSize(size);
}

/** At 390 px nothing is wider than the screen. */
async function noSidewaysScroll(name) {
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (overflow > 1) {
    const wide = await page.evaluate(() =>
      [...document.querySelectorAll("body *")]
        .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1)
        .slice(0, 5)
        .map((el) => `${el.tagName.toLowerCase()}#${el.id}.${el.className} (${Math.round(el.getBoundingClientRect().right)}px)`),
    );
    throw new Error(`${name}: the page is ${overflow}px wider than a 390px phone screen: ${wide.join(", ")}`);
  }
}

/** axe-core on the page as it is: no serious or critical violation. */
async function axe(label) {
  if (!(await page.evaluate(() => Boolean(window.axe)))) await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ["violations"] });
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ")) }));
  });
  accessibility.push({ page: label, violations });
  const bad = violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  if (bad.length) throw new Error(`axe on ${label}: ${JSON.stringify(bad, null, 2)}`);
}

async function step(name, body, statuses = []) {
  process.stdout.write(`step: ${name} ... `);
  for (const status of statuses) expectedStatuses.add(status);
  const size = page.viewportSize();
  await body();
  if (problems.length) throw new Error(`the page reported problems:\n${problems.join("\n")}`);
  const text = await page.locator("body").innerText();
  if (RAW.test(text)) throw new Error(`the page shows the API's own wording: ${text.match(RAW)[0]}`);
  await shot(name, page.viewportSize() ?? size);
  expectedStatuses.clear();
  steps += 1;
  console.log("ok");
}

async function expectText(locator, pattern) {
  await locator.filter({ hasText: pattern }).first().waitFor({ state: "visible" });
}

/** The field error beside `input` (a locator), which must say `pattern`. */
async function expectFieldError(input, pattern) {
  await input.and(page.locator('[aria-invalid="true"]')).waitFor();
  const id = await input.getAttribute("aria-describedby");
  if (!id) throw new Error(`${await input.evaluate((el) => el.id || el.name)} has no error beside it`);
  const text = await page.locator(`#${id}`).innerText();
  if (!pattern.test(text)) throw new Error(`the error beside ${await input.evaluate((el) => el.id || el.name)} says "${text}", not ${pattern}`);
  if ((await input.getAttribute("aria-invalid")) !== "true") throw new Error("the refused field is not marked invalid");
}

/** Calls the API from outside the page (to change things the page must notice by itself): as the page's
 * user, as the holder of `token`, or anonymously when `token` is "". */
async function api(query, variables = {}, token = null) {
  const bearer = token ?? (await page.evaluate(() => sessionStorage.getItem("shippy.token")));
  const headers = { "content-type": "application/json" };
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  const response = await fetch(`${base}/graphql`, { method: "POST", headers, body: JSON.stringify({ query, variables }) });
  const body = await response.json();
  if (body.errors) throw new Error(`${query}: ${JSON.stringify(body.errors)}`);
  return body.data;
}

const consignmentRow = (text) => page.locator("#consignments tbody tr", { hasText: text });
const vesselRow = (text) => page.locator("#vessels tbody tr", { hasText: text });

const email = `ada-${Date.now()}@example.com`;
/** When another user created a vessel through the API. */
let bobsVesselAt = 0;
const password = "correct horse battery";

try {
  await step("home", async () => {
    await page.goto(`${base}/`);
    await page.getByRole("heading", { name: "Welcome" }).waitFor();
  });

  await step("register-refused", async () => {
    const form = page.locator("#register");
    // Nothing filled in: every problem at once, each beside its field, in plain words.
    await form.getByRole("button", { name: "Register" }).click();
    await expectFieldError(form.getByLabel("Name"), /^Enter your name\.$/);
    await expectFieldError(form.getByLabel("Email"), /^Enter your email address\.$/);
    await expectFieldError(form.getByLabel("Password"), /^Enter a password\.$/);
    if ((await page.evaluate(() => document.activeElement?.id)) !== "register-name") throw new Error("the first refused field did not get the focus");
    await form.getByLabel("Name").fill("Ada");
    await form.getByLabel("Company").fill("Acme");
    await form.getByLabel("Email").fill(email);
    await form.getByLabel("Password").fill("short");
    await form.getByRole("button", { name: "Register" }).click();
    await expectFieldError(form.getByLabel("Password"), /^Use at least 8 characters\.$/);
    if (await form.getByLabel("Name").getAttribute("aria-invalid")) throw new Error("a fixed field still shows its old error");
  });

  await step("registered", async () => {
    const form = page.locator("#register");
    await form.getByLabel("Password").fill(password);
    await form.getByRole("button", { name: "Register" }).click();
    await expectText(page.locator("#whoami"), "Signed in as Ada");
    await page.getByRole("heading", { name: "My consignments" }).waitFor();
    await expectText(page.locator("#consignments tbody"), "Nothing shipped yet");
  });

  await step("email-taken", async () => {
    await page.getByRole("button", { name: "Log out" }).click();
    await expectText(page.locator("#status"), "You are logged out.");
    const form = page.locator("#register");
    await form.getByLabel("Name").fill("Ada again");
    await form.getByLabel("Email").fill(email);
    await form.getByLabel("Password").fill(password);
    await form.getByRole("button", { name: "Register" }).click();
    // The API's "this email is already registered", said once and beside the email.
    await expectFieldError(form.getByLabel("Email"), /^This email already has an account/);
  });

  await step("login-refused", async () => {
    const form = page.locator("#login");
    await form.getByLabel("Email").fill(email);
    await form.getByLabel("Password").fill("wrong password");
    await form.getByRole("button", { name: "Log in" }).click();
    await expectText(page.locator("#login-error"), "do not match an account");
  });

  await step("loading-placeholders", async () => {
    // Slow answers: the tables show grey placeholder rows, not empty tables, until the data is there.
    let release;
    const released = new Promise((resolve) => (release = resolve));
    await page.route("**/graphql", async (route) => {
      const body = route.request().postData() ?? "";
      if (sends(body, ["Vessels", "Consignments", "Activity"])) await released;
      return route.fallback();
    });
    await page.setViewportSize(PHONE);
    const form = page.locator("#login");
    await form.getByLabel("Password").fill(password);
    // Keyboard only: Enter submits (and the phone page is scrolled down to the form).
    await form.getByLabel("Password").press("Enter");
    // (On a phone "Signed in as Ada" is in the menu.)
    await page.getByRole("heading", { name: "Shipments" }).waitFor();
    await page.locator("#vessels tbody tr.skeleton").first().waitFor();
    await page.locator("#consignments tbody tr.skeleton").first().waitFor();
    if ((await page.locator("#consignments").getAttribute("aria-busy")) !== "true") throw new Error("the loading table is not marked busy");
    // After logging in the page starts at its top.
    const scrolled = await page.evaluate(() => window.scrollY);
    if (scrolled !== 0) throw new Error(`after logging in the page is scrolled down by ${scrolled}px`);
    await page.screenshot({ path: join(artifacts, "00-loading-placeholders-phone.png"), fullPage: true });
    // (The route stays: once released it only passes requests on.)
    release();
    await expectText(page.locator("#vessels tbody"), "No vessels yet");
    await page.setViewportSize(DESKTOP);
  });

  await step("vessel-refused", async () => {
    await page.getByRole("button", { name: "New vessel" }).click();
    const dialog = page.getByRole("dialog", { name: "New vessel" });
    await dialog.waitFor();
    await dialog.getByLabel("Capacity").fill("1000000000000");
    await dialog.getByLabel("Maximum cargo weight").fill("heavy");
    await dialog.getByRole("button", { name: "Add vessel" }).click();
    // All at once, each beside its field: the absurd capacity in plain words, with its unit.
    await expectFieldError(dialog.getByLabel("Name"), /^Enter a name\.$/);
    await expectFieldError(dialog.getByLabel("Capacity"), /^Enter at most 1,000,000 containers\.$/);
    await expectFieldError(dialog.getByLabel("Maximum cargo weight"), /number of kg/);
    await dialog.getByLabel("Maximum cargo weight").fill("5000000000000");
    await dialog.getByRole("button", { name: "Add vessel" }).click();
    await expectFieldError(dialog.getByLabel("Maximum cargo weight"), /^Enter at most 1,000,000,000 kg\.$/);
    // Only the API knows this one (a text-direction character): its answer too is in plain words, beside the field.
    await dialog.getByLabel("Name").fill("Ever\u202eGiven");
    await dialog.getByLabel("Capacity").fill("10");
    await dialog.getByLabel("Maximum cargo weight").fill("10");
    await dialog.getByRole("button", { name: "Add vessel" }).click();
    await expectFieldError(dialog.getByLabel("Name"), /^Remove line breaks, tabs and invisible characters\.$/);
    if (await dialog.getByLabel("Capacity").getAttribute("aria-invalid")) throw new Error("a fixed field still shows its old error");
  });

  await step("vessel-added", async () => {
    const dialog = page.getByRole("dialog", { name: "New vessel" });
    await dialog.getByLabel("Name").fill("Ever Given");
    await dialog.getByLabel("Capacity").fill("500");
    await dialog.getByLabel("Maximum cargo weight").fill("20,000");
    await dialog.getByRole("button", { name: "Add vessel" }).click();
    await dialog.waitFor({ state: "hidden" });
    await expectText(page.locator("#status"), "Ever Given is in the fleet, with room for 500 containers and 20,000 kg.");
    const row = vesselRow("Ever Given");
    await expectText(row, /Ada \(you\)/);
    await expectText(row, "0 of 500 containers");
    await expectText(row, "0 of 20,000 kg");
    await expectText(row.locator('[data-available="open"]'), "Yes");
  });

  await step("consignment-refused", async () => {
    await page.getByRole("button", { name: "Ship a consignment" }).click();
    const dialog = page.getByRole("dialog", { name: "Ship a consignment" });
    await dialog.getByRole("button", { name: "Ship it" }).click();
    await expectFieldError(dialog.getByLabel("Description"), /^Enter a description\.$/);
    await expectFieldError(dialog.getByLabel("Total weight"), /^Enter the total weight in kg\.$/);
    await expectFieldError(dialog.getByLabel("Customer id"), /^Enter the customer id\.$/);
    await expectFieldError(dialog.getByLabel("Origin"), /^Enter where it comes from\.$/);
  });

  await step("consignment-pending-then-assigned", async () => {
    const dialog = await fillShipDialog("Tea", "800", "c1", "Rotterdam");
    await dialog.getByRole("button", { name: "Add a container" }).click();
    await dialog.getByLabel("Customer id").nth(1).fill("c2");
    await dialog.getByLabel("Origin").nth(1).fill("Hamburg");
    await dialog.getByRole("button", { name: "Ship it" }).click();
    const row = consignmentRow("Tea");
    // The vessel is found within milliseconds, yet Pending is on screen, as a waiting state.
    await row.locator('[data-status="PENDING"] .spinner').waitFor();
    await page.screenshot({ path: join(artifacts, "00-pending-desktop.png") });
    await row.locator('[data-status="ASSIGNED"]').waitFor();
    await expectText(row, "Ever Given");
    await expectText(row, "800 kg");
    await expectText(row, "2 containers");
    if (!(await row.evaluate((tr) => tr.classList.contains("changed")))) throw new Error("the changed row is not highlighted");
    // The timeline: Pending and Assigned with their times, the rest still to come.
    const steps = await row.locator(".timeline li").allInnerTexts();
    if (steps.length !== 4 || !/Pending\s*\d/.test(steps[0]) || !/Assigned\s*\d/.test(steps[1])) throw new Error(`timeline: ${JSON.stringify(steps)}`);
    // One message about it: the booking replaced "looking for a vessel".
    await expectText(page.locator("#status"), "Tea is booked on Ever Given.");
    if ((await page.locator("#status .message", { hasText: "Tea" }).count()) !== 1) throw new Error("stale messages about Tea stayed");
    await expectText(vesselRow("Ever Given"), "2 of 500 containers");
    await expectText(vesselRow("Ever Given"), "800 of 20,000 kg");
  });

  await step("vessel-created-elsewhere-appears", async () => {
    // Created through the API, not this page: the fleet shows it without a reload.
    await page.evaluate(() => (window.__notReloaded = true));
    await api('mutation { createVessel(input: {name: "Nordic Star", capacity: 2, maxWeight: 1000}) { id } }');
    await expectText(vesselRow("Nordic Star"), "0 of 2 containers");
    if (!(await page.evaluate(() => window.__notReloaded))) throw new Error("the page reloaded");
    // Another user's vessel tells this user nothing (their log is their own): the page refetches the
    // fleet every 20 s, so it is there a few steps on (see "other-users-vessel-appeared").
    const bob = await api(
      "mutation($input: RegisterInput!) { register(input: $input) { token } }",
      { input: { name: "Bob", email: `bob-${Date.now()}@example.com`, password } },
      "",
    );
    await api('mutation { createVessel(input: {name: "Bob\'s Barge", capacity: 1000, maxWeight: 50000}) { id } }', {}, bob.register.token);
    bobsVesselAt = Date.now();
  });

  await step("full-vessel-is-not-available", async () => {
    // Two containers fill Nordic Star (the smallest vessel with room): it is full, so not "Yes".
    await api('mutation { createConsignment(input: {description: "Bikes", weight: 100, containers: [{customerId: "c", origin: "Oslo"}, {customerId: "c", origin: "Oslo"}]}) { id } }');
    await consignmentRow("Bikes").locator('[data-status="ASSIGNED"]').waitFor();
    const row = vesselRow("Nordic Star");
    await expectText(row, "2 of 2 containers");
    await expectText(row.locator('[data-available="full"]'), "No, full");
    const bar = await row.locator(".bar span").first().evaluate((el) => el.style.width);
    if (bar !== "100%") throw new Error(`a full vessel's bar is ${bar} wide`);
  });

  await step("unassignable-is-a-problem", async () => {
    await api('mutation { createConsignment(input: {description: "Grand pianos", weight: 900000000, containers: [{customerId: "c", origin: "Vienna"}]}) { id } }');
    const row = consignmentRow("Grand pianos");
    const cell = row.locator('[data-status="UNASSIGNABLE"]');
    await cell.waitFor();
    // The API's reason, in its own plain words, and what to do.
    await expectText(cell.locator(".problem p"), /^No vessel (can carry|has room for) 1 container and 900,000,000 kg\. When a vessel with room is in the fleet, try again, or cancel it\.$/);
    await cell.getByRole("button").first().waitFor();
    // Warning colours, never the success colours.
    const colours = await cell.locator(".badge").evaluate((el) => {
      const probe = document.createElement("span");
      probe.className = "badge badge-delivered";
      document.body.append(probe);
      const ok = getComputedStyle(probe);
      const okColours = [ok.color, ok.backgroundColor];
      probe.remove();
      const style = getComputedStyle(el);
      return { badge: [style.color, style.backgroundColor], ok: okColours };
    });
    if (colours.badge.some((c) => colours.ok.includes(c))) throw new Error(`UNASSIGNABLE is styled like a success: ${JSON.stringify(colours)}`);
    await expectText(page.locator("#status .message.warning"), "No vessel had room for Grand pianos");
  });

  await step("unassignable-retried-and-cancelled", async () => {
    // No vessel will ever take 900,000,000 kg: the owner cancels Grand pianos.
    const pianos = consignmentRow("Grand pianos");
    await pianos.getByRole("button", { name: /^Cancel: Grand pianos/ }).click();
    await pianos.locator('[data-status="CANCELLED"]').waitFor();
    await expectText(pianos, "Cancelled");
    // Steel is too heavy for every vessel until a bigger one comes: then trying again books it.
    await api('mutation { createConsignment(input: {description: "Steel", weight: 60000, containers: [{customerId: "c", origin: "Genoa"}]}) { id } }');
    const steel = consignmentRow("Steel");
    await steel.locator('[data-status="UNASSIGNABLE"]').waitFor();
    await api('mutation { createVessel(input: {name: "Heavy Lifter", capacity: 10, maxWeight: 100000}) { id } }');
    await steel.getByRole("button", { name: /^Try again: Steel/ }).click();
    await steel.locator('[data-status="PENDING"] .spinner').waitFor();
    await steel.locator('[data-status="ASSIGNED"]').waitFor();
    await expectText(steel, "Heavy Lifter");
  });

  await step("status-changed-live", async () => {
    const { consignments } = await api("{ consignments { id description } }");
    const tea = consignments.find((c) => c.description === "Tea");
    await api("mutation($id: ID!) { updateConsignmentStatus(id: $id, status: IN_TRANSIT) { status } }", { id: tea.id });
    const row = consignmentRow("Tea");
    await row.locator('[data-status="IN_TRANSIT"]').waitFor();
    await expectText(page.locator("#status"), "Tea is now in transit.");
    // The vessel's owner moves it on from the page.
    await row.getByRole("button", { name: /Mark delivered/ }).click();
    await row.locator('[data-status="DELIVERED"]').waitFor();
    const steps = await row.locator(".timeline li time").count();
    if (steps !== 4) throw new Error(`a delivered consignment's timeline has ${steps} times, not 4`);
    await expectText(vesselRow("Ever Given"), "0 of 500 containers");
  });

  await step("activity-story", async () => {
    const log = page.locator("#activity");
    await expectText(log.locator("li"), "Tea was delivered");
    const text = await log.innerText();
    if (UUID.test(text)) throw new Error(`the activity log shows an id: ${text.match(UUID)[0]}`);
    for (const expected of ["Today", "You joined Shippy as Ada of Acme", "You added the vessel Ever Given, with room for 500 containers and 20,000 kg", "You shipped Tea: 2 containers, 800 kg", "Tea was booked on Ever Given", "No vessel had room for Grand pianos", "You shipped Grand pianos: 1 container, 900,000,000 kg", "You cancelled Grand pianos", "You tried again to find a vessel for Steel", "Steel was booked on Heavy Lifter", "just now"]) {
      if (!text.includes(expected)) throw new Error(`the activity log does not say "${expected}":\n${text}`);
    }
    if (/\b1 containers\b|\b(2|[3-9]) container\b/.test(text)) throw new Error(`wrong plural in the activity log:\n${text}`);
    // One entry per thing: the booking is told once (not by the consignment and again by the vessel).
    const booked = text.split("\n").filter((line) => line.includes("Tea was booked")).length;
    if (booked !== 1) throw new Error(`Tea's booking is told ${booked} times`);
    // A consignment's name links to its row.
    await log.getByRole("link", { name: "Grand pianos" }).first().click();
    await consignmentRow("Grand pianos").and(page.locator(".focus-target")).waitFor();
  });

  await step("rate-limited-counts-down", async () => {
    // createConsignment allows 10 a minute per user: use up the rest through the API (until it says
    // so), then the page must say when to retry. (The window slides: should a slot free up just then,
    // the page's consignment goes through, and the limit is used up again.)
    const error = page.locator("#create-consignment-error");
    const dialog = page.getByRole("dialog", { name: "Ship a consignment" });
    for (let attempt = 0; ; attempt += 1) {
      const { consignments } = await api("{ consignments(first: 100) { id } }");
      for (let i = consignments.length; ; i += 1) {
        const limited = await api(`mutation { createConsignment(input: {description: "Crate ${i}", weight: ${10 + i}, containers: [{customerId: "c", origin: "o"}]}) { id } }`).then(
          () => false,
          (e) => (/RATE_LIMITED/.test(e.message) ? true : Promise.reject(e)),
        );
        if (limited) break;
        if (i > 40) throw new Error("createConsignment was never rate limited");
      }
      await page.getByRole("button", { name: "Ship a consignment" }).click();
      await fillShipDialog("One too many", "5000", "c3", "Antwerp");
      await dialog.getByRole("button", { name: "Ship it" }).click();
      const outcome = await Promise.race([
        error.filter({ hasText: "Too many" }).waitFor().then(() => "limited", () => "neither"),
        dialog.waitFor({ state: "hidden" }).then(() => "shipped", () => "neither"),
      ]);
      if (outcome === "neither") throw new Error("shipping from the page neither worked nor was rate limited");
      if (outcome === "limited") break;
      if (attempt >= 3) throw new Error("the page's consignment was never rate limited");
    }
    await expectText(error, /^Too many attempts\. Try again in (about a minute|\d+ seconds?)\.$/);
    if (!(await dialog.getByRole("button", { name: "Ship it" }).isDisabled())) throw new Error("the rate-limited button stayed enabled");
    // The wait counts down in the message itself.
    const before = await error.innerText();
    await page.waitForFunction((old) => document.querySelector("#create-consignment-error").textContent !== old, before, { timeout: 5000 });
    await dialog.getByRole("button", { name: "Cancel" }).click();
  }, [429]);

  await step("newest-first-sorted-paginated", async () => {
    const { consignments } = await api("{ consignments(first: 100) { description weight } }");
    const total = consignments.length;
    await expectText(page.locator("#consignments-pager"), `Showing 1–8 of ${total} consignments`);
    const firsts = async () => page.locator("#consignments tbody tr td:first-child").allInnerTexts();
    const newest = await firsts();
    if (newest[0] !== consignments.at(-1).description) throw new Error(`newest first: the first row is ${newest[0]}`);
    // The last page holds the oldest.
    const pages = Math.ceil(total / 8);
    for (let p = 1; p < pages; p += 1) await page.locator("#consignments-pager").getByRole("button", { name: "Next page" }).click();
    await expectText(page.locator("#consignments-pager"), `Showing ${(pages - 1) * 8 + 1}–${total} of ${total} consignments`);
    const last = await firsts();
    if (last.at(-1) !== "Tea") throw new Error(`the oldest (Tea) is not last: ${last}`);
    // Sorting by weight: heaviest first, then lightest first.
    await page.getByRole("button", { name: "Weight" }).click();
    if ((await firsts())[0] !== "Grand pianos") throw new Error("sorting by weight does not put the heaviest first");
    await page.getByRole("button", { name: "Weight" }).click();
    const lightest = consignments.reduce((a, b) => (b.weight < a.weight ? b : a)).description;
    if ((await firsts())[0] !== lightest) throw new Error(`lightest first: ${(await firsts())[0]}, not ${lightest}`);
    const sorted = await page.locator('#consignments th[aria-sort="ascending"]').innerText();
    if (!sorted.includes("Weight")) throw new Error("the sorted column is not marked");
    await page.getByRole("button", { name: "Shipped" }).click();
  });

  await step("other-users-vessel-appeared", async () => {
    const row = vesselRow("Bob's Barge");
    await row.waitFor({ timeout: Math.max(WAIT, bobsVesselAt + 30_000 - Date.now()) });
    await expectText(row, "Bob");
    await expectText(row, "0 of 1,000 containers");
    if (!(await page.evaluate(() => window.__notReloaded))) throw new Error("the page reloaded");
  });

  await step("phone-header-and-menu", async () => {
    await page.setViewportSize(PHONE);
    const header = await page.locator("header.top").boundingBox();
    if (header.height > 64) throw new Error(`the phone header is ${header.height}px tall: not one line`);
    if (await page.getByRole("button", { name: "Log out" }).isVisible()) throw new Error("the phone header shows the whole menu");
    await page.getByRole("button", { name: "Menu" }).click();
    await page.getByRole("button", { name: "Log out" }).waitFor();
    if ((await page.getByRole("button", { name: "Menu" }).getAttribute("aria-expanded")) !== "true") throw new Error("the menu button does not say it is open");
    await page.keyboard.press("Escape");
    await page.getByRole("button", { name: "Log out" }).waitFor({ state: "hidden" });
    // Without column headings, a list sorts the cards.
    await page.getByLabel("Sort by").selectOption({ label: "Heaviest first" });
    await expectText(page.locator("#consignments tbody tr").first(), "Grand pianos");
    await page.getByLabel("Sort by").selectOption({ label: "Newest first" });
    // A dialog fills the phone screen and still fits it.
    await page.getByRole("button", { name: "Ship a consignment" }).click();
    await noSidewaysScroll("ship dialog");
    await page.keyboard.press("Escape");
    await page.setViewportSize(DESKTOP);
  });

  await step("playground-query", async () => {
    await page.getByRole("link", { name: "API playground" }).click();
    await page.locator(".graphiql-container").waitFor();
    await page.locator(".graphiql-query-editor .CodeMirror").waitFor();
    // The web UI's token is in the headers editor.
    const headers = await page.evaluate(() =>
      [...document.querySelectorAll(".graphiql-editor-tool .CodeMirror")].map((editor) => editor.CodeMirror.getValue()).join("\n"),
    );
    if (!headers.includes("Bearer ")) throw new Error(`the headers editor does not hold the token: ${headers}`);
    await runInPlayground("query Mine { me { name vessels: consignments(first: 1) { vessel { name } } } }");
    await expectText(page.locator(".graphiql-response"), /"name": "Ever Given"/);
    await page.getByRole("link", { name: "Back to Shippy" }).first().waitFor();
  });

  await step("playground-subscription", async () => {
    await runInPlayground("subscription Watch { consignmentUpdated { description status } }");
    // The subscription starts a moment after the click: move assigned consignments along one at a time
    // until the change of one shows up in the response pane.
    const deadline = Date.now() + WAIT;
    for (;;) {
      const { consignments } = await api("{ consignments { id description status } }");
      const next = consignments.find((c) => c.status === "ASSIGNED");
      if (next) {
        await api("mutation($id: ID!) { updateConsignmentStatus(id: $id, status: IN_TRANSIT) { status } }", { id: next.id });
        const shown = page.locator(".graphiql-response").filter({ hasText: next.description }).filter({ hasText: '"IN_TRANSIT"' });
        if (await shown.waitFor({ timeout: 3000 }).then(() => true, () => false)) break;
      }
      if (Date.now() > deadline) throw new Error(`the subscription never showed a change; consignments: ${JSON.stringify(consignments)}`);
      await page.waitForTimeout(250);
    }
  });

  await step("playground-on-a-phone", async () => {
    await page.setViewportSize(PHONE);
    await page.getByRole("heading", { name: "The API playground works best on a wider screen" }).waitFor();
    await noSidewaysScroll("playground");
    if (await page.locator(".graphiql-container").isVisible()) throw new Error("GraphiQL is squeezed onto the phone screen");
    // It can be opened all the same.
    await page.getByRole("button", { name: "Open the playground anyway" }).click();
    await page.locator(".graphiql-container").waitFor();
    // Stacked: the editor above the response, each the screen's width.
    const [editor, response] = await Promise.all([page.locator(".graphiql-editors").boundingBox(), page.locator(".graphiql-response").boundingBox()]);
    if (!(response.y >= editor.y + editor.height - 1)) throw new Error(`on a phone the response is beside the editor, not below it: ${JSON.stringify({ editor, response })}`);
    await page.screenshot({ path: join(artifacts, "00-playground-anyway-phone.png") });
    await page.setViewportSize(DESKTOP);
  });

  await step("back-to-the-app", async () => {
    await page.getByRole("link", { name: "Back to Shippy" }).first().click();
    await expectText(page.locator("#whoami"), "Signed in as Ada");
    await expectText(page.locator("#consignments-pager"), /^Previous page\s*Showing 1–8 of \d+ consignments/);
    await expectText(vesselRow("Nordic Star"), "2 of 2 containers");
  });

  await step("session-ended", async () => {
    // A token that no longer verifies (expired, or the server's key changed): back to the log-in form, saying why.
    await page.evaluate(() => sessionStorage.setItem("shippy.token", "not.a.valid-token"));
    await page.reload();
    await expectText(page.locator("#status"), "Your session has ended. Log in again.");
    await page.getByRole("heading", { name: "Welcome" }).waitFor();
  }, [401]);

  await browser.close();
  writeFileSync(join(artifacts, "accessibility.json"), JSON.stringify(accessibility, null, 2));
  console.log(`walkthrough: ${steps} steps passed; screenshots (1280x800 and 390x844) and accessibility.json in ${artifacts}`);
} catch (error) {
  await page.screenshot({ path: join(artifacts, "failure.png"), fullPage: true }).catch(() => {});
  writeFileSync(join(artifacts, "accessibility.json"), JSON.stringify(accessibility, null, 2));
  console.log("FAILED");
  console.error(error.stack ?? String(error));
  if (problems.length) console.error(problems.join("\n"));
  await browser.close();
  process.exit(1);
}

/** Fills in the open "Ship a consignment" dialog (its first container) and returns it. */
async function fillShipDialog(description, weight, customerId, origin) {
  const dialog = page.getByRole("dialog", { name: "Ship a consignment" });
  await dialog.getByLabel("Description").fill(description);
  await dialog.getByLabel("Total weight").fill(weight);
  await dialog.getByLabel("Customer id").first().fill(customerId);
  await dialog.getByLabel("Origin").first().fill(origin);
  return dialog;
}

/** Puts `query` in the playground's editor and runs it. */
async function runInPlayground(query) {
  await page.evaluate((text) => document.querySelector(".graphiql-query-editor .CodeMirror").CodeMirror.setValue(text), query);
  await page.locator(".graphiql-execute-button").click();
}
