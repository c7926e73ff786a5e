// The API reference page (/docs) in Debian's headless Chromium, driven by playwright-core.
// Started by tests/api/reference.rs with the broker's address in BROKER_URL. Checks that
// the page renders every operation of /openapi.json, shows an operation's description
// when opened, and does so with no Content-Security-Policy violation, no error and no
// request beyond the broker. Exits non-zero at the first failed check.
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const env = (k) => {
  const v = process.env[k];
  if (v === undefined) throw new Error(`${k} is not set`);
  return v;
};
const BROKER = env("BROKER_URL");
const origin = new URL(BROKER).origin;

const browser = await chromium.launch({
  executablePath: env("CHROMIUM"),
  headless: true,
  args: ["--no-sandbox"],
});
try {
  const page = await browser.newPage();
  const foreign = [];
  const errors = [];
  const requests = [];
  page.on("request", (r) => {
    requests.push(r.url());
    const url = new URL(r.url());
    if (url.protocol === "data:" || url.protocol === "blob:") return;
    if (url.origin !== origin) foreign.push(r.url());
  });
  page.on("console", (m) => {
    if (m.type() === "error" || /Content Security Policy/.test(m.text())) errors.push(m.text());
  });
  page.on("pageerror", (e) => errors.push(String(e)));
  // CSP violations are also reported as events on the document: count them.
  await page.addInitScript(() => {
    window.__violations = [];
    document.addEventListener("securitypolicyviolation", (e) =>
      window.__violations.push(`${e.violatedDirective}: ${e.blockedURI}`),
    );
  });

  const doc = await (await fetch(`${BROKER}/openapi.json`)).json();
  const operations = Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.keys(item).map((method) => ({ path, method, op: item[method] })),
  );

  const res = await page.goto(`${BROKER}/docs`);
  assert.equal(res.status(), 200);
  assert.match(res.headers()["content-security-policy"], /style-src 'self';/);
  await page.locator(".opblock").first().waitFor();
  assert.equal(await page.locator(".opblock").count(), operations.length, "every operation is shown");
  for (const { path } of operations) {
    assert.ok(
      (await page.locator(`.opblock-summary-path[data-path="${path}"]`).count()) > 0,
      `${path} is shown`,
    );
  }
  assert.match(await page.locator(".info .title").innerText(), /rds-token-broker/);

  // Opening an operation shows its description and its responses.
  const tokens = operations.find((o) => o.op.operationId === "createToken");
  await page.locator('.opblock-summary-path[data-path="/v1/tokens"]').click();
  const first = tokens.op.description.split("\n")[0].split(" ").slice(0, 4).join(" ");
  await page.getByText(first).first().waitFor();
  await page.locator(".responses-table").first().waitFor();
  // Read only: no "Try it out".
  assert.equal(await page.getByRole("button", { name: "Try it out" }).count(), 0);

  if (process.env.SCREENSHOT_DIR) {
    await page.screenshot({ path: `${process.env.SCREENSHOT_DIR}/api-reference.png` });
  }
  const violations = await page.evaluate(() => window.__violations);
  assert.deepEqual(violations, [], "no Content-Security-Policy violation");
  assert.deepEqual(errors, [], "no console error");
  assert.deepEqual(foreign, [], "no request beyond the broker");
  for (const asset of ["/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css", "/docs/init.js", "/openapi.json"]) {
    assert.ok(requests.includes(`${origin}${asset}`), `${asset} was loaded`);
  }
  console.log(`all reference checks passed (${operations.length} operations)`);
} finally {
  await browser.close();
}
