// The demo page in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core): sign in, check that buttons are enabled, disabled (with
// the reason on hover) or absent as the engine says; then write through
// the directory service from the page — olivia grants pat write access and
// deactivates pat, adam's refused write shows the seed's reason — and see
// the gateway's decisions change at the revision of each write.
//
// node tests/browser/demo-page.mjs PORTCULLIS_BINARY PACKAGE_DIR [SCREENSHOT.png]
import { spawn } from "node:child_process";
import { launch } from "./chromium.mjs";

const [bin, pkg, screenshot] = process.argv.slice(2);
const demo = spawn(bin, ["demo", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
  "--directory-listen", "127.0.0.1:0", "--browser-pkg", pkg], {
  stdio: ["ignore", "pipe", "inherit"],
});
const failures = [];
const expect = (what, ok) => { if (!ok) failures.push(what); };

let out = "";
const addresses = await new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error(`the demo did not start:\n${out}`)), 60_000);
  demo.stdout.on("data", (chunk) => {
    out += chunk;
    const m = out.match(/gateway on (http:\/\/[\d.:]+), admin API on (http:\/\/[\d.:]+)/);
    const dir = out.match(/The directory service \((http:\/\/[\d.:]+)\)/);
    if (m && dir) { clearTimeout(timer); resolve({ gateway: m[1], admin: m[2], directory: dir[1] }); }
  });
  demo.on("exit", (code) => reject(new Error(`the demo exited (${code}):\n${out}`)));
});

const browser = await launch();
try {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${addresses.gateway}/-/demo/`);
  await page.waitForSelector("body[data-ready=true]", { timeout: 30_000 });
  // Each pick renders that user's screen, then marks the body with the user.
  const signIn = async (user) => {
    await page.selectOption("#user", user);
    await page.waitForSelector(`body[data-user="${user}"]`, { timeout: 10_000 });
  };
  await signIn("pat");

  const button = (resource, action) => page.locator(`tr[data-resource="${resource}"] button[data-action="${action}"]`);
  const row = (resource) => page.locator(`tr[data-resource="${resource}"]`);
  // pat reads production (group analysts) but writes nothing.
  expect("pat: Read on catalog/sales enabled", await button("catalog/sales", "read").isEnabled());
  expect("pat: Write on catalog/sales disabled", await button("catalog/sales", "write").isDisabled());
  const title = await button("catalog/sales", "write").getAttribute("title");
  expect(`pat: the reason is on hover (${title})`, /^no_grant: denied/.test(title ?? ""));
  // pat's view holds no other person: the users screen lists pat alone,
  // and the page says what the view holds.
  expect("pat: user/olivia is not in pat's view", (await row("user/olivia").count()) === 0);
  expect("pat: one person in the view", (await page.locator("body").getAttribute("data-view-people")) === "1");
  const view = await page.locator("#view").textContent();
  expect(`pat: the view's size and contents are shown (${view})`, /bytes — nobody else, .* catalogs/.test(view ?? ""));
  expect("pat: View on user/pat enabled", await button("user/pat", "user:view").isEnabled());
  // A staging catalog pat has no access to: no buttons.
  expect("pat: no access to catalog/staging-sales", (await row("catalog/staging-sales").locator("button").count()) === 0);

  // An administrator's view holds the users of its subtree (emea), not
  // everyone; an owner's holds everyone, with the users screen enabled.
  await signIn("adam");
  const emea = Number(await page.locator("body").getAttribute("data-view-people"));
  expect(`adam: the users adam administers are in the view (${emea})`, emea > 1);
  expect("adam: user/olivia (an owner, outside emea) is not", (await row("user/olivia").count()) === 0);
  await signIn("olivia");
  expect("olivia: Edit on user/adam enabled", await button("user/adam", "user:update").isEnabled());
  const people = Number(await page.locator("body").getAttribute("data-view-people"));
  expect(`olivia: every user is in the owner's view (${people})`, people > emea && people > 20);

  // carol writes finance (a catalog grant) but only reads sales.
  await signIn("carol");
  expect("carol: Write on catalog/finance enabled", await button("catalog/finance", "write").isEnabled());
  expect("carol: Write on catalog/sales disabled", await button("catalog/sales", "write").isDisabled());
  // dan is disabled: the gateway serves him no view (issue #12), so no
  // buttons at all, and the page says why.
  await signIn("dan");
  expect("dan: no buttons", (await page.locator("table button[data-action]").count()) === 0);
  const why = await page.locator("#status").textContent();
  expect(`dan: the reason is shown (${why})`, /account_disabled/.test(why ?? ""));

  // Writes from the page. olivia (an owner) grants pat write on sales: the
  // answer names revision 2, and the page reloads its view at it.
  const lastWrite = async (status) => {
    await page.waitForSelector(`body[data-last-write="${status}"]`, { timeout: 15_000 });
    const said = await page.locator("#write").textContent();
    await page.evaluate(() => { delete document.body.dataset.lastWrite; });
    return said ?? "";
  };
  await signIn("olivia");
  page.once("dialog", (d) => d.accept("pat"));
  await row("catalog/sales").locator('button[data-action="grant"]').click();
  const granted = await lastWrite("200");
  expect(`olivia's grant committed as revision 2 (${granted})`, /^revision 2: allowed: user\/olivia is owner/.test(granted));
  // (olivia's own view did not change: the gateway, at revision 2, says so.)
  await signIn("pat");
  await page.waitForSelector("body[data-revision='2']", { timeout: 10_000 });
  expect("pat after the grant: Write on catalog/sales enabled", await button("catalog/sales", "write").isEnabled());

  // adam, hints off, presses a button the engine refuses — his own expiry
  // (seed 000: nobody edits their own expiry date): the service refuses it
  // with the engine's reason, and nothing changes.
  await signIn("adam");
  expect("adam: Expire on user/adam disabled by the hint", await button("user/adam", "user:update_expiry").isDisabled());
  await page.uncheck("#hints");
  await button("user/adam", "user:update_expiry").click();
  const refused = await lastWrite("403");
  expect(`adam's own expiry refused with the seed's reason (${refused})`, /own_expiry/.test(refused));
  await page.check("#hints");

  // olivia deactivates pat; pat's page then shows that pat cannot act.
  await signIn("olivia");
  await button("user/pat", "user:deactivate").click();
  const deactivated = await lastWrite("200");
  expect(`pat deactivated as revision 3 (${deactivated})`, /^revision 3:/.test(deactivated));
  await signIn("pat");
  const patNow = await page.locator("#status").textContent();
  expect(`pat cannot act any more (${patNow})`, /account_deactivated/.test(patNow ?? ""));
  // And at the gateway: pat's request at revision 3 is refused.
  const patToken = await page.evaluate(() => fetch("./info").then((r) => r.json()).then((i) => i.tokens.pat));
  const atGateway = await fetch(`${addresses.gateway}/envs/prod/catalogs/sales/tables/orders`, {
    headers: { Authorization: `Bearer ${patToken}`, "X-Portcullis-Min-Revision": "3" },
  });
  expect(`the gateway refuses pat at revision 3 (${atGateway.status})`, atGateway.status === 403);
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  expect(`no page errors: ${errors.join("; ")}`, errors.length === 0);
} finally {
  await browser.close();
  demo.kill("SIGTERM");
}
if (failures.length) {
  console.error(`demo page: ${failures.length} failed:\n  ${failures.join("\n  ")}`);
  process.exit(1);
}
console.log("demo page: every check passed");
