// The demo page in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core): sign in, check that buttons are enabled, disabled (with
// the reason on hover) or absent as the engine says, push revision 2 of the
// example to the gateway, refresh, and see the decision change.
//
// node tests/browser/demo-page.mjs PORTCULLIS_BINARY PACKAGE_DIR [SCREENSHOT.png]
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { launch } from "./chromium.mjs";

const [bin, pkg, screenshot] = process.argv.slice(2);
const demo = spawn(bin, ["demo", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--browser-pkg", pkg], {
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
    const v2 = out.match(/--data-binary @(\S+)/);
    if (m && v2) { clearTimeout(timer); resolve({ gateway: m[1], admin: m[2], v2: v2[1] }); }
  });
  demo.on("exit", (code) => reject(new Error(`the demo exited (${code}):\n${out}`)));
});
const token = out.match(/-H "Authorization: Bearer (demo-admin-token[^"]*)"/)[1];

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
  expect("dan: no buttons", (await page.locator("button[data-action]").count()) === 0);
  const why = await page.locator("#status").textContent();
  expect(`dan: the reason is shown (${why})`, /account_disabled/.test(why ?? ""));

  // Push revision 2 to the gateway; the page reflects it after a refresh.
  const push = await fetch(`${addresses.admin}/-/snapshot`, {
    method: "PUT", body: readFileSync(addresses.v2), headers: { Authorization: `Bearer ${token}` },
  });
  expect(`push answered ${push.status}`, push.status === 200);
  await signIn("pat");
  await page.click("#refresh");
  await page.waitForSelector("body[data-revision='2']", { timeout: 10_000 });
  expect("pat after the push: Write on catalog/sales enabled", await button("catalog/sales", "write").isEnabled());
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
