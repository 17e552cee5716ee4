// The topology as a layered graph: inputs -> rules -> actions/sources -> outputs.
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

const COLUMN: Record<NodeKind, number> = {
  "kafka-in": 0, "mqtt-in": 0, source: 1, rule: 2, action: 3, "kafka-out": 4, "mqtt-out": 4,
};

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
    for (const f of r.from) {
      if (f.startsWith("$bridges/")) {
        const sid = f.slice("$bridges/".length);
        edges.push({ from: add("source/" + sid, "source", sid, { href: `/sources/${encodeURIComponent(sid)}` }), to: rid, rate: matched });
      } else {
        edges.push({ from: add("mqtt-in/" + f, "mqtt-in", `MQTT ${f}`), to: rid, rate: matched });
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
}

/** Places nodes in their columns, ordered to keep edges short (one barycentre pass each way). */
export function layout(nodes: FlowNode[], edges: FlowEdge[], rowH = 56, colW = 220): Placed[] {
  const cols = new Map<number, FlowNode[]>();
  for (const n of nodes) cols.set(n.column, [...(cols.get(n.column) ?? []), n]);
  const order = new Map<string, number>();
  const keys = [...cols.keys()].sort((a, b) => a - b);
  keys.forEach((c) => cols.get(c)!.forEach((n, i) => order.set(n.id, i)));
  const neighbours = (id: string) => edges.flatMap((e) => (e.from === id ? [e.to] : e.to === id ? [e.from] : []));
  for (const pass of [keys, [...keys].reverse()]) {
    for (const c of pass) {
      const col = cols.get(c)!;
      const bary = (n: FlowNode) => {
        const ns = neighbours(n.id).map((x) => order.get(x) ?? 0);
        return ns.length ? ns.reduce((a, b) => a + b, 0) / ns.length : order.get(n.id)!;
      };
      col.sort((a, b) => bary(a) - bary(b));
      col.forEach((n, i) => order.set(n.id, i));
    }
  }
  const used = keys;
  return used.flatMap((c, ci) => cols.get(c)!.map((n, i) => ({ ...n, x: ci * colW, y: i * rowH })));
}
