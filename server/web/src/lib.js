// Shared helpers: the html tag, API calls, times, roles, small formatting.
import { h } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import htm from "htm";

export const html = htm.bind(h);
export const API = "/api/v1";

export class ApiError extends Error {
  constructor(status, detail, problems = []) {
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.problems = problems;
  }
}

// JSON from the API with the session cookie; errors carry the server's `detail`.
export async function api(path, { method = "GET", body, headers = {} } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers }, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(API + path, init);
  if (res.status === 204) return null;
  let doc = null;
  try {
    doc = await res.json();
  } catch {
    doc = null;
  }
  if (res.status === 401 && !path.startsWith("/auth/")) dispatchEvent(new Event("opscopilot:signed-out"));
  if (!res.ok) throw new ApiError(res.status, doc?.detail, doc?.problems || []);
  return doc;
}

// Poll `load` every `ms` while the tab is visible; returns [data, error, reload].
export function usePoll(load, ms, deps = []) {
  const [state, setState] = useState({ data: null, error: null });
  const tick = useRef(null);
  useEffect(() => {
    let alive = true;
    let timer = null;
    const run = async () => {
      clearTimeout(timer);
      if (document.visibilityState === "visible") {
        try {
          const data = await load();
          if (alive) setState({ data, error: null });
        } catch (error) {
          if (alive) setState((s) => ({ data: s.data, error }));
        }
      }
      if (alive && ms) timer = setTimeout(run, ms);
    };
    tick.current = run;
    const onVisible = () => document.visibilityState === "visible" && run();
    document.addEventListener("visibilitychange", onVisible);
    addEventListener("opscopilot:changed", run); // something was decided or finished: look again now
    run();
    return () => {
      alive = false;
      clearTimeout(timer);
      document.removeEventListener("visibilitychange", onVisible);
      removeEventListener("opscopilot:changed", run);
    };
  }, deps);
  return [state.data, state.error, () => tick.current && tick.current()];
}

// --- times: the browser's timezone, UTC on hover ---------------------------------------------

const pad = (n) => String(n).padStart(2, "0");

export function parseTime(value) {
  if (value == null || value === "") return null;
  const d = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return Number.isNaN(d.getTime()) ? null : d;
}

export function localText(d, withDate = true) {
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (!withDate) return time;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
}

export function utcText(d) {
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

export function Time({ value, short = false }) {
  const d = parseTime(value);
  if (!d) return html`<span class="muted">—</span>`;
  const today = new Date().toDateString() === d.toDateString();
  return html`<time datetime=${d.toISOString()} title=${"UTC: " + utcText(d)}>${localText(d, !(short && today))}</time>`;
}

export function seconds(s) {
  if (s == null) return "";
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${Math.round(s - m * 60)} s`;
}

export function duration(ms) {
  if (ms == null) return "";
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  if (s < 3600) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

export function number(v, digits = 1) {
  if (v == null || Number.isNaN(v)) return "—";
  const abs = Math.abs(v);
  if (abs >= 1e9) return (v / 1e9).toFixed(digits) + "G";
  if (abs >= 1e6) return (v / 1e6).toFixed(digits) + "M";
  if (abs >= 1e4) return (v / 1e3).toFixed(digits) + "k";
  return Number.isInteger(v) ? String(v) : v.toFixed(abs < 1 ? 3 : digits);
}

export function withUnit(v, unit) {
  if (v == null) return "—";
  if (unit && /percent|%/i.test(unit)) return `${number(v)}%`;
  return unit ? `${number(v)} ${unit}` : number(v);
}

// --- who may do what (the API enforces the same; the UI says why before anyone tries) ----------

const RANK = { viewer: 0, operator: 1, approver: 2, admin: 3 };
export const can = (me, role) => !!me && RANK[me.role] >= RANK[role];
export const sameName = (a, b) => (a || "").trim().toLowerCase() === (b || "").trim().toLowerCase();

export function newId(prefix) {
  const rnd = crypto.randomUUID ? crypto.randomUUID().replace(/-/g, "") : String(Math.random()).slice(2);
  return `${prefix}-${rnd.slice(0, 16)}`;
}

export const SEVERITY_RANK = { critical: 2, warning: 1, info: 0 };
