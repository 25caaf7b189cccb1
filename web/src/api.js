// The public API, with the session's bearer token. The app is a client like any other.
import { t } from "./i18n.js";

const KEY = "redline.token";

export function token() { return sessionStorage.getItem(KEY); }
export function setToken(tok) { tok ? sessionStorage.setItem(KEY, tok) : sessionStorage.removeItem(KEY); }

/** A refusal as a person reads it: what kind (in the interface language), then the API's detail. */
export class ApiError extends Error {
  constructor(status, problem) {
    const kind = t(`http_${status}`);
    const detail = problem?.detail || problem?.title || `HTTP ${status}`;
    super(kind === `http_${status}` ? detail : `${kind}: ${detail}`);
    this.status = status;
    this.problem = problem;
  }
}

function headers(extra = {}) {
  const tok = token();
  return { Accept: "application/json", ...(tok ? { Authorization: `Bearer ${tok}` } : {}), ...extra };
}

async function answer(r) {
  if (r.ok) {
    const type = r.headers.get("content-type") || "";
    return type.includes("json") ? r.json() : r.blob();
  }
  let problem = null;
  try { problem = await r.json(); } catch { /* not JSON */ }
  throw new ApiError(r.status, problem);
}

export async function get(path, params) {
  const url = params ? `${path}?${params}` : path;
  return answer(await fetch(url, { headers: headers() }));
}
export async function send(method, path, body) {
  const isForm = body instanceof FormData;
  return answer(await fetch(path, {
    method,
    headers: headers(isForm ? {} : { "Content-Type": "application/json" }),
    body: isForm ? body : JSON.stringify(body),
  }));
}
/** MapLibre's request hook: the bearer token on this server's URLs only. */
export function transformRequest(url) {
  const tok = token();
  if (tok && new URL(url, location.href).origin === location.origin) {
    return { url, headers: { Authorization: `Bearer ${tok}` } };
  }
  return { url };
}
