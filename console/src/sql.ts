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
