// The console's shell: sign-in, navigation and routes.
import type { JSX } from "preact";
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { baseUrl, call, currentSession, onSessionChange, setSession } from "./api";
import { ComponentDetail } from "./pages/ComponentDetail";
import { ComponentEdit } from "./pages/ComponentEdit";
import { ComponentList } from "./pages/ComponentList";
import { Flow } from "./pages/Flow";
import { MqttSettings } from "./pages/MqttSettings";
import { Nodes } from "./pages/Nodes";
import { RuleEdit } from "./pages/RuleEdit";
import { Rules } from "./pages/Rules";
import { SignIn } from "./pages/SignIn";
import { match, useRoute } from "./router";
import { resetOpenApi } from "./ui";
import "./style.css";

const NAV: [string, string][] = [
  ["/connectors", "Connectors"], ["/rules", "Rules"], ["/actions", "Actions"], ["/sources", "Sources"], ["/flow", "Flow"], ["/mqtt", "MQTT"], ["/nodes", "Nodes"],
];

function route(path: string): JSX.Element {
  let m: Record<string, string> | null;
  for (const kind of ["connectors", "actions", "sources"] as const) {
    if (path === `/${kind}`) return <ComponentList kind={kind} />;
    if (path === `/${kind}/new`) return <ComponentEdit kind={kind} />;
    if ((m = match(`/${kind}/:id/edit`, path))) return <ComponentEdit key={m.id} kind={kind} id={m.id} />;
    if (kind !== "connectors" && (m = match(`/${kind}/:id`, path))) return <ComponentDetail key={m.id} kind={kind} id={m.id} />;
  }
  if (path === "/rules") return <Rules />;
  if (path === "/rules/new") return <RuleEdit />;
  if ((m = match("/rules/:id", path))) return <RuleEdit key={m.id} id={m.id} />;
  if (path === "/flow") return <Flow />;
  if (path === "/mqtt") return <MqttSettings />;
  if (path === "/nodes") return <Nodes />;
  if (path === "/" || path === "") return <ComponentList kind="connectors" />;
  return <p class="page">No page at {path}. <a href="#/connectors">Connectors</a></p>;
}

// A viewer key may only read (the API refuses the rest with 403): pages that edit are shown with
// every control disabled, and on the list pages the controls that change something are disabled
// and the "create" links hidden (style.css, .viewer).
const LIST_PAGE = /^\/?(connectors|actions|sources|rules|flow|nodes)?$/;
const CHANGES = 'input[aria-label^="Enable"], button.danger';

function useReadOnly(viewer: boolean): void {
  useEffect(() => {
    const main = document.getElementById("main");
    if (!viewer || !main) return;
    const lock = () => main.querySelectorAll<HTMLInputElement | HTMLButtonElement>(CHANGES).forEach((el) => { el.disabled = true; });
    lock();
    const watch = new MutationObserver(lock);
    watch.observe(main, { childList: true, subtree: true });
    return () => watch.disconnect();
  }, [viewer]);
}

function App(): JSX.Element {
  const [session, setS] = useState(currentSession());
  const [role, setRole] = useState<string | null>(null);
  const path = useRoute();
  useEffect(() => onSessionChange(() => { resetOpenApi(); setS(currentSession()); }), []);
  useEffect(() => {
    setRole(null);
    // An instance without roles answers 404: its keys may change everything.
    if (session) call<{ role: string }>("GET", "/whoami").then((me) => setRole(me.role), () => setRole("administrator"));
  }, [session]);
  const viewer = role === "viewer";
  useReadOnly(viewer && !!session);
  useEffect(() => {
    // Moves focus to the new page's heading so keyboard and screen-reader users land on it.
    requestAnimationFrame(() => document.getElementById("page-title")?.focus({ preventScroll: true }));
  }, [path]);
  if (!session) return <SignIn />;
  const section = "/" + (path.split("/")[1] ?? "");
  return (
    <div class={viewer ? "shell viewer" : "shell"}>
      <a class="skip" href="#main" onClick={(e) => { e.preventDefault(); document.getElementById("main")?.focus(); }}>Skip to content</a>
      <header class="top">
        <span class="brand">mqferry</span>
        <nav aria-label="Main">
          {NAV.map(([href, text]) => (
            <a key={href} href={"#" + href} aria-current={section === href ? "page" : undefined}>{text}</a>
          ))}
        </nav>
        <span class="who" title={baseUrl(session)}>{session.key}{session.url ? ` @ ${session.url}` : ""}{viewer ? " (viewer: read-only)" : ""}</span>
        <button type="button" class="secondary small" onClick={() => setSession(null)}>Sign out</button>
      </header>
      <main id="main" tabIndex={-1}>
        {viewer && !LIST_PAGE.test(path) ? <fieldset class="read-only" disabled>{route(path)}</fieldset> : route(path)}
      </main>
    </div>
  );
}

render(<App />, document.getElementById("app")!);
