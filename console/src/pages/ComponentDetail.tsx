// An action's or source's page: status, every metric, charts of the last hour (the server's
// history, then live samples), reset, enable/disable.
import type { JSX } from "preact";
import { useState } from "preact/hooks";
import { type Component, type Kind, type NodeMetrics, api } from "../api";
import { Chart, HISTORY_MS, type History, WINDOWS, historyPoints, record, samples, seed } from "../Chart";
import { useLoad } from "../hooks";
import { enc, navigate } from "../router";
import { ErrorBox, Metric, Notice, Page, Status, asError } from "../ui";
import { ONE } from "./ComponentList";

const POLL_MS = 2000;

// The latest output that failed (the log is rate-limited; this always shows the newest).
interface LastError { reason: string; message: string; at: number }
const lastError = (c: Component): LastError | null => (c.last_error as LastError | null | undefined) ?? null;
const GAUGES = ["queuing", "inflight"];
const RATES = ["rate", "rate_max", "rate_last5m"];
// The columns of the per-node table, those the component has.
const BY_NODE = ["matched", "received", "success", "failed", "dropped", "queuing", "inflight", "rate"];
const FAILURE_COLORS = ["#dc2626", "#ea580c", "#a16207", "#be185d", "#7c2d12", "#6d28d9"];

function isFailure(k: string): boolean {
  return k.startsWith("failed") || k.startsWith("dropped") || k === "retried" || k === "late_reply";
}

export function ComponentDetail({ kind, id }: { kind: Kind; id: string }): JSX.Element {
  const comp = useLoad(() => api.get<Component>(`/${kind}/${enc(id)}`), [kind, id], 5000);
  const [now, setNow] = useState(Date.now());
  const [span, setSpan] = useState(HISTORY_MS);
  // The hour before the page opened, from the server: a page opened during an incident shows it.
  const history = useLoad(async () => {
    const h = await api.get<History>(`/${kind}/${enc(id)}/metrics/history`);
    const t = Date.now();
    for (const k of Object.keys(h.metrics)) if (k === "rate" || GAUGES.includes(k) || isFailure(k)) seed(`${kind}/${id}/${k}`, historyPoints(h, k), t);
    setNow(t);
    return h.t.length;
  }, [kind, id]);
  const metrics = useLoad(async () => {
    const m = await api.get<NodeMetrics>(`/${kind}/${enc(id)}/metrics`);
    const t = Date.now();
    for (const k of ["rate", ...GAUGES, ...Object.keys(m.metrics).filter(isFailure)]) {
      if (k in m.metrics) record(`${kind}/${id}/${k}`, t, m.metrics[k]);
    }
    setNow(t);
    return m;
  }, [kind, id], POLL_MS);
  const summary = useLoad(() => api.get<{ type: string; name: string; rules: string[] }[]>(`/${kind}_summary`)
    .then((all) => all.find((x) => `${x.type}:${x.name}` === id)?.rules ?? []), [kind, id], 10000);
  const [msg, setMsg] = useState<string | null>(null);
  const [err, setErr] = useState<unknown>(null);
  const run = async (what: string, fn: () => Promise<unknown>) => {
    setErr(null); setMsg(null);
    try { await fn(); setMsg(what); await Promise.all([comp.reload(), metrics.reload()]); } catch (e) { setErr(e); }
  };
  // The cluster's total (this node's alone without a cluster), and each node's.
  const m = metrics.data?.metrics ?? {};
  const perNode = metrics.data?.node_metrics ?? [];
  const nodeColumns = BY_NODE.filter((k) => perNode.some((n) => k in n.metrics));
  const counters = Object.keys(m).filter((k) => !GAUGES.includes(k) && !RATES.includes(k));
  const failures = counters.filter(isFailure);
  const ok = counters.filter((k) => !failures.includes(k));
  const c = comp.data;
  const enabled = c?.enable !== false;
  const series = (k: string, name: string, color: string) => ({ name, color, points: samples(`${kind}/${id}/${k}`) });
  return (
    <Page title={`${ONE[kind][0].toUpperCase()}${ONE[kind].slice(1)} ${id}`} actions={<>
      <a class="button secondary" href={`#/${kind}/${enc(id)}/edit`}>Edit</a>
      <button type="button" class="secondary" onClick={() => run(enabled ? "Disabled" : "Enabled", () => api.put(`/${kind}/${enc(id)}/enable/${!enabled}`))}>
        {enabled ? "Disable" : "Enable"}
      </button>
      <button type="button" class="secondary" onClick={() => run("Metrics reset", () => api.put(`/${kind}/${enc(id)}/metrics/reset`))}>Reset metrics</button>
      <button type="button" class="danger" onClick={() => {
        if (confirm(`Delete ${ONE[kind]} ${id}?`)) void run("Deleted", async () => { await api.del(`/${kind}/${enc(id)}`); navigate(`/${kind}`); });
      }}>Delete</button>
    </>}>
      <ErrorBox error={comp.error} />
      <ErrorBox error={err ? asError(err) : null} />
      {msg && <Notice kind="ok">{msg}</Notice>}
      {c && (
        <dl class="facts">
          <dt>Status</dt><dd><Status status={c.status} reason={c.status_reason} /> {c.status_reason && <span class="reason">{c.status_reason}</span>}</dd>
          <dt>Connector</dt><dd>{c.connector ? <a href={`#/connectors/${enc(`${c.type}:${c.connector}`)}/edit`}>{c.connector}</a> : "–"}</dd>
          <dt>Enabled</dt><dd>{enabled ? "yes" : "no"}</dd>
          <dt>Rules</dt><dd class="rule-links">{(summary.data ?? []).length === 0 ? "none" : summary.data!.map((r) => (
            <a key={r} href={`#/rules/${enc(r)}`}>{r}</a>))}</dd>
          {typeof c.parameters?.topic === "string" && <><dt>Topic</dt><dd class="mono">{c.parameters.topic}</dd></>}
          {lastError(c) && <><dt>Last error</dt><dd class="last-error"><span class="mono">{lastError(c)!.reason}</span>{" "}
            {lastError(c)!.message} <span class="reason">({new Date(lastError(c)!.at).toLocaleString()})</span></dd></>}
        </dl>
      )}
      <h2>Rates</h2>
      <div class="metrics-row">
        <Metric name="rate (msg/s)" value={m.rate} />
        <Metric name="rate max" value={m.rate_max} />
        <Metric name="rate last 5m" value={m.rate_last5m} />
        {GAUGES.filter((g) => g in m).map((g) => <Metric key={g} name={g} value={m[g]} />)}
      </div>
      <div class="toolbar chart-window" role="group" aria-label="Chart period">
        {WINDOWS.map((w) => (
          <button key={w.ms} type="button" class={"secondary small" + (w.ms === span ? " active" : "")} aria-pressed={w.ms === span}
            onClick={() => setSpan(w.ms)}>Last {w.label}</button>
        ))}
        <span class="help">{history.data ? `${history.data} sample${history.data === 1 ? "" : "s"} from the server's history, then live` : history.error ? "no history from the server" : ""}</span>
      </div>
      <div class="charts">
        <Chart title="Rate (messages/s)" now={now} window={span} unit="/s" series={[series("rate", "rate", "#2563eb")]} />
        <Chart title="Queuing and inflight" now={now} window={span} series={[series("queuing", "queuing", "#d97706"), series("inflight", "inflight", "#7c3aed")]} />
        <Chart title="Failures by reason (counters)" now={now} window={span}
          series={failures.map((k, i) => series(k, k, FAILURE_COLORS[i % FAILURE_COLORS.length]))} />
      </div>
      <h2>By node</h2>
      <div class="table-wrap">
        <table class="list" aria-label="Metrics by node">
          <thead><tr><th scope="col">Node</th>{nodeColumns.map((k) => <th key={k} scope="col" class="num">{k}</th>)}</tr></thead>
          <tbody>
            {perNode.map((n) => (
              <tr key={n.node} data-id={n.node}>
                <td class="mono"><a href="#/nodes">{n.node}</a></td>
                {nodeColumns.map((k) => <td key={k} class="num">{n.metrics[k] ?? "–"}</td>)}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <h2>Counters</h2>
      <div class="metrics-row">{ok.map((k) => <Metric key={k} name={k} value={m[k]} />)}</div>
      <h2>Failures by reason</h2>
      <div class="metrics-row">{failures.map((k) => <Metric key={k} name={k} value={m[k]} />)}</div>
    </Page>
  );
}
