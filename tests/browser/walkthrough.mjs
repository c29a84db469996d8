// The whole Shippy walkthrough in a real browser (Debian's chromium through playwright-core):
// register (with a refused password first), log out and back in (with a wrong password first), add a
// vessel, ship a consignment and watch its status change live, read the activity log, hit the rate
// limit, check the phone layout, then run a query and a subscription in the GraphiQL playground.
// Saves a screenshot of each step. Run by tests/browser.rs:
//   node tests/browser/walkthrough.mjs <router base URL> <artifacts dir>
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [base, artifacts = "target/browser-artifacts"] = process.argv.slice(2);
if (!base) {
  console.error("usage: node walkthrough.mjs <router base URL, e.g. http://127.0.0.1:4000> [artifacts dir]");
  process.exit(2);
}
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
mkdirSync(artifacts, { recursive: true });

/** Generous: a loaded 2-core machine runs a debug build of every service next to the browser. */
const WAIT = 20_000;
let shots = 0;
let steps = 0;

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
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
await context.route("**/*", (route) => {
  const url = route.request().url();
  if (url.startsWith(origin) || url.startsWith("data:")) return route.continue();
  problems.push(`request outside the router: ${url}`);
  return route.abort();
});

async function shot(name) {
  shots += 1;
  await page.screenshot({ path: join(artifacts, `${String(shots).padStart(2, "0")}-${name}.png`), fullPage: true });
}

async function step(name, body, statuses = []) {
  process.stdout.write(`step: ${name} ... `);
  for (const status of statuses) expectedStatuses.add(status);
  await body();
  expectedStatuses.clear();
  if (problems.length) throw new Error(`the page reported problems:\n${problems.join("\n")}`);
  await shot(name);
  steps += 1;
  console.log("ok");
}

async function expectText(locator, pattern) {
  await locator.filter({ hasText: pattern }).first().waitFor({ state: "visible" });
}

/** Calls the API as the logged-in user from outside the page (to change things the page must notice by itself). */
async function api(query, variables = {}) {
  const token = await page.evaluate(() => sessionStorage.getItem("shippy.token"));
  const response = await fetch(`${base}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors) throw new Error(`${query}: ${JSON.stringify(body.errors)}`);
  return body.data;
}

const email = `ada-${Date.now()}@example.com`;
const password = "correct horse battery";

try {
  await step("home", async () => {
    await page.goto(`${base}/`);
    await page.getByRole("heading", { name: "Welcome" }).waitFor();
  });

  await step("register-refused", async () => {
    const form = page.locator("#register");
    await form.getByLabel("Name").fill("Ada");
    await form.getByLabel("Company").fill("Acme");
    await form.getByLabel("Email").fill(email);
    await form.getByLabel("Password").fill("short");
    await form.getByRole("button", { name: "Register" }).click();
    // The API's BAD_USER_INPUT, next to the field it names, which gets the focus.
    await expectText(form.locator("#register-password + .field-error"), /Password .*8/);
    if ((await page.evaluate(() => document.activeElement?.id)) !== "register-password") {
      throw new Error("the refused field did not get the focus");
    }
  });

  await step("registered", async () => {
    const form = page.locator("#register");
    await form.getByLabel("Password").fill(password);
    await form.getByRole("button", { name: "Register" }).click();
    await expectText(page.locator("#whoami"), "Signed in as Ada");
  });

  await step("login-refused", async () => {
    await page.getByRole("button", { name: "Log out" }).click();
    const form = page.locator("#login");
    await form.getByLabel("Email").fill(email);
    await form.getByLabel("Password").fill("wrong password");
    await form.getByRole("button", { name: "Log in" }).click();
    await expectText(page.locator("#login-error"), "do not match an account");
  });

  await step("logged-in", async () => {
    const form = page.locator("#login");
    await form.getByLabel("Password").fill(password);
    // Keyboard only: Enter submits.
    await form.getByLabel("Password").press("Enter");
    await expectText(page.locator("#whoami"), "Signed in as Ada");
  });

  await step("vessel-added", async () => {
    const form = page.locator("#create-vessel");
    await form.getByLabel("Name").fill("Ever Given");
    await form.getByLabel("Capacity").fill("500");
    await form.getByLabel("Maximum cargo weight").fill("20000");
    await form.getByRole("button", { name: "Add vessel" }).click();
    await expectText(page.locator("#vessels tbody tr"), /Ever Given.*Ada \(you\).*500 of 500/);
  });

  await step("consignment-assigned-live", async () => {
    const form = page.locator("#create-consignment");
    await form.getByLabel("Description").fill("Tea");
    await form.getByLabel("Total weight").fill("800");
    await form.getByLabel("Customer id").fill("c1");
    await form.getByLabel("Origin").fill("Rotterdam");
    await form.getByRole("button", { name: "Add a container" }).click();
    await form.getByLabel("Customer id").nth(1).fill("c2");
    await form.getByLabel("Origin").nth(1).fill("Hamburg");
    await form.getByRole("button", { name: "Ship it" }).click();
    const row = page.locator("#consignments tbody tr", { hasText: "Tea" });
    await row.waitFor();
    // PENDING when created; the vessel subgraph books it a moment later and the subscription says so.
    await row.locator('[data-status="ASSIGNED"]').waitFor();
    await expectText(row, "Ever Given");
  });

  await step("status-changed-live", async () => {
    // Someone else (here: this script, through the API) moves it along; the page is told, not reloaded.
    await page.evaluate(() => (window.__notReloaded = true));
    const { consignments } = await api("{ consignments { id description } }");
    const tea = consignments.find((c) => c.description === "Tea");
    await api("mutation($id: ID!) { updateConsignmentStatus(id: $id, status: IN_TRANSIT) { status } }", { id: tea.id });
    const row = page.locator("#consignments tbody tr", { hasText: "Tea" });
    await row.locator('[data-status="IN_TRANSIT"]').waitFor();
    await expectText(page.locator("#live"), "Tea is now in transit");
    if (!(await page.evaluate(() => window.__notReloaded))) throw new Error("the page reloaded");
    // The vessel's owner moves it on from the page.
    await row.getByRole("button", { name: /Mark delivered/ }).click();
    await row.locator('[data-status="DELIVERED"]').waitFor();
  });

  await step("activity", async () => {
    await expectText(page.locator("#activity li"), /./);
    const entries = await page.locator("#activity li").count();
    if (entries < 3) throw new Error(`expected my registration, vessel and consignment in the activity log, saw ${entries} entries`);
  });

  await step("rate-limited", async () => {
    // createConsignment allows 10 a minute per user: use up the rest, then the page must say when to retry.
    const { consignments } = await api("{ consignments { id } }");
    for (let i = consignments.length; i < 10; i += 1) {
      await api(`mutation { createConsignment(input: {description: "Filler ${i}", weight: 10, containers: [{customerId: "c", origin: "o"}]}) { id } }`);
    }
    const form = page.locator("#create-consignment");
    await form.getByLabel("Description").fill("One too many");
    await form.getByLabel("Total weight").fill("1");
    await form.getByLabel("Customer id").fill("c3");
    await form.getByLabel("Origin").fill("Antwerp");
    await form.getByRole("button", { name: "Ship it" }).click();
    await expectText(page.locator("#create-consignment-error"), /Too many attempts\. Try again in \d+ seconds?\./);
    if (!(await form.locator('button[type="submit"]').isDisabled())) throw new Error("the rate-limited button stayed enabled");
  }, [429]);

  await step("phone-width", async () => {
    await page.setViewportSize({ width: 375, height: 800 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (overflow > 1) {
      const wide = await page.evaluate(() =>
        [...document.querySelectorAll("body *")]
          .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1 && !el.parentElement.closest(".table-wrap"))
          .slice(0, 5)
          .map((el) => `${el.tagName.toLowerCase()}#${el.id}.${el.className} (${Math.round(el.getBoundingClientRect().right)}px)`),
      );
      throw new Error(`the page is ${overflow}px wider than a phone screen: ${wide.join(", ")}`);
    }
  });

  await step("playground-query", async () => {
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.getByRole("link", { name: "GraphQL playground" }).click();
    await page.locator(".graphiql-container").waitFor();
    await page.locator(".graphiql-query-editor .CodeMirror").waitFor();
    // The web UI's token is in the headers editor.
    const headers = await page.evaluate(() =>
      [...document.querySelectorAll(".graphiql-editor-tool .CodeMirror")].map((editor) => editor.CodeMirror.getValue()).join("\n"),
    );
    if (!headers.includes("Bearer ")) throw new Error(`the headers editor does not hold the token: ${headers}`);
    await runInPlayground("query Mine { me { name vessels: consignments(first: 1) { vessel { name } } } }");
    await expectText(page.locator(".graphiql-response"), /"name": "Ever Given"/);
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

  await step("session-ended", async () => {
    // A token that no longer verifies (expired, or the server's key changed): back to the log-in form, saying why.
    await page.goto(`${base}/`);
    // Signed in again from the tab's token first (so that check cannot overwrite the bad token).
    await expectText(page.locator("#whoami"), "Signed in as Ada");
    await page.evaluate(() => sessionStorage.setItem("shippy.token", "not.a.valid-token"));
    await page.reload();
    await expectText(page.locator("#status"), "Your session has ended. Log in again.");
    await page.getByRole("heading", { name: "Welcome" }).waitFor();
  }, [401]);

  await browser.close();
  console.log(`walkthrough: ${steps} steps passed; screenshots in ${artifacts}`);
} catch (error) {
  await page.screenshot({ path: join(artifacts, "failure.png"), fullPage: true }).catch(() => {});
  console.log("FAILED");
  console.error(error.stack ?? String(error));
  if (problems.length) console.error(problems.join("\n"));
  await browser.close();
  process.exit(1);
}

/** Puts `query` in the playground's editor and runs it. */
async function runInPlayground(query) {
  await page.evaluate((text) => document.querySelector(".graphiql-query-editor .CodeMirror").CodeMirror.setValue(text), query);
  await page.locator(".graphiql-execute-button").click();
}
