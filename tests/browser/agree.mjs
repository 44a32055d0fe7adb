// Runs the browser package (target/browser-pkg) in Node on a snapshot and
// compares its answers with the native engine's, written by
// tests/tests/browser_package.rs, and does the same through loadAsync.
// Prints {"checked": N, "asyncChecked": A, "bad": M}.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { join, resolve } from "node:path";

const [pkg, snapshot, casesFile] = process.argv.slice(2);
const mod = await import(pathToFileURL(resolve(join(pkg, "portcullis.js"))).href);
mod.initSync({ module: readFileSync(join(pkg, "portcullis_bg.wasm")) });
const engine = mod.PolicyEngine.load(new Uint8Array(readFileSync(snapshot)));
const cases = JSON.parse(readFileSync(casesFile, "utf8"));

let checked = 0;
let bad = 0;
const fail = (what, got, want) => {
  if (bad++ < 10) console.error(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
};
if (engine.revision !== cases.revision) fail("revision", engine.revision, cases.revision);
for (const c of cases.checks) {
  checked++;
  const r = engine.check(c.principal, c.action, c.resource, { now: c.now, bulk: c.bulk });
  const got = { allowed: r.allowed, reason: r.reason, message: r.message };
  r.free();
  if (got.allowed !== c.allowed || got.reason !== c.reason || got.message !== c.message) {
    fail(`check ${c.principal} ${c.action} ${c.resource}`, got, c);
  }
}
for (const p of cases.permissions) {
  checked++;
  const got = engine.permissions(p.principal, p.resource, { now: p.now });
  if (JSON.stringify(got) !== JSON.stringify(p.actions)) fail(`permissions ${p.principal} ${p.resource}`, got, p.actions);
}
for (const l of cases.lists) {
  checked++;
  let got;
  try {
    got = { ok: engine.list(l.principal, l.action, l.kind, l.under, { now: l.now }) };
  } catch (e) {
    got = { err: e.message };
  }
  if (JSON.stringify(got) !== JSON.stringify(l.expected)) fail(`list ${l.principal} ${l.action} ${l.kind} ${l.under}`, got, l.expected);
}
// A bad snapshot is refused with a reason, not a crash.
try {
  mod.PolicyEngine.load(new Uint8Array([1, 2, 3]));
  fail("load garbage", "accepted", "an error");
} catch (e) {
  checked++;
  if (!String(e.message).length) fail("load garbage", e, "a message");
}
// loadAsync (SHA-256 by WebCrypto) accepts the same bytes and answers the
// same; a body changed after the header was written is refused by both.
let asyncChecked = 0;
const bytes = new Uint8Array(readFileSync(snapshot));
const viaAsync = await mod.PolicyEngine.loadAsync(bytes);
asyncChecked++;
if (viaAsync.revision !== cases.revision) fail("loadAsync revision", viaAsync.revision, cases.revision);
for (const c of cases.checks.slice(0, 500)) {
  asyncChecked++;
  const r = viaAsync.check(c.principal, c.action, c.resource, { now: c.now, bulk: c.bulk });
  if (r.allowed !== c.allowed || r.reason !== c.reason) fail(`loadAsync check ${c.principal} ${c.action} ${c.resource}`, r.reason, c.reason);
  r.free();
}
const tampered = bytes.slice();
tampered[tampered.length - 1] ^= 1;
for (const [what, load] of [["load", async (b) => mod.PolicyEngine.load(b)], ["loadAsync", (b) => mod.PolicyEngine.loadAsync(b)]]) {
  asyncChecked++;
  try {
    await load(tampered);
    fail(`${what} tampered`, "accepted", "an error");
  } catch (e) {
    if (!/SHA-256|hash/i.test(String(e.message))) fail(`${what} tampered`, e.message, "a hash mismatch");
  }
}
try {
  await mod.PolicyEngine.loadAsync(new Uint8Array([1, 2, 3]));
  fail("loadAsync garbage", "accepted", "an error");
} catch (e) {
  asyncChecked++;
  if (!String(e.message).length) fail("loadAsync garbage", e, "a message");
}
// Signed snapshots: with trustedKeys, loadAsync loads only a snapshot
// signed by one of them (keys as hex or PEM), verified by WebCrypto; load,
// which cannot wait for WebCrypto, refuses trustedKeys and says to use
// loadAsync.
const s = cases.signing;
const signedBytes = new Uint8Array(readFileSync(s.snapshot));
for (const keys of [[s.key], [s.otherKey, s.keyPem]]) {
  asyncChecked++;
  try {
    const e = await mod.PolicyEngine.loadAsync(signedBytes, keys);
    if (e.revision !== cases.revision) fail("loadAsync signed revision", e.revision, cases.revision);
  } catch (e) {
    fail("loadAsync signed with a trusted key", e.message, "loaded");
  }
  asyncChecked++;
  try {
    mod.PolicyEngine.load(signedBytes, keys);
    fail("load with trustedKeys", "accepted", "/loadAsync/");
  } catch (e) {
    if (!/loadAsync/.test(String(e.message))) fail("load with trustedKeys", e.message, "/loadAsync/");
  }
}
// A signature that does not verify: one byte of the signature flipped.
const forged = signedBytes.slice();
forged[forged.length - 1] ^= 1;
for (const [candidate, keys, expected] of [
  [bytes, [s.key], /not signed/],
  [signedBytes, [s.otherKey], /not trusted/],
  [signedBytes, ["not a key"], /trustedKeys/],
  [forged, [s.key], /does not verify/],
]) {
  asyncChecked++;
  try {
    await mod.PolicyEngine.loadAsync(candidate, keys);
    fail("loadAsync refused", "accepted", String(expected));
  } catch (e) {
    if (!expected.test(String(e.message))) fail("loadAsync refused", e.message, String(expected));
  }
}
// Without trustedKeys, a signed snapshot loads like any other.
for (const [what, load] of [["load", async (b) => mod.PolicyEngine.load(b)], ["loadAsync", (b) => mod.PolicyEngine.loadAsync(b)]]) {
  asyncChecked++;
  try { await load(signedBytes); } catch (e) { fail(`${what} signed without keys`, e.message, "loaded"); }
}
// The request format's context (policy-wasm/README.md): `now` as RFC 3339
// or integer seconds decides alike; anything else throws (issue #12).
{
  const c = cases.checks.find((c) => Number.isInteger(c.now) && c.now % 60 === 0) ?? cases.checks[0];
  const iso = new Date(c.now * 1000).toISOString().replace(".000Z", "Z");
  const a = engine.check(c.principal, c.action, c.resource, { now: c.now, bulk: c.bulk });
  const b = engine.check(c.principal, c.action, c.resource, { now: iso, bulk: c.bulk });
  asyncChecked++;
  if (a.reason !== b.reason || a.allowed !== b.allowed) fail(`now ${iso} vs ${c.now}`, b.reason, a.reason);
  a.free(); b.free();
  for (const [what, ctx, expected] of [
    ["a misspelt field", { nw: 1 }, /unknown field `nw`/],
    ["a fractional now", { now: 1.5 }, /RFC 3339/],
    ["a date without a time", { now: "2026-11-23" }, /RFC 3339/],
    ["bulk not a boolean", { bulk: "yes" }, /bulk/],
  ]) {
    asyncChecked++;
    try {
      engine.check(c.principal, c.action, c.resource, ctx);
      fail(what, "accepted", String(expected));
    } catch (e) {
      if (!expected.test(String(e.message))) fail(what, e.message, String(expected));
    }
  }
}
console.log(JSON.stringify({ checked, asyncChecked, bad }));
process.exit(bad ? 1 : 0);
