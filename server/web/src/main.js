// The console's shell: sign-in, navigation (hash routes), the current user's role and the scope.
import { config as zodConfig } from "zod/v4/core";
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import "./style.css";
import { AlertsView } from "./alerts.js";
import { ApprovalsView } from "./approvals.js";
import { ChatView } from "./chat.js";
import { InvestigationView } from "./investigation.js";
import { api, ApiError, can, html, usePoll } from "./lib.js";

// The AG-UI client validates events with zod; without eval (our Content-Security-Policy forbids it).
zodConfig({ jitless: true });

function useRoute() {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  const parts = hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  return { page: parts[0] || "chat", arg: parts[1] || null };
}

// Esc closes the detail that is open (the innermost one opened last), and leaves text fields.
function closeDetailOnEscape(e) {
  if (e.key !== "Escape") return;
  const open = [...document.querySelectorAll("details.detail[open], details.progress[open]")];
  const inner = open.filter((d) => !open.some((o) => o !== d && d.contains(o)));
  if (inner.length) {
    inner[inner.length - 1].open = false;
    e.preventDefault();
  } else if (document.activeElement && document.activeElement !== document.body) {
    document.activeElement.blur();
  }
}

function SignIn({ onSignedIn, problem }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState(problem || null);
  async function submit(e) {
    e.preventDefault();
    setError(null);
    try {
      const who = await api("/auth/session", { method: "POST", headers: { Authorization: `Bearer ${token.trim()}` } });
      onSignedIn(who);
    } catch (err) {
      setError(err.message);
    }
  }
  return html`<main class="signin">
    <form onSubmit=${submit} class="card">
      <h1>OpsCopilot</h1>
      <p>Sign in with the link <code>opscopilot serve</code> printed at its first start, or with an API token:</p>
      <label>API token <input type="password" autocomplete="off" value=${token} data-testid="signin-token"
        onInput=${(e) => setToken(e.currentTarget.value)} placeholder="oc_…" /></label>
      <button type="submit" data-testid="signin-submit" disabled=${!token.trim()}>Sign in</button>
      <p class="small muted">Create one with <code>.venv/bin/opscopilot tokens create --name YOUR_NAME --role operator</code>
        (roles: viewer, operator, approver, admin). The browser keeps only a session cookie.</p>
      ${error && html`<p class="error" role="alert">${error}</p>`}
    </form>
  </main>`;
}

function Header({ me, info, page, onSignOut }) {
  const [pending] = usePoll(() => api("/approvals?status=pending"), 5000);
  const [firing] = usePoll(() => api("/alerts?status=firing&limit=500"), 5000);
  const tab = (name, label, count) => html`<a href=${"#/" + name} class=${page === name ? "current" : ""}
      aria-current=${page === name ? "page" : undefined}>${label}${count ? html` <span class="count">${count}</span>` : ""}</a>`;
  return html`<header class="top">
    <a class="brand" href="#/chat">OpsCopilot</a>
    <nav class="tabs">${tab("chat", "Chat")}${tab("alerts", "Alerts", firing?.length)}${tab("approvals", "Approvals", pending?.length)}</nav>
    <span class="spacer"></span>
    ${info && html`<span class=${"badge scope " + info.scope} title=${info.title}>${info.scope === "replay" ? "replay: " + info.scenario : "live"}</span>`}
    <span class="me" data-testid="me">${me.name} <span class="muted">(${me.role})</span></span>
    ${me.auth === "session" && html`<button class="link" onClick=${onSignOut}>Sign out</button>`}
  </header>
  ${info && !info.authentication && html`<p class="banner">This server runs without authentication (--no-auth, loopback only): everyone is an admin named “local”.</p>`}`;
}

function App() {
  const [me, setMe] = useState(undefined);
  const [problem, setProblem] = useState(null);
  const [info, setInfo] = useState(null);
  const route = useRoute();

  useEffect(() => {
    api("/auth/whoami")
      .then(setMe)
      .catch((e) => {
        setMe(null);
        if (!(e instanceof ApiError && e.status === 401)) setProblem(e.message);
      });
    const signedOut = () => {
      setProblem("Your session ended: sign in again.");
      setMe(null);
    };
    addEventListener("keydown", closeDetailOnEscape);
    addEventListener("opscopilot:signed-out", signedOut);
    return () => {
      removeEventListener("keydown", closeDetailOnEscape);
      removeEventListener("opscopilot:signed-out", signedOut);
    };
  }, []);
  useEffect(() => {
    if (me) api("/info").then(setInfo).catch(() => setInfo(null));
  }, [me]);

  if (me === undefined) return html`<p class="muted loading">Loading…</p>`;
  if (me === null) return html`<${SignIn} onSignedIn=${setMe} problem=${problem} />`;

  async function signOut() {
    await api("/auth/signout", { method: "POST" }).catch(() => null);
    setMe(null);
  }

  let body;
  if (route.page === "alerts") body = html`<${AlertsView} />`;
  else if (route.page === "approvals") body = html`<${ApprovalsView} me=${me} info=${info} />`;
  else if (route.page === "investigations" && route.arg) body = html`<${InvestigationView} id=${route.arg} me=${me} info=${info} />`;
  else body = html`<${ChatView} key=${route.arg || "new"} me=${me} info=${info} threadId=${route.arg} />`;
  return html`<${Header} me=${me} info=${info} page=${route.page} onSignOut=${signOut} />
    <main class=${"main page-" + route.page}>${body}</main>
    ${!can(me, "viewer") && html`<p class="error">Unknown role ${me.role}.</p>`}`;
}

render(html`<${App} />`, document.getElementById("app"));
