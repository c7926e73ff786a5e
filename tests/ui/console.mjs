// End-to-end checks of the audit console in Debian's headless Chromium, driven by
// playwright-core. Started by tests/api/ui.rs, which runs the broker, seeds its trail and
// passes what it did in EXPECT. Exits non-zero at the first failed check.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

const env = (k) => {
  const v = process.env[k];
  if (v === undefined) throw new Error(`${k} is not set`);
  return v;
};
const BROKER = env("BROKER_URL");
const IDP = env("IDP_URL");
const AUDITOR = env("AUDITOR_JWT");
const NON_AUDITOR = env("NON_AUDITOR_JWT");
const LEAKED = env("LEAKED_TOKEN");
const EXPECT = JSON.parse(env("EXPECT"));
const ACCESS = JSON.parse(env("ACCESS"));
const SHOTS = process.env.SCREENSHOT_DIR || "";
if (SHOTS) mkdirSync(SHOTS, { recursive: true });

let failures = 0;
async function step(name, fn) {
  try {
    await fn();
    console.log(`ok - ${name}`);
  } catch (e) {
    failures += 1;
    console.log(`not ok - ${name}\n${e.stack || e}`);
    throw e;
  }
}

const browser = await chromium.launch({
  executablePath: env("CHROMIUM"),
  headless: true,
  args: ["--no-sandbox"],
});

// Every request a page makes, and every console error (a CSP violation is one).
function watch(page, allowed) {
  const seen = { foreign: [], errors: [] };
  page.on("request", (r) => {
    const url = new URL(r.url());
    if (url.protocol === "blob:" || url.protocol === "data:") return;
    if (!allowed.includes(url.origin)) seen.foreign.push(r.url());
  });
  page.on("console", (m) => {
    if (m.type() === "error" && !/status of 40[13]/.test(m.text())) seen.errors.push(m.text());
  });
  page.on("pageerror", (e) => seen.errors.push(String(e)));
  return seen;
}

async function shot(page, name, fullPage = false) {
  if (SHOTS) await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage });
}

async function signInWithToken(page, token) {
  await page.goto(`${BROKER}/ui/`);
  await page.locator("#token-input").waitFor();
  await page.locator("#token-input").fill(token);
  await page.getByRole("button", { name: "Sign in with token" }).click();
}

async function rowCount(page) {
  return page.locator("#events tbody tr:not(.empty)").count();
}

async function columnTexts(page, index) {
  return page.locator(`#events tbody tr td:nth-child(${index})`).allTextContents();
}

async function waitForSummary(page, pattern) {
  await page.locator("#result-summary").filter({ hasText: pattern }).waitFor({ timeout: 10000 });
}

const issuedTotal = Object.values(EXPECT.issued).reduce((a, b) => a + b, 0);

// Outcomes that record access to the trail: every read adds one, so they grow while the
// console reads. EXPECT.rows counts the other events (the decisions).
const READS = new Set(["audit_read", "signed_in"]);

// The table's rows as [event id, outcome].
async function tableRows(page) {
  return page.locator("#events tbody tr").evaluateAll((rs) => rs.map((r) => [r.dataset.id, r.cells[1].textContent]));
}

// The summary of the first page at `size` rows a page, with no filter but the default range.
function firstPage(size) {
  const n = Math.min(size, EXPECT.rows);
  return new RegExp(`^Showing events 1–${n}(?: of ${n})?, newest first\\.$`);
}

// Holds back the answers to the events requests `held` picks (by their query) while
// `act(asked, release)` runs: `asked` resolves when the first such request is sent,
// `release` lets them all through. Returns once the console has parsed every held answer:
// Response.json is wrapped to know that, and the console's own code runs in the microtasks
// right after, so by the next poll it has drawn each answer or dropped it.
async function withHeldAnswers(page, held, act) {
  const matches = (url) => url.pathname === "/v1/audit/events" && held(url.searchParams);
  let release;
  const released = new Promise((resolve) => { release = resolve; });
  const heldUrls = [];
  const handler = async (route) => {
    heldUrls.push(route.request().url());
    await released;
    await route.continue();
  };
  await page.route(matches, handler);
  await page.evaluate(() => {
    window.parsedAnswers = [];
    window.originalJson = Response.prototype.json;
    Response.prototype.json = async function () {
      const value = await window.originalJson.call(this);
      window.parsedAnswers.push(this.url);
      return value;
    };
  });
  try {
    const asked = page.waitForRequest((r) => matches(new URL(r.url())));
    await act(asked, release);
    assert.ok(heldUrls.length > 0, "an answer was held back");
    await page.waitForFunction((urls) => urls.every((u) => window.parsedAnswers.includes(u)), heldUrls);
  } finally {
    release();
    await page.unroute(matches, handler);
    await page.evaluate(() => { Response.prototype.json = window.originalJson; });
  }
}

try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, acceptDownloads: true });
  const page = await context.newPage();
  const seen = watch(page, [BROKER]);

  await step("the sign-in page offers a token and the identity provider", async () => {
    await page.goto(`${BROKER}/ui/`);
    await page.locator("#sign-in").waitFor();
    assert.equal(await page.title(), "Audit console · rds-token-broker");
    assert.ok(await page.getByRole("button", { name: "Sign in with your identity provider" }).isVisible());
    assert.ok(await page.getByLabel("Bearer token (JWT)").isVisible());
    await shot(page, "sign-in");
  });

  await step("an invalid token is refused with the broker's reason", async () => {
    await signInWithToken(page, "not-a-jwt");
    await page.locator("#sign-in-error").filter({ hasText: "did not accept" }).waitFor();
    assert.equal(await page.locator("#console").isVisible(), false);
  });

  await step("a caller who is not an auditor sees no data", async () => {
    await signInWithToken(page, NON_AUDITOR);
    await page.locator("#sign-in-error").filter({ hasText: "not an auditor" }).waitFor();
    assert.equal(await page.locator("#console").isVisible(), false);
    assert.equal(await rowCount(page), 0);
    assert.equal(await page.evaluate(() => sessionStorage.length), 0, "a refused token is not kept");
  });

  await step("an auditor signs in with the keyboard alone", async () => {
    await page.goto(`${BROKER}/ui/`);
    await page.locator("#token-input").waitFor();
    await page.locator("#token-input").focus();
    await page.keyboard.insertText(AUDITOR);
    await page.keyboard.press("Tab"); // past the hint to the submit button
    const focused = await page.evaluate(() => document.activeElement.textContent);
    assert.equal(focused, "Sign in with token");
    await page.keyboard.press("Enter");
    await page.locator("#console").waitFor();
    assert.match(await page.locator("#whoami").textContent(), /carol@corp\.example/);
    await waitForSummary(page, /Showing events 1–/);
    assert.equal(await rowCount(page), Math.min(25, EXPECT.rows));
  });

  await step("the chain badge says the trail verifies", async () => {
    const badge = page.locator("#chain-badge");
    await badge.filter({ hasText: "Chain intact" }).waitFor();
    const text = await badge.textContent();
    const n = Number(text.replace(/[^0-9]/g, ""));
    assert.ok(n >= EXPECT.rows, `${text}: at least ${EXPECT.rows} events`);
    assert.match(await badge.getAttribute("class"), /\bok\b/);
    await shot(page, "events");
  });

  await step("filters narrow the table to one target", async () => {
    await page.getByLabel("Target").fill("billing-db");
    await page.getByRole("button", { name: "Apply filters" }).click();
    await waitForSummary(page, new RegExp(`of ${EXPECT.billing_rows},`));
    const targets = await columnTexts(page, 5);
    assert.equal(targets.length, EXPECT.billing_rows);
    assert.ok(targets.every((t) => t === "billing-db"), targets.join());
  });

  await step("a kind filter keeps the target's kind and drops the others", async () => {
    await page.getByLabel("Kind").selectOption("dsql");
    await page.getByRole("button", { name: "Apply filters" }).click();
    await waitForSummary(page, /^No events match these filters\.$/);
    await page.getByLabel("Kind").selectOption("rds");
    await page.getByRole("button", { name: "Apply filters" }).click();
    await waitForSummary(page, new RegExp(`of ${EXPECT.billing_rows},`));
    assert.equal((await columnTexts(page, 5)).length, EXPECT.billing_rows);
    await page.getByLabel("Kind").selectOption("");
  });

  await step("an outcome filter shows only denied requests", async () => {
    await page.getByLabel("Target").fill("");
    await page.getByLabel("Outcome").selectOption("denied");
    await page.getByRole("button", { name: "Apply filters" }).click();
    await waitForSummary(page, new RegExp(`of ${EXPECT.denied_rows},`));
    const outcomes = await columnTexts(page, 2);
    assert.ok(outcomes.length > 0 && outcomes.every((o) => o === "denied"), outcomes.join());
  });

  await step("pagination walks the whole trail and back", async () => {
    // The cleared table must look different from the denied-only one, or the wait below
    // could be satisfied by the old state.
    assert.notEqual(EXPECT.denied_rows, Math.min(25, EXPECT.rows));
    await page.getByRole("button", { name: "Clear" }).click();
    await waitForSummary(page, firstPage(25));
    await page.getByLabel("Rows per page").selectOption("10");
    await waitForSummary(page, firstPage(10));
    const first = await tableRows(page);
    assert.equal(first.length, 10);
    const ids = new Set(first.map(([id]) => id));
    const decisions = new Set(first.filter(([, o]) => !READS.has(o)).map(([id]) => id));
    let pages = 1;
    while (await page.getByRole("button", { name: "Next page" }).isEnabled()) {
      await page.getByRole("button", { name: "Next page" }).click();
      pages += 1;
      await page.locator("#page-label").filter({ hasText: `Page ${pages}` }).waitFor();
      for (const [id, outcome] of await tableRows(page)) {
        assert.ok(!ids.has(id), `event ${id} shown twice`);
        ids.add(id);
        if (!READS.has(outcome)) decisions.add(id);
      }
    }
    assert.equal(decisions.size, EXPECT.rows, "every decision on exactly one page");
    assert.equal(pages, Math.ceil(ids.size / 10));
    while (await page.getByRole("button", { name: "Previous page" }).isEnabled()) {
      await page.getByRole("button", { name: "Previous page" }).click();
      await page.locator("#page-label").filter({ hasText: `Page ${--pages}` }).waitFor();
    }
    // Page 1 again: the newest events, which are now the reads made while paging, then
    // what page 1 showed before.
    const again = await tableRows(page);
    const firstIds = first.map(([id]) => id);
    const fresh = again.findIndex(([id]) => id === firstIds[0]);
    assert.ok(fresh > 0, "paging was recorded");
    assert.ok(again.slice(0, fresh).every(([, o]) => o === "audit_read"), JSON.stringify(again));
    assert.deepEqual(again.slice(fresh).map(([id]) => id), firstIds.slice(0, 10 - fresh));
  });

  await step("an older answer arriving late does not replace a newer one", async () => {
    // "50 per page" is asked first and answered last, after "25 per page" is on screen.
    assert.ok(EXPECT.rows > 25, "enough events for 25 and 50 rows to differ");
    await withHeldAnswers(page, (q) => q.get("limit") === "50", async (asked, release) => {
      await page.getByLabel("Rows per page").selectOption("50");
      await asked;
      await page.getByLabel("Rows per page").selectOption("25");
      await waitForSummary(page, firstPage(25));
      release();
    });
    assert.match(await page.locator("#result-summary").textContent(), firstPage(25));
    assert.equal(await rowCount(page), 25);
    await page.getByLabel("Rows per page").selectOption("10");
    await waitForSummary(page, firstPage(10));
  });

  await step("the detail view opens from the keyboard and closes with Escape", async () => {
    const button = page.locator("#events tbody tr").first().locator("button");
    await button.focus();
    await page.keyboard.press("Enter");
    const dialog = page.getByRole("dialog");
    await dialog.waitFor();
    const id = await page.locator("#events tbody tr").first().getAttribute("data-id");
    assert.equal(await dialog.locator('dd[data-field="id"]').textContent(), id);
    assert.ok(await dialog.locator('dd[data-field="hash"]').count());
    // This broker signs no checkpoints: the detail says so, and offers no receipt.
    await page.locator("#detail-receipt", { hasText: "not yet checkpointed" }).waitFor();
    assert.equal(await page.locator("#detail-receipt-download").isHidden(), true);
    await shot(page, "detail");
    await page.keyboard.press("Escape");
    await dialog.waitFor({ state: "hidden" });
    assert.equal(await page.evaluate(() => document.activeElement.closest("tr")?.dataset.id), id, "focus returns to the row");
  });

  await step("CSV and NDJSON downloads hold every event", async () => {
    for (const [format, header] of [["csv", 1], ["ndjson", 0]]) {
      const [download] = await Promise.all([
        page.waitForEvent("download"),
        page.getByRole("button", { name: `Download ${format.toUpperCase()}` }).click(),
      ]);
      assert.match(download.suggestedFilename(), new RegExp(`^audit-events-.*\\.${format}$`));
      const text = readFileSync(await download.path(), "utf8");
      const lines = text.split("\n").filter((l) => l.length > 0);
      if (format === "csv") assert.match(lines[0], /^id,time,/);
      else assert.ok(lines.every((l) => typeof JSON.parse(l).hash === "string"));
      // id,time,request_id,outcome,reason,...: no comma before the outcome.
      const outcomes = lines.slice(header).map((l) => (format === "csv" ? l.split(",")[3] : JSON.parse(l).outcome));
      assert.equal(outcomes.filter((o) => !READS.has(o)).length, EXPECT.rows, `${format} lines`);
      // Newest first: the export's own read, recorded before it streams.
      assert.equal(outcomes[0], "audit_read", `${format}: the download is recorded`);
      assert.match(lines[header], new RegExp(`format=${format}`));
    }
  });

  await step("a leaked token is traced to its issuance", async () => {
    await page.getByLabel("Token lookup").fill(LEAKED);
    await page.getByRole("button", { name: "Apply filters" }).click();
    await waitForSummary(page, /Token lookup/);
    assert.equal(await rowCount(page), EXPECT.leaked_events);
    await page.locator("#events tbody tr").first().locator("button").click();
    const sha = createHash("sha256").update(LEAKED).digest("hex");
    assert.equal(await page.locator('dd[data-field="token_sha256"]').textContent(), sha);
    await page.getByRole("button", { name: "Close" }).click();
    assert.equal(await page.getByLabel("Token lookup").inputValue(), "", "the token is not left on screen");
  });

  await step("charts show the right totals", async () => {
    await page.getByRole("button", { name: "Clear" }).click();
    await waitForSummary(page, firstPage(10));
    await page.getByRole("tab", { name: "Charts" }).click();
    const issued = page.locator("#chart-issued");
    await issued.locator(".legend").waitFor();
    assert.match(await issued.locator("figcaption").textContent(), new RegExp(`${issuedTotal} tokens issued`));
    for (const [target, total] of Object.entries(EXPECT.issued)) {
      assert.equal(await issued.locator(`.legend li[data-series="${target}"]`).getAttribute("data-total"), String(total));
      const marks = await issued.locator(`g[data-series="${target}"] .mark`).evaluateAll(
        (ms) => ms.reduce((a, m) => a + Number(m.dataset.value), 0));
      assert.equal(marks, total, `${target}: the plotted points add up`);
    }
    // Every seeded target is an RDS one: the kinds chart has one series with every token.
    const kinds = page.locator("#chart-kinds");
    assert.equal(await kinds.locator(`.legend li[data-series="rds"]`).getAttribute("data-total"), String(issuedTotal));
    assert.equal(await kinds.locator(".legend li").count(), 1);
    const refused = page.locator("#chart-refused");
    for (const o of ["denied", "forbidden", "throttled"]) {
      assert.equal(await refused.locator(`.legend li[data-series="${o}"]`).getAttribute("data-total"), String(EXPECT[o]), o);
      const bars = await refused.locator(`rect.mark[data-series="${o}"]`).evaluateAll(
        (ms) => ms.reduce((a, m) => a + Number(m.dataset.value), 0));
      assert.equal(bars, EXPECT[o], `${o}: the stacked bars add up`);
    }
    const top = page.locator("#chart-principals rect.mark").first();
    assert.match(await top.getAttribute("data-series"), new RegExp(`^${EXPECT.top_subject} `));
    assert.equal(await top.getAttribute("data-value"), String(EXPECT.top_issued));
    const budget = page.locator('#chart-budgets rect.mark[data-series="billing-db"]');
    assert.ok(Number(await budget.getAttribute("data-value")) >= 1);
    assert.equal(await page.locator("#chart-budgets line.limit").first().getAttribute("data-limit"), String(EXPECT.billing_budget));
    await shot(page, "charts", true);
  });

  await step("arrow keys move between the tabs", async () => {
    await page.getByRole("tab", { name: "Charts" }).focus();
    await page.keyboard.press("ArrowLeft");
    assert.equal(await page.getByRole("tab", { name: "Events" }).getAttribute("aria-selected"), "true");
    assert.ok(await page.locator("#panel-events").isVisible());
  });

  await step("usable at phone width without sideways scrolling", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);
    assert.ok(await page.getByRole("button", { name: "Apply filters" }).isVisible());
    await shot(page, "phone-events");
    await page.getByRole("tab", { name: "Charts" }).click();
    await page.locator("#chart-issued .legend").waitFor();
    const overflowCharts = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflowCharts <= 0, `charts are ${overflowCharts}px wider than the screen`);
    await shot(page, "phone-charts");
    await page.setViewportSize({ width: 1280, height: 860 });
  });

  await step("signing out forgets the token", async () => {
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.locator("#sign-in").waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    await page.reload();
    await page.locator("#sign-in").waitFor();
  });

  await step("no request left the broker's origin and no script or style was blocked", async () => {
    assert.deepEqual(seen.foreign, []);
    assert.deepEqual(seen.errors, []);
  });
  await context.close();

  // Access requests: callers ask over the API; the auditor (also their approver) reviews
  // them in the console, by mouse and by keyboard; the approved requester is then served.
  const access = async (who, path, body) => {
    const res = await fetch(`${BROKER}${path}`, {
      method: body ? "POST" : "GET",
      headers: { Authorization: `Bearer ${ACCESS.jwts[who]}`, "Content-Type": "application/json" },
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: res.status, body: await res.json() };
  };
  const ask = (who, dbUser, reason) => access(who, "/v1/access-requests", { target: ACCESS.target, db_user: dbUser, duration_minutes: 30, reason });
  const tokenFor = (who, dbUser) => access(who, "/v1/tokens", { target: ACCESS.target, db_user: dbUser });

  await step("access requests: shown for review, approved in the console, then the requester's token works", async () => {
    assert.equal((await tokenFor("ann", ACCESS.db_user)).status, 403);
    assert.equal((await ask("ann", ACCESS.db_user, "INC-7: a stuck order")).status, 201);
    assert.equal((await ask("bob", ACCESS.db_user, "curiosity")).status, 201);
    const bg = await ask("olga", ACCESS.break_glass_user, "prod is down");
    assert.equal(bg.status, 201);
    assert.equal(bg.body.state, "approved");

    const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    const p = await ctx.newPage();
    const s = watch(p, [BROKER]);
    await signInWithToken(p, AUDITOR);
    await p.locator("#result-summary").filter({ hasText: /Showing/ }).waitFor();
    // By keyboard: the arrow keys move along the tabs.
    await p.getByRole("tab", { name: "Events" }).focus();
    await p.keyboard.press("ArrowRight");
    await p.keyboard.press("ArrowRight");
    assert.equal(await p.getByRole("tab", { name: "Access requests" }).getAttribute("aria-selected"), "true");
    await p.locator("#access-summary").filter({ hasText: "2 waiting for your review, 1 active or pending" }).waitFor();
    assert.equal(await p.locator("#filters").isHidden(), true);
    await shot(p, "access-requests", true);

    const ann = p.locator("#access-review tbody tr", { hasText: "dev-ann" });
    await ann.getByRole("textbox", { name: /Comment on the request of dev-ann/ }).fill("ok for INC-7");
    await ann.getByRole("button", { name: /^Approve/ }).click();
    await p.locator("#access-summary").filter({ hasText: /^Approved the request of dev-ann for orders-db as dba: now approved/ }).waitFor();
    await p.locator("#access-open tbody tr", { hasText: "dev-ann" }).filter({ hasText: "carol@corp.example" }).waitFor();
    const served = await tokenFor("ann", ACCESS.db_user);
    assert.equal(served.status, 200);
    assert.ok(served.body.access_request_id);

    // Deny by keyboard alone: the comment, then Tab past Approve to Deny.
    const bob = p.locator("#access-review tbody tr", { hasText: "dev-bob" });
    await bob.getByRole("textbox").focus();
    await p.keyboard.type("not during the freeze");
    await p.keyboard.press("Tab");
    await p.keyboard.press("Tab");
    await p.keyboard.press("Enter");
    await p.locator("#access-past tbody tr", { hasText: "dev-bob" }).filter({ hasText: "not during the freeze" }).waitFor();
    assert.equal(await p.evaluate(() => document.activeElement.id), "panel-access");
    assert.match(await p.locator("#access-review tbody").textContent(), /Nothing waits for your review/);
    assert.equal((await tokenFor("bob", ACCESS.db_user)).status, 403);

    // Break-glass stands out, and can be revoked from here.
    assert.equal((await tokenFor("olga", ACCESS.break_glass_user)).status, 200);
    const olga = p.locator("#access-open tbody tr.break-glass", { hasText: "ops-olga" });
    await olga.getByText("Break-glass", { exact: true }).waitFor();
    await olga.getByRole("button", { name: /^Revoke/ }).click();
    await p.locator("#access-past tbody tr.break-glass", { hasText: "ops-olga" }).filter({ hasText: "revoked" }).waitFor();
    assert.equal((await tokenFor("olga", ACCESS.break_glass_user)).status, 403);
    assert.deepEqual(s.errors, []);
    await ctx.close();
  });

  // Accessibility: axe-core's WCAG 2.1 A/AA rules on each view. axe is injected, so this
  // context alone bypasses the page's CSP; the checks above ran under it.
  await step("axe finds no WCAG 2.1 A/AA violations in any view", async () => {
    const ctx = await browser.newContext({ bypassCSP: true, viewport: { width: 1280, height: 860 } });
    const p = await ctx.newPage();
    const audit = async (label) => {
      await p.addScriptTag({ content: AXE_SOURCE });
      const result = await p.evaluate(async () => {
        const r = await window.axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } });
        return r.violations.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`);
      });
      assert.deepEqual(result, [], label);
    };
    await p.goto(`${BROKER}/ui/`);
    await p.locator("#sign-in").waitFor();
    await audit("sign-in");
    await p.locator("#token-input").fill(AUDITOR);
    await p.getByRole("button", { name: "Sign in with token" }).click();
    await p.locator("#result-summary").filter({ hasText: /Showing/ }).waitFor();
    await p.locator("#chain-badge").filter({ hasText: "Chain intact" }).waitFor();
    await audit("events");
    await p.locator("#events tbody tr").first().locator("button").click();
    await p.getByRole("dialog").waitFor();
    await audit("detail");
    await p.keyboard.press("Escape");
    await p.getByRole("tab", { name: "Charts" }).click();
    await p.locator("#chart-issued .legend").waitFor();
    await audit("charts");
    // With a request waiting, so the review row's comment and buttons are checked too.
    assert.equal((await ask("cat", ACCESS.db_user, "INC-8")).status, 201);
    await p.getByRole("tab", { name: "Access requests" }).click();
    await p.locator("#access-review tbody tr", { hasText: "dev-cat" }).waitFor();
    await audit("access requests");
    await ctx.close();
  });

  await step("OIDC sign-in: authorization code with PKCE through the identity provider", async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    const p = await ctx.newPage();
    const s = watch(p, [BROKER, IDP]);
    const idpRequests = [];
    p.on("request", (r) => { if (r.url().startsWith(IDP)) idpRequests.push(r); });
    await p.goto(`${BROKER}/ui/`);
    await p.getByRole("button", { name: "Sign in with your identity provider" }).click();
    await p.locator("#console").waitFor();
    assert.match(await p.locator("#whoami").textContent(), new RegExp(EXPECT.oidc_subject.replace(".", "\\.")));
    await p.locator("#result-summary").filter({ hasText: /Showing events 1–/ }).waitFor();
    assert.equal(new URL(p.url()).search, "", "the code is gone from the address bar");
    // The browser only navigated to the provider's authorization endpoint; the code was
    // redeemed by the broker, so the page's connect-src stays 'self'.
    assert.equal(idpRequests.length, 1);
    const auth = new URL(idpRequests[0].url());
    assert.equal(auth.pathname, "/authorize");
    assert.equal(idpRequests[0].isNavigationRequest(), true);
    assert.equal(auth.searchParams.get("code_challenge_method"), "S256");
    assert.equal(auth.searchParams.get("redirect_uri"), `${BROKER}/ui/`);
    assert.deepEqual(s.errors, []);
    await ctx.close();
  });

  console.log("all console checks passed");
} catch (e) {
  if (!failures) console.log(`not ok - ${e.stack || e}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
