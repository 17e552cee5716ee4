// Create or edit a rule: SQL editor with errors at line and column, examples, the tester.
import type { JSX } from "preact";
import { useEffect, useState } from "preact/hooks";
import { ApiError, type Component, type Metrics, type Rule, type RuleFailure, api, errorPosition } from "../api";
import { useLoad } from "../hooks";
import { enc, navigate } from "../router";
import { prune } from "../schema";
import { type Catalogue, EXAMPLES, type EventInfo, type FunctionInfo } from "../sql";
import { SqlEditor } from "../SqlEditor";
import { ErrorBox, Metric, Page, asError, openApi } from "../ui";
import { InlineActions, inlineProblems } from "./InlineActions";

// Loaded once a session: the functions and event columns the SQL editor completes.
let cataloguePromise: Promise<Catalogue> | null = null;
function catalogue(): Promise<Catalogue> {
  cataloguePromise ??= Promise.all([api.get<FunctionInfo[]>("/rule_functions"), api.get<EventInfo[]>("/rule_events")])
    .then(([functions, events]) => ({ functions, events }))
    .catch((e) => { cataloguePromise = null; throw e; });
  return cataloguePromise;
}

const MQTT_CONTEXT = { topic: "t/1", payload: '{"msg": "hello"}', clientid: "c_emqx", qos: 1, username: "u_emqx" };

function kafkaContext(source: string) {
  return { event: `$bridges/${source}`, topic: "testtopic-out", key: "k1", value: '{"msg": "hello"}', offset: 0,
    headers: {}, ts: Date.now(), ts_type: "create" };
}

/** A topic a filter matches, for the tester's sample message. */
export function sampleTopic(filter: string): string {
  return filter.split("/").map((l) => (l === "+" || l === "#" ? "x" : l)).join("/");
}

// The tester's context survives "Create" (which opens the saved rule's page).
const keptContext = new Map<string, string>();

/** The rule's last failure: when, on which topic, why (and which action, when one refused it). */
export function LastError({ failure }: { failure: RuleFailure }): JSX.Element {
  const where = failure.topic ? ` on ${failure.topic}` : "";
  const action = failure.action ? ` (action ${failure.action})` : "";
  return (
    <div class="error-box last-error" role="status" aria-label="Last error">
      <strong>Last error</strong> {new Date(failure.at).toLocaleString()}{where}: {failure.reason}{action}
      {"\n"}{failure.message}
    </div>
  );
}

export function RuleEdit({ id }: { id?: string }): JSX.Element {
  const existing = useLoad(() => (id ? api.get<Rule>(`/rules/${enc(id)}`) : Promise.resolve(undefined)), [id]);
  const actions = useLoad(() => api.get<Component[]>("/actions"), []);
  const sources = useLoad(() => api.get<Component[]>("/sources"), []);
  const cat = useLoad(catalogue, []);
  const doc = useLoad(openApi, []);
  const metrics = useLoad(() => (id ? api.get<{ metrics: Metrics }>(`/rules/${enc(id)}/metrics`).then((m) => m.metrics) : Promise.resolve(undefined)), [id], 2000);
  // Polled apart from `existing`, which fills the form once: a new failure must not reset edits.
  const lastError = useLoad(() => (id ? api.get<Rule>(`/rules/${enc(id)}`).then((r) => r.last_error ?? null) : Promise.resolve(null)), [id], 2000);
  const [rid, setRid] = useState(id ?? "");
  const [description, setDescription] = useState("");
  const [sql, setSql] = useState('SELECT\n  *\nFROM\n  "t/#"');
  const [chosen, setChosen] = useState<(string | Record<string, unknown>)[]>([]);
  const [enable, setEnable] = useState(true);
  const [ctx, setCtx] = useState(() => (id && keptContext.get(id)) || JSON.stringify(MQTT_CONTEXT, null, 2));
  const [sqlError, setSqlError] = useState<{ line: number; col: number; message: string } | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [output, setOutput] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    const r = existing.data;
    if (!r) return;
    setDescription(r.description); setSql(r.sql); setChosen(r.actions); setEnable(r.enable);
    const kept = keptContext.get(r.id);
    const src = r.from.find((f) => f.startsWith("$bridges/"));
    if (kept) setCtx(kept);
    else if (src) setCtx(JSON.stringify(kafkaContext(src.slice(9)), null, 2));
    else if (r.from[0]) setCtx(JSON.stringify({ ...MQTT_CONTEXT, topic: sampleTopic(r.from[0]) }, null, 2));
  }, [existing.data]);

  const fail = (e: unknown) => {
    const err = asError(e);
    const pos = errorPosition(err.message);
    if (pos) {
      const text = err.message.replace(/^.*?line \d+, col(?:umn)? \d+:\s*/, "").split("\n")[0];
      setSqlError({ ...pos, message: text });
      setError(null);
    } else {
      setSqlError(null);
      setError(err);
    }
  };
  const parseCtx = (): Record<string, unknown> | null => {
    try {
      const v = JSON.parse(ctx) as unknown;
      if (v && typeof v === "object" && !Array.isArray(v)) return v as Record<string, unknown>;
    } catch { /* reported below */ }
    setError(new ApiError(0, "BAD_CONTEXT", "the test context must be a JSON object"));
    return null;
  };
  const test = async (stored: boolean) => {
    setOutput(null); setError(null); setSqlError(null);
    const context = parseCtx();
    if (!context) return;
    setBusy(true);
    try {
      const out = stored
        ? await api.post(`/rules/${enc(id!)}/test`, { context })
        : await api.post("/rule_test", { sql, context });
      setOutput(JSON.stringify(out, null, 2));
    } catch (e) {
      if (e instanceof ApiError && e.status === 412) setOutput("No output: the FROM or WHERE clause does not match this context.");
      else fail(e);
    } finally { setBusy(false); }
  };
  const save = async (ev: Event) => {
    ev.preventDefault();
    setError(null); setSqlError(null); setBusy(true);
    const actionList = prune(chosen) as (string | Record<string, unknown>)[];
    try {
      if (id) await api.put(`/rules/${enc(id)}`, { sql, actions: actionList, enable, description });
      else {
        const r = await api.post<Rule>("/rules", { ...(rid ? { id: rid } : {}), sql, actions: actionList, enable, description });
        keptContext.set(r.id, ctx);
        navigate(`/rules/${enc(r.id)}`);
        return;
      }
      await existing.reload();
    } catch (e) { fail(e); } finally { setBusy(false); }
  };
  const toggleAction = (a: string) =>
    setChosen(chosen.includes(a) ? chosen.filter((x) => x !== a) : [...chosen, a]);
  const m = metrics.data;
  return (
    <Page title={id ? `Rule ${id}` : "Create rule"} actions={id && <>
      <button type="button" class="secondary" onClick={async () => { await api.put(`/rules/${enc(id)}/metrics/reset`); await metrics.reload(); }}>Reset metrics</button>
      <button type="button" class="danger" onClick={async () => {
        if (!confirm(`Delete rule ${id}?`)) return;
        try { await api.del(`/rules/${enc(id)}`); navigate("/rules"); } catch (e) { setError(asError(e)); }
      }}>Delete</button>
    </>}>
      <ErrorBox error={existing.error} />
      {m && (
        <div class="metrics-row" aria-label="Rule metrics">
          {["matched", "passed", "failed", "filtered", "failed.exception", "failed.no_result", "actions.total", "actions.success", "actions.failed", "matched.rate"]
            .map((k) => <Metric key={k} name={k} value={m[k]} />)}
        </div>
      )}
      {lastError.data && <LastError failure={lastError.data} />}
      <div class="rule-layout">
        <form class="edit-form" onSubmit={save} noValidate>
          <div class="form-grid">
            <div class="field">
              <label for="rule-id">Rule ID</label>
              <input id="rule-id" type="text" value={rid} disabled={!!id} placeholder="generated when empty"
                onInput={(e) => setRid((e.target as HTMLInputElement).value)} />
            </div>
            <div class="field">
              <label for="rule-desc">Description</label>
              <input id="rule-desc" type="text" value={description} onInput={(e) => setDescription((e.target as HTMLInputElement).value)} />
            </div>
          </div>
          <label for="rule-sql" class="block-label">SQL</label>
          <SqlEditor id="rule-sql" label="Rule SQL" value={sql} onInput={(v) => { setSql(v); setSqlError(null); }} error={sqlError}
            catalogue={cat.data} />
          <fieldset class="group">
            <legend>Actions</legend>
            {(actions.data ?? []).length === 0 && <p class="help">No actions yet: <a href="#/actions/new">create one</a>.</p>}
            {(actions.data ?? []).map((a) => {
              const aid = `${a.type}:${a.name}`;
              return (
                <div class="field check" key={aid}>
                  <input id={`act-${aid}`} type="checkbox" checked={chosen.includes(aid)} onChange={() => toggleAction(aid)} />
                  <label for={`act-${aid}`}>{aid}</label>
                </div>
              );
            })}
          </fieldset>
          <InlineActions doc={doc.data} actions={chosen} onChange={setChosen}
            problems={inlineProblems(error?.body?.problems as { path: string; message: string }[] | undefined, id ?? rid)} />
          <div class="field check">
            <input id="rule-enable" type="checkbox" checked={enable} onChange={() => setEnable(!enable)} />
            <label for="rule-enable">Enabled</label>
          </div>
          <ErrorBox error={error} />
          <div class="form-actions">
            <button type="submit" disabled={busy}>{id ? "Save" : "Create"}</button>
            <a class="button secondary" href="#/rules">Cancel</a>
          </div>
        </form>
        <aside class="tester" aria-label="Test the SQL">
          <h2>Test</h2>
          <div class="toolbar">
            <button type="button" class="secondary small" onClick={() => setCtx(JSON.stringify(MQTT_CONTEXT, null, 2))}>MQTT message</button>
            {(sources.data ?? []).map((s) => (
              <button key={s.name} type="button" class="secondary small"
                onClick={() => setCtx(JSON.stringify(kafkaContext(`${s.type}:${s.name}`), null, 2))}>Kafka record ({s.name})</button>
            ))}
          </div>
          <label for="rule-context" class="block-label">Context (JSON)</label>
          <textarea id="rule-context" class="mono" rows={9} value={ctx} onInput={(e) => setCtx((e.target as HTMLTextAreaElement).value)} />
          <div class="form-actions">
            <button type="button" onClick={() => test(false)} disabled={busy}>Test SQL</button>
            {id && <button type="button" class="secondary" onClick={() => test(true)} disabled={busy || !existing.data}>Test saved rule's actions</button>}
          </div>
          {output !== null && <><h3>Output</h3><pre class="output" role="status">{output}</pre></>}
          <details class="examples">
            <summary>SQL examples</summary>
            <ul>
              {EXAMPLES.map((ex) => (
                <li key={ex.title}>
                  <button type="button" class="link" onClick={() => { setSql(ex.sql); setCtx(JSON.stringify(ex.context, null, 2)); setSqlError(null); }}>
                    {ex.title}
                  </button>
                  <pre class="mono small">{ex.sql}</pre>
                </li>
              ))}
            </ul>
          </details>
        </aside>
      </div>
    </Page>
  );
}
