// The view and the filters live in the address bar (?...), so a view can be shared as a link.
// The sign-in token never does: it arrives in the fragment (#token=...) and is removed at once.
export const FILTER_KEYS = ["status", "severity", "activity", "admin"];
export const VOCAB = {
  status: ["new", "dispatched", "verified_violation", "false_positive", "permitted", "rectifying", "rectified", "closed"],
  severity: ["low", "medium", "high", "critical"],
  activity: ["mining", "industrial", "energy", "transport", "construction", "farmland", "tourism", "other"],
};

export function read() {
  const q = new URLSearchParams(location.search);
  const list = (k) => (q.get(k) || "").split(",").filter(Boolean);
  const c = (q.get("c") || "").split(",").map(Number);
  return {
    view: q.get("view") === "overview" ? "overview" : "map",
    camera: c.length === 3 && c.every(Number.isFinite) ? { center: [c[0], c[1]], zoom: c[2] } : null,
    filters: {
      status: list("status"), severity: list("severity"), activity: list("activity"), admin: list("admin"),
      from: q.get("from") || "", to: q.get("to") || "",
    },
    flag: Number(q.get("flag")) || null,
  };
}

export function write(state) {
  const q = new URLSearchParams();
  if (state.view !== "map") q.set("view", state.view);
  if (state.camera) {
    const [lon, lat] = state.camera.center;
    q.set("c", `${lon.toFixed(5)},${lat.toFixed(5)},${state.camera.zoom.toFixed(2)}`);
  }
  for (const k of FILTER_KEYS) if (state.filters[k].length) q.set(k, state.filters[k].join(","));
  if (state.filters.from) q.set("from", state.filters.from);
  if (state.filters.to) q.set("to", state.filters.to);
  if (state.flag) q.set("flag", String(state.flag));
  const s = q.toString().replace(/%2C/g, ",");
  history.replaceState(null, "", `${location.pathname}${s ? `?${s}` : ""}`);
}

/** The filters as API query parameters (status=..&status=..&datetime=a/b), the API's own names. */
export function apiParams(filters) {
  const p = new URLSearchParams();
  for (const k of FILTER_KEYS) for (const v of filters[k]) p.append(k, v);
  if (filters.from || filters.to) p.set("datetime", `${filters.from || ".."}/${filters.to || ".."}`);
  return p;
}

/** A token handed over in a sign-in link (/#token=...): taken, and removed from the address bar. */
export function takeTokenFromFragment() {
  const h = new URLSearchParams(location.hash.replace(/^#/, ""));
  const tok = h.get("token");
  if (tok !== null) history.replaceState(null, "", `${location.pathname}${location.search}`);
  return tok;
}
