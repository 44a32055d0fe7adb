// The browser package in headless Chromium: the page loads the package,
// loads a snapshot, and answers a list of requests; the answers must equal
// the native engine's (written by cli/tests/browser_demo.rs). With
// --bench, also times check() over 100,000 calls and PolicyEngine.load and
// PolicyEngine.loadAsync (five loads each, the first in a fresh browser).
// Every run is done with both load methods.
//
// node tests/browser/engine-in-chromium.mjs PACKAGE_DIR SNAPSHOT CASES.json [--bench]
import { createServer } from "node:http";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { launch } from "./chromium.mjs";

const [pkg, snapshot, casesFile, flag] = process.argv.slice(2);
const files = {
  "/": ["text/html", "<!doctype html><title>engine</title>"],
  "/portcullis.js": ["text/javascript", readFileSync(join(pkg, "portcullis.js"))],
  "/portcullis_bg.wasm": ["application/wasm", readFileSync(join(pkg, "portcullis_bg.wasm"))],
  "/snapshot": ["application/octet-stream", readFileSync(snapshot)],
  "/cases": ["application/json", readFileSync(casesFile)],
};
const server = createServer((req, res) => {
  let f = files[req.url];
  // The JavaScript the module imports (wasm-bindgen's snippets/).
  if (!f && req.url.startsWith("/snippets/") && !req.url.includes("..") && existsSync(join(pkg, req.url))) {
    f = ["text/javascript", readFileSync(join(pkg, req.url))];
  }
  if (!f) { res.writeHead(404).end(); return; }
  res.writeHead(200, { "Content-Type": f[0] }).end(f[1]);
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const origin = `http://127.0.0.1:${server.address().port}`;

// One fresh browser per run, so a run's first load is a first load (Chromium
// caches compiled WebAssembly across pages of one browser).
async function run(method, bench) {
  const browser = await launch();
  try {
    const page = await browser.newPage();
    await page.goto(`${origin}/`);
    return await page.evaluate(async ({ method, bench }) => {
      const { default: init, PolicyEngine } = await import("/portcullis.js");
      const t0 = performance.now();
      await init();
      const initMs = performance.now() - t0;
      const bytes = new Uint8Array(await (await fetch("/snapshot")).arrayBuffer());
      const cases = await (await fetch("/cases")).json();
      const loads = [];
      let engine = null;
      for (let i = 0; i < (bench ? 5 : 1); i++) {
        const t = performance.now();
        const e = method === "loadAsync" ? await PolicyEngine.loadAsync(bytes) : PolicyEngine.load(bytes);
        loads.push(performance.now() - t);
        engine?.free();
        engine = e;
      }
      const bad = [];
      for (const c of cases.checks) {
        const r = engine.check(c.principal, c.action, c.resource, { now: c.now, bulk: c.bulk });
        if (c.allowed === undefined) { r.free(); continue; } // benchmark requests: no expectation
        if (r.allowed !== c.allowed || r.reason !== c.reason || r.message !== c.message) {
          bad.push({ case: c, got: { allowed: r.allowed, reason: r.reason, message: r.message } });
        }
        r.free();
      }
      const out = { method, checked: cases.checks.length, bad: bad.slice(0, 10), badCount: bad.length, revision: engine.revision };
      // Signatures, verified by the page's WebCrypto (loadAsync only).
      if (cases.signing && method === "loadAsync") {
        const signed = Uint8Array.from(cases.signing.snapshot.match(/../g), (h) => parseInt(h, 16));
        let trusted = "refused";
        try { (await PolicyEngine.loadAsync(signed, [cases.signing.key])).free(); trusted = "loads"; } catch (e) { trusted = String(e.message); }
        let untrusted = "loads";
        try { (await PolicyEngine.loadAsync(signed, [cases.signing.otherKey])).free(); } catch (e) { untrusted = /not trusted/.test(String(e.message)) ? "refused" : String(e.message); }
        out.signatures = `trusted ${trusted}, untrusted ${untrusted}`;
      }
      if (bench) {
        // 100 batches of 1,000 calls (the page clock is too coarse for one call).
        const perCall = [];
        const n = cases.checks.length;
        for (let b = 0; b < 100; b++) {
          const t = performance.now();
          for (let i = 0; i < 1000; i++) {
            const c = cases.checks[(b * 1000 + i) % n];
            engine.check(c.principal, c.action, c.resource, { now: c.now }).free();
          }
          perCall.push(((performance.now() - t) * 1000) / 1000);
        }
        const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
        // The same without a context (the browser's clock): what the
        // context object costs to read.
        const bare = [];
        for (let b = 0; b < 100; b++) {
          const t = performance.now();
          for (let i = 0; i < 1000; i++) {
            const c = cases.checks[(b * 1000 + i) % n];
            engine.check(c.principal, c.action, c.resource).free();
          }
          bare.push(((performance.now() - t) * 1000) / 1000);
        }
        out.check_no_context_us_median = median(bare);
        // permissions() for a page of 50 resources: 20 batches of 20 pages.
        const page = [];
        for (let b = 0; b < 20; b++) {
          const t = performance.now();
          for (let p = 0; p < 20; p++) {
            for (let i = 0; i < 50; i++) {
              const c = cases.checks[((b * 20 + p) * 50 + i) % n];
              engine.permissions(c.principal, c.resource);
            }
          }
          page.push(((performance.now() - t) * 1000) / 20);
        }
        out.permissions_50_us_median = median(page);
        // The same pages through permissionsMany (one call per page), and
        // checkMany: 1,000 checks per call.
        const many = [];
        for (let b = 0; b < 20; b++) {
          const pages = [];
          for (let p = 0; p < 20; p++) {
            pages.push(Array.from({ length: 50 }, (_, i) => cases.checks[((b * 20 + p) * 50 + i) % n].resource));
          }
          const t = performance.now();
          for (const resources of pages) engine.permissionsMany(cases.checks[0].principal, resources);
          many.push(((performance.now() - t) * 1000) / 20);
        }
        out.permissions_many_50_us_median = median(many);
        const batch = [];
        for (let b = 0; b < 100; b++) {
          const slice = Array.from({ length: 1000 }, (_, i) => cases.checks[(b * 1000 + i) % n]);
          const actions = slice.map((c) => c.action), resources = slice.map((c) => c.resource);
          const t = performance.now();
          engine.checkMany(cases.checks[0].principal, actions, resources);
          batch.push(((performance.now() - t) * 1000) / 1000);
        }
        out.check_many_us_median = median(batch);
        out.check_us_median = median(perCall);
        out.check_us_min = Math.min(...perCall);
        out.init_ms = initMs;
        out.load_ms = loads;
      }
      return out;
    }, { method, bench });
  } finally {
    await browser.close();
  }
}

const bench = flag === "--bench";
const result = [];
try {
  for (const method of ["load", "loadAsync"]) result.push(await run(method, bench));
} finally {
  server.close();
}
console.log(JSON.stringify(result));
process.exit(result.some((r) => r.badCount) ? 1 : 0);
