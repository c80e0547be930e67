// Drives host-http's web console in Debian's Chromium (headless) and
// prints what it saw as one JSON object; host-http/tests/console.rs
// checks it. Environment: ATTEST_URL (https://localhost:PORT), ATTEST_TOKEN
// (a management SAS token), ATTEST_CHAINS (a JSON file: {"refused": PEM,
// "admitted": PEM}), ATTEST_SCREENSHOT (where to write the tree's PNG),
// CHROMIUM (default /usr/bin/chromium).
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const url = process.env.ATTEST_URL;
const token = process.env.ATTEST_TOKEN;
const chains = JSON.parse(readFileSync(process.env.ATTEST_CHAINS, "utf8"));
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  // As root in a container, and on a machine with no network but loopback.
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const report = { requests: [] };
try {
  // A person: the page asks for a token, then reads with it.
  const person = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1200, height: 900 } });
  const page = await person.newPage();
  page.on("request", (r) => report.requests.push(r.url()));
  page.on("pageerror", (e) => { report.pageErrors = (report.pageErrors || []).concat(String(e)); });
  const first = await page.goto(url + "/console/");
  report.unauthenticatedStatus = first.status();
  await page.waitForSelector("#signin:not(.hidden)");
  report.unauthenticatedShowsData = await page.locator("#app:not(.hidden)").count();
  await page.fill("#token", "SharedAccessSignature sr=localhost&sig=bogus&se=9999999999&skn=provisioningserviceowner");
  await page.click("#signin-form button");
  await page.waitForSelector("#signin-error:not(.hidden)");
  report.badTokenMessage = await page.textContent("#signin-error");
  await page.fill("#token", token);
  await page.click("#signin-form button");
  await page.waitForSelector("body[data-ready=true]");
  report.tree = await page.evaluate(() => {
    const walk = (li) => ({
      label: li.querySelector(":scope > .node").textContent,
      kind: li.className,
      children: [...li.querySelectorAll(":scope > ul > li")].map(walk),
    });
    return [...document.querySelectorAll("#tree > li")].map(walk);
  });
  await page.locator("#hierarchy").screenshot({ path: process.env.ATTEST_SCREENSHOT });
  report.rows = await page.locator("#entries tr").count();
  report.records = await page.locator("#records tr").count();
  await page.fill("#search", "line-b");
  report.searchedRows = await page.locator("#entries tr").allTextContents();
  await page.fill("#search", "device-5");
  report.searchedRecords = await page.locator("#records tr").allTextContents();
  await page.click("#records tr button");
  await page.waitForFunction(() => document.querySelector("#why-out").textContent.includes("device-5"));
  report.whyFromRecord = await page.textContent("#why-out");
  await page.fill("#search", "");
  await page.fill("#why-id", "device-4");
  await page.click("#why-form button");
  await page.waitForSelector("#why-verdict");
  report.why = await page.textContent("#why-out");
  await page.fill("#why-id", "nobody");
  await page.click("#why-form button");
  await page.waitForFunction(() => document.querySelector("#why-out").textContent.includes("No registration record"));
  report.whyUnknown = await page.textContent("#why-out");
  for (const [name, pem] of Object.entries(chains)) {
    await page.fill("#decide-chain", pem);
    await page.click("#decide-form button");
    await page.waitForFunction(() => document.querySelector("#decide-verdict") !== null);
    report["decide_" + name] = await page.textContent("#decide-out");
    await page.evaluate(() => document.querySelector("#decide-out").replaceChildren());
  }
  await page.fill("#decide-chain", "not a certificate");
  await page.click("#decide-form button");
  await page.waitForFunction(() => document.querySelector("#decide-out .badge.error") !== null);
  report.decide_garbage = await page.textContent("#decide-out");
  // A proxy or a script that sends the header itself gets the console at once.
  const tool = await browser.newContext({ ignoreHTTPSErrors: true, extraHTTPHeaders: { Authorization: token } });
  const direct = await tool.newPage();
  const answer = await direct.goto(url + "/console/");
  report.authenticatedStatus = answer.status();
  report.csp = answer.headers()["content-security-policy"];
  await direct.waitForSelector("body[data-ready=true]");
  report.directTreeItems = await direct.locator("#tree li").count();
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
