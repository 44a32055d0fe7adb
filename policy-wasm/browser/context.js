// The common check contexts, read on the JavaScript side: from WebAssembly,
// reading an object takes an `Object.keys` and a `Reflect.get` per field
// across the boundary, half a microsecond per check — more than the
// decision itself. Imported by the package (policy-wasm/src/bindgen.rs).
//
// Answers Infinity for no context (the browser's clock), `now * 2 + bulk`
// for an integer `now` (and an optional boolean `bulk`), and NaN for
// anything else — an RFC 3339 `now`, another field, a wrong type — which
// the engine then reads itself: the one place that says what is wrong.
export function portcullis_context(c) {
  if (c === undefined || c === null) return Infinity;
  if (typeof c !== "object") return NaN;
  let now;
  let bulk = false;
  for (const k in c) {
    if (!Object.prototype.hasOwnProperty.call(c, k)) continue;
    const v = c[k];
    if (v === undefined) continue;
    if (k === "now") now = v;
    else if (k === "bulk") {
      if (typeof v !== "boolean") return NaN;
      bulk = v;
    } else return NaN;
  }
  if (now === undefined) return bulk ? NaN : Infinity;
  if (typeof now !== "number" || !Number.isInteger(now) || Math.abs(now) >= 2 ** 51) return NaN;
  return now * 2 + (bulk ? 1 : 0);
}
