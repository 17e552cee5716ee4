// The flow view: inputs -> rules -> actions -> outputs, with live per-edge rates.
import type { JSX } from "preact";
import { useMemo } from "preact/hooks";
import { type Component, allRules, api, call, parsePrometheus } from "../api";
import { fmt } from "../Chart";
import { type FlowNode, buildFlow, layout } from "../flow";
import { useLoad } from "../hooks";
import { navigate } from "../router";
import { ErrorBox, Page } from "../ui";

const NODE_W = 180, NODE_H = 36, COL_W = 250, ROW_H = 52, PAD = 24;
const HEAD: Record<number, string> = { 0: "Inputs", 1: "Sources", 2: "Rules", 3: "Actions", 4: "Outputs" };

/** Short enough for the gap between two columns: 0, 0.4, 3.5, 14, 2.3k. */
function rateText(r: number): string {
  if (r >= 1000) return fmt(r);
  if (r >= 10 || r === 0) return String(Math.round(r));
  return r.toFixed(1);
}

export function Flow(): JSX.Element {
  const data = useLoad(async () => {
    const [rules, actions, sources] = await Promise.all([
      allRules(),
      api.get<Component[]>("/actions"),
      api.get<Component[]>("/sources"),
    ]);
    return { rules, actions, sources };
  }, [], 15000);
  const metrics = useLoad(() => call<string>("GET", "/metrics").then(parsePrometheus), [], 3000);
  const graph = useMemo(() => {
    if (!data.data) return null;
    const g = buildFlow({ ...data.data, metrics: {} });
    return { ...g, placed: layout(g.nodes, g.edges, ROW_H, COL_W) };
  }, [data.data]);
  // Rates change every poll; the layout only when the topology does.
  const rates = useMemo(() => {
    if (!data.data || !metrics.data) return new Map<string, number | undefined>();
    const g = buildFlow({ ...data.data, metrics: metrics.data });
    return new Map(g.edges.map((e) => [`${e.from}>${e.to}`, e.rate]));
  }, [data.data, metrics.data]);
  if (!graph) return <Page title="Flow"><ErrorBox error={data.error} />{!data.error && <p>Loading…</p>}</Page>;
  const pos = new Map(graph.placed.map((n) => [n.id, n]));
  const columns = [...new Set(graph.placed.map((n) => n.column))].sort();
  const width = Math.max(1, columns.length) * COL_W + PAD * 2;
  const height = Math.max(...graph.placed.map((n) => n.y), 0) + NODE_H + PAD * 2 + 24;
  const open = (n: FlowNode) => n.href && navigate(n.href);
  return (
    <Page title="Flow">
      <ErrorBox error={data.error ?? metrics.error} />
      <p class="help">Messages per second on each edge, refreshed every 3 seconds. Click or press Enter on a node to open it.</p>
      <div class="flow-wrap">
        <svg class="flow" width={width} height={height} viewBox={`0 0 ${width} ${height}`} role="group" aria-label="Data flow graph">
          <defs>
            <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto">
              <path d="M0,0 L10,5 L0,10 z" class="arrow" />
            </marker>
          </defs>
          {columns.map((c, i) => (
            <text key={c} x={PAD + i * COL_W} y={PAD - 6} class="col-head">{HEAD[c]}</text>
          ))}
          <g transform={`translate(${PAD},${PAD + 8})`}>
            {graph.edges.map((e) => {
              const a = pos.get(e.from), b = pos.get(e.to);
              if (!a || !b) return null;
              const x1 = a.x + NODE_W, y1 = a.y + NODE_H / 2, x2 = b.x, y2 = b.y + NODE_H / 2;
              const r = rates.get(`${e.from}>${e.to}`);
              const live = (r ?? 0) > 0;
              // An edge that skips columns (a source's topic mapping straight to MQTT) runs in
              // the gap under its source's row, so it never seems to pass through other nodes.
              const skips = b.column - a.column > 1 && b.x - a.x > COL_W;
              const gap = a.y + NODE_H + (ROW_H - NODE_H) / 2;
              const d = skips
                ? `M${a.x + NODE_W / 2},${a.y + NODE_H} L${a.x + NODE_W / 2},${gap} L${x2 - 24},${gap} Q${x2 - 12},${gap} ${x2 - 12},${(gap + y2) / 2} Q${x2 - 12},${y2} ${x2 - 2},${y2}`
                : `M${x1},${y1} C${(x1 + x2) / 2},${y1} ${(x1 + x2) / 2},${y2} ${x2 - 2},${y2}`;
              const lx = skips ? (a.x + NODE_W + x2) / 2 : (x1 + x2) / 2;
              const ly = skips ? gap - 3 : (y1 + y2) / 2 - 4;
              return (
                <g key={`${e.from}>${e.to}`} class={"edge" + (live ? " live" : "") + (skips ? " skip" : "")} data-edge={`${e.from}>${e.to}`}>
                  <path d={d} marker-end="url(#arrow)" />
                  <text x={lx} y={ly} text-anchor="middle" class="edge-rate">
                    {r === undefined ? "" : `${rateText(r)}/s`}
                  </text>
                </g>
              );
            })}
            {graph.placed.map((n) => (
              <g key={n.id} class={`node node-${n.kind}` + (n.href ? " clickable" : "")} data-node={n.id}
                transform={`translate(${n.x},${n.y})`} tabindex={n.href ? 0 : undefined}
                role={n.href ? "link" : undefined} aria-label={n.label}
                onClick={() => open(n)} onKeyDown={(e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(n); } }}>
                <rect width={NODE_W} height={NODE_H} rx="6" />
                <text x="10" y="23">{n.label.length > 24 ? n.label.slice(0, 23) + "…" : n.label}</text>
                {n.status && <circle cx={NODE_W - 10} cy="10" r="4" class={`dot status-${n.status}`} />}
                <title>{n.label}{n.status ? ` (${n.status})` : ""}</title>
              </g>
            ))}
          </g>
        </svg>
      </div>
    </Page>
  );
}
