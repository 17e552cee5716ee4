// The flow view: Kafka topics -> inputs -> rules -> actions -> outputs, with live per-edge rates.
import type { JSX } from "preact";
import { useMemo, useState } from "preact/hooks";
import { type Component, allRules, api, call, parsePrometheus } from "../api";
import { fmt } from "../Chart";
import { type FlowNode, type Placed, LAYOUT, ROUTING, buildFlow, layout, nodeTitle, route } from "../flow";
import { useLoad } from "../hooks";
import { navigate } from "../router";
import { ErrorBox, Page } from "../ui";

const PAD = 24, HEAD_H = 8;
const HEAD: Record<number, string> = { 0: "Kafka topics", 1: "Inputs", 2: "Rules", 3: "Actions", 4: "Outputs" };
const MAX_LABEL = 24;

/** Short enough for the stretch the label sits on: 0, 0.4, 3.5, 14, 2.3k. */
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
  const [tip, setTip] = useState<{ text: string; x: number; y: number } | null>(null);
  const graph = useMemo(() => {
    if (!data.data) return null;
    const g = buildFlow({ ...data.data, metrics: {} });
    const placed = layout(g.nodes, g.edges, LAYOUT);
    return { ...g, placed, routes: route(placed, g.edges, ROUTING) };
  }, [data.data]);
  // Rates change every poll; the layout only when the topology does.
  const rates = useMemo(() => {
    if (!data.data || !metrics.data) return new Map<string, number | undefined>();
    const g = buildFlow({ ...data.data, metrics: metrics.data });
    return new Map(g.edges.map((e) => [`${e.from}>${e.to}`, e.rate]));
  }, [data.data, metrics.data]);
  if (!graph) return <Page title="Flow"><ErrorBox error={data.error} />{!data.error && <p>Loading…</p>}</Page>;
  const byId = new Map(graph.placed.map((n) => [n.id, n]));
  const columns = [...new Set(graph.placed.map((n) => n.column))].sort();
  const width = Math.max(1, columns.length) * ROUTING.colW + PAD * 2;
  const bottom = Math.max(0, ...graph.placed.map((n) => n.y + n.h), ...graph.routes.flatMap((r) => r.points.map(([, y]) => y)));
  const height = bottom + PAD * 2 + HEAD_H + 8;
  const open = (n: FlowNode) => n.href && navigate(n.href);
  const show = (n: Placed) => setTip({ text: nodeTitle(n), x: PAD + n.x, y: PAD + HEAD_H + n.y + n.h + 4 });
  return (
    <Page title="Flow">
      <ErrorBox error={data.error ?? metrics.error} />
      <p class="help">Messages per second on each edge, refreshed every 3 seconds. Point at a node for its full name; click or press Enter on it to open it.</p>
      <div class="flow-wrap">
        <svg class="flow" width={width} height={height} viewBox={`0 0 ${width} ${height}`} role="group" aria-label="Data flow graph">
          <defs>
            <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto">
              <path d="M0,0 L10,5 L0,10 z" class="arrow" />
            </marker>
          </defs>
          {columns.map((c, i) => (
            <text key={c} x={PAD + i * ROUTING.colW} y={PAD - 6} class="col-head">{HEAD[c]}</text>
          ))}
          <g transform={`translate(${PAD},${PAD + HEAD_H})`}>
            {graph.routes.map((rt) => {
              const key = `${rt.edge.from}>${rt.edge.to}`;
              const r = rates.get(key);
              const live = (r ?? 0) > 0;
              const a = byId.get(rt.edge.from)!, b = byId.get(rt.edge.to)!;
              return (
                <g key={key} class={"edge" + (live ? " live" : "") + (rt.skips ? " skip" : "")} data-edge={key}>
                  <title>{`${nodeTitle(a)} → ${nodeTitle(b)}${r === undefined ? "" : `: ${rateText(r)} messages/s`}`}</title>
                  <path d={rt.d} marker-end="url(#arrow)" />
                  {r !== undefined && (
                    <text x={rt.label.x} y={rt.label.y} dominant-baseline="central" class="edge-rate">{`${rateText(r)}/s`}</text>
                  )}
                </g>
              );
            })}
            {graph.placed.map((n) => (
              <g key={n.id} class={`node node-${n.kind}` + (n.href ? " clickable" : "")} data-node={n.id}
                transform={`translate(${n.x},${n.y})`} tabindex={n.href ? 0 : undefined}
                role={n.href ? "link" : undefined} aria-label={nodeTitle(n)}
                onMouseEnter={() => show(n)} onMouseLeave={() => setTip(null)}
                onFocus={() => show(n)} onBlur={() => setTip(null)}
                onClick={() => open(n)} onKeyDown={(e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(n); } }}>
                <title>{nodeTitle(n)}</title>
                <rect width={ROUTING.nodeW} height={n.h} rx="6" />
                <text x="10" y={n.h / 2} dominant-baseline="central">{n.label.length > MAX_LABEL ? n.label.slice(0, MAX_LABEL - 1) + "…" : n.label}</text>
                {n.status && <circle cx={ROUTING.nodeW - 10} cy="10" r="4" class={`dot status-${n.status}`} />}
              </g>
            ))}
          </g>
        </svg>
        {tip && <div class="flow-tip" role="tooltip" style={{ left: `${tip.x}px`, top: `${tip.y}px` }}>{tip.text}</div>}
      </div>
    </Page>
  );
}
