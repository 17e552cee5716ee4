// A tokenizer of EMQX's rule SQL for highlighting (not a parser: the API compiles the SQL).

export type TokenKind = "keyword" | "string" | "topic" | "number" | "comment" | "func" | "op" | "ident" | "space";

export interface Token {
  kind: TokenKind;
  text: string;
}

const KEYWORDS = new Set(
  ("select from where and or not as case when then else end foreach do incase in is null true " +
    "false div mod like").split(" "),
);

const RULES: [TokenKind, RegExp][] = [
  ["space", /^\s+/],
  ["comment", /^(--[^\n]*|\/\*[\s\S]*?(\*\/|$))/],
  ["string", /^'(?:[^'\\]|\\.)*('|$)/],
  ["topic", /^"(?:[^"\\]|\\.)*("|$)/],
  ["number", /^-?\d+(\.\d+)?([eE][-+]?\d+)?/],
  ["ident", /^[A-Za-z_$][A-Za-z0-9_$]*/],
  ["op", /^(<=|>=|!=|<>|=~|[-+*/=<>(),.[\]|])/],
];

export function tokenize(sql: string): Token[] {
  const out: Token[] = [];
  let rest = sql;
  while (rest.length) {
    let hit = false;
    for (const [kind, re] of RULES) {
      const m = re.exec(rest);
      if (!m || !m[0]) continue;
      let k = kind;
      if (kind === "ident") {
        if (KEYWORDS.has(m[0].toLowerCase())) k = "keyword";
        else if (/^\s*\(/.test(rest.slice(m[0].length))) k = "func";
      }
      out.push({ kind: k, text: m[0] });
      rest = rest.slice(m[0].length);
      hit = true;
      break;
    }
    if (!hit) {
      out.push({ kind: "op", text: rest[0] });
      rest = rest.slice(1);
    }
  }
  return out;
}

/** Tokens split at newlines: one list per line of the SQL. */
export function tokenLines(sql: string): Token[][] {
  const lines: Token[][] = [[]];
  for (const t of tokenize(sql)) {
    const parts = t.text.split("\n");
    parts.forEach((part, i) => {
      if (i > 0) lines.push([]);
      if (part) lines[lines.length - 1].push({ kind: t.kind, text: part });
    });
  }
  return lines;
}

export interface Example {
  title: string;
  sql: string;
  context: Record<string, unknown>;
}

/** Examples in the shape of EMQX's SQL examples page, runnable in the tester. */
export const EXAMPLES: Example[] = [
  {
    title: "Forward every message",
    sql: 'SELECT\n  *\nFROM\n  "t/#"',
    context: { topic: "t/1", payload: '{"temp": 21.5}', clientid: "c_emqx", qos: 1 },
  },
  {
    title: "Pick fields from a JSON payload",
    sql: 'SELECT\n  payload.temp AS temp,\n  clientid,\n  timestamp\nFROM\n  "sensors/+/temp"',
    context: { topic: "sensors/1/temp", payload: '{"temp": 21.5}', clientid: "sensor-1" },
  },
  {
    title: "Filter with WHERE",
    sql: 'SELECT\n  payload.temp AS temp\nFROM\n  "sensors/#"\nWHERE\n  payload.temp > 30',
    context: { topic: "sensors/1", payload: '{"temp": 35}', clientid: "sensor-1" },
  },
  {
    title: "Split an array with FOREACH",
    sql: 'FOREACH\n  payload.readings AS r\nDO\n  r.id AS id, r.v AS value\nFROM\n  "bulk/#"',
    context: { topic: "bulk/1", payload: '{"readings": [{"id": 1, "v": 3}, {"id": 2, "v": 4}]}' },
  },
  {
    title: "Topic levels and functions",
    sql: "SELECT\n  nth(2, split(topic, '/')) AS device,\n  upper(payload.state) AS state\nFROM\n  \"devices/+/state\"",
    context: { topic: "devices/d42/state", payload: '{"state": "on"}' },
  },
  {
    title: "Records from a Kafka source",
    sql: 'SELECT\n  value, key, topic, offset\nFROM\n  "$bridges/kafka_consumer:my-source"',
    context: {
      event: "$bridges/kafka_consumer:my-source", topic: "orders", key: "k1", value: '{"id": 7}',
      offset: 0, headers: {}, ts: 1700000000000, ts_type: "create",
    },
  },
];

/** A function of GET /rule_functions. */
export interface FunctionInfo {
  name: string;
  args: string[];
  min_args: number;
  max_args: number | null;
  description: string;
}

/** An event of GET /rule_events, with the columns its rules select. */
export interface EventInfo {
  event: string;
  title: string;
  source_type?: string;
  columns: { name: string; description: string }[];
}

export interface Catalogue {
  functions: FunctionInfo[];
  events: EventInfo[];
}

export interface Completion {
  kind: "column" | "function" | "keyword";
  label: string;
  /** What replaces the word being typed. */
  insert: string;
  detail: string;
}

const COMPLETION_KEYWORDS = ["SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "AS", "CASE", "WHEN", "THEN", "ELSE",
  "END", "FOREACH", "DO", "INCASE", "IN", "IS", "NULL", "LIKE"];

/** The columns the SQL's FROM selects: a source's (`"$bridges/<type>:<name>"`) or an MQTT message's. */
export function columnsFor(sql: string, events: EventInfo[]): EventInfo["columns"] {
  const toks = tokenize(sql).filter((t) => t.kind !== "space" && t.kind !== "comment");
  const from = toks.findIndex((t) => t.kind === "keyword" && t.text.toLowerCase() === "from");
  const topics = from < 0 ? [] : toks.slice(from + 1).filter((t) => t.kind === "topic").map((t) => t.text.replace(/^"|"$/g, ""));
  const chosen: EventInfo[] = [];
  for (const topic of topics) {
    const m = /^\$(?:bridges|sources)\/([^:]+):/.exec(topic);
    const ev = m ? events.find((e) => e.source_type === m[1]) : events.find((e) => e.event === "message.publish");
    if (ev && !chosen.includes(ev)) chosen.push(ev);
  }
  if (!chosen.length) {
    const mqtt = events.find((e) => e.event === "message.publish");
    if (mqtt) chosen.push(mqtt);
  }
  const seen = new Set<string>();
  return chosen.flatMap((e) => e.columns).filter((c) => !seen.has(c.name) && (seen.add(c.name), true));
}

/** The word being typed at `caret`: where it starts and its text; null inside a string, a topic,
 * a comment or a path (`payload.te`). */
export function wordAt(sql: string, caret: number): { start: number; prefix: string } | null {
  const before = sql.slice(0, caret);
  const toks = tokenize(before);
  const last = toks[toks.length - 1];
  if (last && ["string", "topic", "comment", "number"].includes(last.kind)) return null;
  const m = /[A-Za-z_][A-Za-z0-9_]*$/.exec(before);
  const start = m ? caret - m[0].length : caret;
  if (before[start - 1] === "." || before[start - 1] === "$") return null;
  return { start, prefix: m ? m[0] : "" };
}

function signature(f: FunctionInfo): string {
  const args = f.args.map((a, i) => (i >= f.min_args && !a.endsWith("...") ? `[${a}]` : a));
  return `${f.name}(${args.join(", ")})`;
}

/**
 * Completions at `caret`: the columns of the SQL's event, the functions, then keywords, whose
 * names start with the word typed (case-insensitive). Nothing for an empty word unless `force`
 * (Ctrl+Space).
 */
export function complete(sql: string, caret: number, cat: Catalogue, force = false, limit = 12):
  { start: number; items: Completion[] } | null {
  const w = wordAt(sql, caret);
  if (!w || (!w.prefix && !force)) return null;
  const p = w.prefix.toLowerCase();
  const hit = (name: string) => name.toLowerCase().startsWith(p) && name.toLowerCase() !== p;
  const items: Completion[] = [
    ...columnsFor(sql, cat.events).filter((c) => hit(c.name))
      .map((c): Completion => ({ kind: "column", label: c.name, insert: c.name, detail: c.description })),
    ...cat.functions.filter((f) => hit(f.name))
      .map((f): Completion => ({ kind: "function", label: signature(f), insert: `${f.name}(`, detail: f.description })),
    ...COMPLETION_KEYWORDS.filter((k) => p && hit(k))
      .map((k): Completion => ({ kind: "keyword", label: k, insert: w.prefix === w.prefix.toLowerCase() ? k.toLowerCase() : k, detail: "" })),
  ];
  return items.length ? { start: w.start, items: items.slice(0, limit) } : null;
}
