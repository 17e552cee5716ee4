// The topology as a layered graph: Kafka topics -> inputs (sources, MQTT topic filters) -> rules
// -> actions -> outputs, placed in columns, with edges routed so that they neither merge nor run
// under another edge's rate label.
import type { Component, Metrics, Rule } from "./api";

export type NodeKind = "mqtt-in" | "kafka-in" | "source" | "rule" | "action" | "kafka-out" | "mqtt-out";

export interface FlowNode {
  id: string;
  kind: NodeKind;
  label: string;
  column: number;
  href?: string;
  status?: string;
}

export interface FlowEdge {
  from: string;
  to: string;
  /** Messages per second over the edge (undefined: not measured). */
  rate?: number;
}

// MQTT topic filters sit beside the sources, as in EMQX's flow designer: both feed rules, so
// their edges never have to cross the sources' column.
const COLUMN: Record<NodeKind, number> = {
  "kafka-in": 0, "mqtt-in": 1, source: 1, rule: 2, action: 3, "kafka-out": 4, "mqtt-out": 4,
};

/** What a node is, for its tooltip. */
export const KIND_NAME: Record<NodeKind, string> = {
  "kafka-in": "Kafka topic", "mqtt-in": "MQTT topic filter", source: "Source", rule: "Rule",
  action: "Action", "kafka-out": "Kafka topic", "mqtt-out": "MQTT topic",
};

/** The full text of a node's tooltip: what it is, its whole name, its status. */
export function nodeTitle(n: FlowNode): string {
  const name = n.kind === "rule" && n.label !== n.id.slice(5) ? `${n.label} (${n.id.slice(5)})` : n.id.slice(n.id.indexOf("/") + 1);
  return `${KIND_NAME[n.kind]}: ${name}${n.status ? ` (${n.status})` : ""}`;
}

export interface FlowInput {
  rules: Rule[];
  actions: Component[];
  sources: Component[];
  metrics: Record<string, Record<string, Metrics>>;
}

export function buildFlow(inp: FlowInput): { nodes: FlowNode[]; edges: FlowEdge[] } {
  const nodes = new Map<string, FlowNode>();
  const edges: FlowEdge[] = [];
  const add = (id: string, kind: NodeKind, label: string, extra: Partial<FlowNode> = {}) => {
    if (!nodes.has(id)) nodes.set(id, { id, kind, label, column: COLUMN[kind], ...extra });
    return id;
  };
  const rate = (kind: string, id: string) => inp.metrics[kind]?.[id]?.rate;
  const usersOf = new Map<string, string[]>();
  for (const r of inp.rules) {
    for (const a of r.actions) if (typeof a === "string") usersOf.set(a, [...(usersOf.get(a) ?? []), r.id]);
  }
  for (const s of inp.sources) {
    const sid = `${s.type}:${s.name}`;
    const src = add("source/" + sid, "source", sid, { href: `/sources/${encodeURIComponent(sid)}`, status: s.status });
    const p = (s.parameters ?? {}) as Record<string, unknown>;
    const topics = new Set<string>();
    if (typeof p.topic === "string") topics.add(p.topic);
    if (typeof p.topic_pattern === "string") topics.add(p.topic_pattern);
    for (const m of (p.topic_mapping as Record<string, unknown>[] | undefined) ?? []) {
      const kt = String(m.kafka_topic);
      topics.add(kt);
      // A mapping publishes straight to MQTT, without a rule.
      const out = add("mqtt-out/" + m.mqtt_topic, "mqtt-out", `MQTT ${m.mqtt_topic}`);
      edges.push({ from: src, to: out, rate: rate("source", sid) });
    }
    for (const t of topics) edges.push({ from: add("kafka-in/" + t, "kafka-in", `Kafka ${t}`), to: src, rate: rate("source", sid) });
  }
  for (const r of inp.rules) {
    const rid = add("rule/" + r.id, "rule", r.name || r.id, {
      href: `/rules/${encodeURIComponent(r.id)}`, status: r.enable ? "enabled" : "disabled",
    });
    const matched = inp.metrics.rule?.[r.id]?.["matched_rate"] ?? inp.metrics.rule?.[r.id]?.rate;
    // The rule's rate is one input's when it has one; with several it cannot be split.
    const inRate = r.from.length === 1 ? matched : undefined;
    for (const f of r.from) {
      if (f.startsWith("$bridges/")) {
        const sid = f.slice("$bridges/".length);
        edges.push({ from: add("source/" + sid, "source", sid, { href: `/sources/${encodeURIComponent(sid)}` }), to: rid, rate: inRate });
      } else {
        edges.push({ from: add("mqtt-in/" + f, "mqtt-in", `MQTT ${f}`), to: rid, rate: inRate });
      }
    }
    for (const a of r.actions) {
      if (typeof a !== "string") {
        const fn = String((a as Record<string, unknown>).function ?? "inline");
        const args = ((a as Record<string, unknown>).args ?? {}) as Record<string, unknown>;
        const aid = add(`inline/${r.id}/${fn}`, "action", `${fn} (inline)`);
        edges.push({ from: rid, to: aid });
        if (typeof args.topic === "string") edges.push({ from: aid, to: add("mqtt-out/" + args.topic, "mqtt-out", `MQTT ${args.topic}`) });
        continue;
      }
      const action = inp.actions.find((x) => `${x.type}:${x.name}` === a);
      const aid = add("action/" + a, "action", a, { href: `/actions/${encodeURIComponent(a)}`, status: action?.status });
      // The action's rate is the edge's when this rule is its only user; otherwise it is shared.
      const shared = (usersOf.get(a)?.length ?? 0) > 1;
      edges.push({ from: rid, to: aid, rate: shared ? undefined : rate("action", a) });
    }
  }
  for (const a of inp.actions) {
    const aid = `${a.type}:${a.name}`;
    const node = add("action/" + aid, "action", aid, { href: `/actions/${encodeURIComponent(aid)}`, status: a.status });
    const topic = (a.parameters ?? {}).topic;
    if (typeof topic !== "string") continue;
    const out = a.type === "republish"
      ? add("mqtt-out/" + topic, "mqtt-out", `MQTT ${topic}`)
      : add("kafka-out/" + topic, "kafka-out", `Kafka ${topic}`);
    edges.push({ from: node, to: out, rate: rate("action", aid) });
  }
  return { nodes: [...nodes.values()], edges };
}

export interface Placed extends FlowNode {
  x: number;
  y: number;
  /** Height: taller than the default when many edges leave or enter it, so ports stay apart. */
  h: number;
}

export interface LayoutOptions {
  nodeH: number;
  /** Vertical space between two nodes of a column. */
  gap: number;
  colW: number;
  /** Distance between two ports on a side: at least the height of a rate label. */
  portGap: number;
}

export const LAYOUT: LayoutOptions = { nodeH: 36, gap: 16, colW: 260, portGap: 15 };

/** Places nodes in their columns, ordered to keep edges short (one barycentre pass each way). */
export function layout(nodes: FlowNode[], edges: FlowEdge[], opt: LayoutOptions = LAYOUT): Placed[] {
  const cols = new Map<number, FlowNode[]>();
  for (const n of nodes) cols.set(n.column, [...(cols.get(n.column) ?? []), n]);
  const order = new Map<string, number>();
  const keys = [...cols.keys()].sort((a, b) => a - b);
  keys.forEach((c) => cols.get(c)!.forEach((n, i) => order.set(n.id, i)));
  const adj = new Map<string, string[]>();
  const ins = new Map<string, number>(), outs = new Map<string, number>();
  for (const e of edges) {
    adj.set(e.from, [...(adj.get(e.from) ?? []), e.to]);
    adj.set(e.to, [...(adj.get(e.to) ?? []), e.from]);
    outs.set(e.from, (outs.get(e.from) ?? 0) + 1);
    ins.set(e.to, (ins.get(e.to) ?? 0) + 1);
  }
  for (const pass of [keys, [...keys].reverse()]) {
    for (const c of pass) {
      const col = cols.get(c)!;
      const bary = new Map(col.map((n) => {
        const ns = (adj.get(n.id) ?? []).map((x) => order.get(x) ?? 0);
        return [n.id, ns.length ? ns.reduce((a, b) => a + b, 0) / ns.length : order.get(n.id)!];
      }));
      col.sort((a, b) => bary.get(a.id)! - bary.get(b.id)!);
      col.forEach((n, i) => order.set(n.id, i));
    }
  }
  return keys.flatMap((c, ci) => {
    let y = 0;
    return cols.get(c)!.map((n) => {
      const ports = Math.max(ins.get(n.id) ?? 0, outs.get(n.id) ?? 0);
      const h = Math.max(opt.nodeH, (ports + 1) * opt.portGap);
      const placed = { ...n, x: ci * opt.colW, y, h };
      y += h + opt.gap;
      return placed;
    });
  });
}

export interface Route {
  edge: FlowEdge;
  /** The SVG path. */
  d: string;
  /** The path as a polyline (curves sampled), for hit tests. */
  points: [number, number][];
  /** Where the rate label starts (its left end, vertically centred on the edge's first stretch). */
  label: { x: number; y: number };
  /** The edge passes over at least one column (drawn dashed, through a free lane). */
  skips: boolean;
}

export interface RouteOptions extends LayoutOptions {
  nodeW: number;
  /** Straight stretch after the out-port: the rate label sits on it. */
  stub: number;
  /** Straight stretch before the in-port, for the arrow. */
  inStub: number;
}

export const ROUTING: RouteOptions = { ...LAYOUT, nodeW: 180, stub: 48, inStub: 8 };

function cubic(p0: [number, number], p1: [number, number], p2: [number, number], p3: [number, number], n = 16): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 1; i <= n; i++) {
    const t = i / n, u = 1 - t;
    out.push([
      u * u * u * p0[0] + 3 * u * u * t * p1[0] + 3 * u * t * t * p2[0] + t * t * t * p3[0],
      u * u * u * p0[1] + 3 * u * u * t * p1[1] + 3 * u * t * t * p2[1] + t * t * t * p3[1],
    ]);
  }
  return out;
}

/**
 * Routes every edge between port points spread along its nodes' sides, so edges into or out of
 * one node never share a point: each MQTT topic filter keeps its own line into its rule.
 *
 * An edge leaves its node horizontally for `stub` pixels, where its rate label sits: only that
 * node's own edges start in that stretch, and its ports are `portGap` apart, so no label lies on
 * another edge. An edge that passes over columns runs through a lane free of nodes.
 */
export function route(placed: Placed[], edges: FlowEdge[], opt: RouteOptions = ROUTING): Route[] {
  const pos = new Map(placed.map((n) => [n.id, n]));
  const live = edges.filter((e) => pos.has(e.from) && pos.has(e.to));
  const skips = (e: FlowEdge) => pos.get(e.to)!.x - pos.get(e.from)!.x > opt.colW;
  const centre = (id: string) => { const n = pos.get(id)!; return n.y + n.h / 2; };
  // Ports in the order of the other ends, so edges of one node do not cross each other; the
  // edges that pass over columns leave last (lowest), as they turn down to their lane.
  const outPort = new Map<FlowEdge, number>(), inPort = new Map<FlowEdge, number>();
  const byNode = (key: (e: FlowEdge) => string) => {
    const m = new Map<string, FlowEdge[]>();
    for (const e of live) m.set(key(e), [...(m.get(key(e)) ?? []), e]);
    return m;
  };
  for (const [id, es] of byNode((e) => e.from)) {
    es.sort((a, b) => Number(skips(a)) - Number(skips(b)) || centre(a.to) - centre(b.to) || (a.to < b.to ? -1 : 1));
    const n = pos.get(id)!;
    es.forEach((e, i) => outPort.set(e, n.y + (n.h * (i + 1)) / (es.length + 1)));
  }
  for (const [id, es] of byNode((e) => e.to)) {
    es.sort((a, b) => centre(a.from) - centre(b.from) || (a.from < b.from ? -1 : 1));
    const n = pos.get(id)!;
    es.forEach((e, i) => inPort.set(e, n.y + (n.h * (i + 1)) / (es.length + 1)));
  }
  const lanes: number[] = [];
  // Two edges passing over columns from one node (or into one node) turn at their own x.
  const skipsFrom = new Map<string, number>(), skipsInto = new Map<string, number>();
  return live.map((e) => {
    const a = pos.get(e.from)!, b = pos.get(e.to)!;
    const x1 = a.x + opt.nodeW, y1 = outPort.get(e)!, x2 = b.x, y2 = inPort.get(e)!;
    const sx = x1 + opt.stub, ex = x2 - opt.inStub;
    const label = { x: x1 + 4, y: y1 };
    if (!skips(e)) {
      const mx = (sx + ex) / 2;
      const points: [number, number][] = [[x1, y1], [sx, y1], ...cubic([sx, y1], [mx, y1], [mx, y2], [ex, y2]), [x2, y2]];
      return { edge: e, d: `M${x1},${y1} H${sx} C${mx},${y1} ${mx},${y2} ${ex},${y2} H${x2 - 2}`, points, label, skips: false };
    }
    // A lane below the source, clear of every node of the columns passed over and of other lanes.
    const over = placed.filter((n) => n.x > a.x && n.x < b.x);
    const clear = (y: number) => over.every((n) => y < n.y - 4 || y > n.y + n.h + 4) && lanes.every((l) => Math.abs(l - y) >= 5);
    const candidates = [a.y + a.h + opt.gap / 2, ...over.map((n) => n.y + n.h + opt.gap / 2)]
      .filter((y) => y > y1).sort((p, q) => p - q);
    let lane = candidates.find(clear);
    for (let y = candidates[candidates.length - 1] ?? y1; lane === undefined; y += 5) if (clear(y)) lane = y;
    lanes.push(lane);
    const k = skipsFrom.get(e.from) ?? 0, j = skipsInto.get(e.to) ?? 0;
    skipsFrom.set(e.from, k + 1);
    skipsInto.set(e.to, j + 1);
    // The turn into the target is near its end, where edges from the previous column run level.
    const tx = sx + 4 * k, vx = ex - 2 - 4 * j;
    const points: [number, number][] = [[x1, y1], [tx, y1], [tx, lane], [vx, lane], [vx, y2], [x2, y2]];
    const d = `M${x1},${y1} H${tx} V${lane} H${vx} V${y2} H${x2 - 2}`;
    return { edge: e, d, points, label, skips: true };
  });
}

/** Points along a polyline every `step` pixels (its vertices included). */
export function sample(points: [number, number][], step = 2): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 1; i < points.length; i++) {
    const [x0, y0] = points[i - 1], [x1, y1] = points[i];
    const n = Math.max(1, Math.ceil(Math.hypot(x1 - x0, y1 - y0) / step));
    for (let k = 0; k <= n; k++) out.push([x0 + ((x1 - x0) * k) / n, y0 + ((y1 - y0) * k) / n]);
  }
  return out;
}
