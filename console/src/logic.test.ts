import { describe, expect, it } from "vitest";
import { bytes, errorPosition, parsePrometheus, uptime } from "./api";
import { HISTORY_MS, historyPoints, mergeSamples, segments } from "./Chart";
import { type FlowInput, ROUTING, buildFlow, layout, nodeTitle, route, sample } from "./flow";
import { type OpenApi, errorProblems, fields, isBasic, problemsByField, prune, typeSchemas, variantIndex } from "./schema";
import { type Catalogue, columnsFor, complete, tokenLines, tokenize, wordAt } from "./sql";
import { argsSchema, inlineProblems, inlineTypes } from "./pages/InlineActions";
import { mqttSchema } from "./pages/MqttSettings";

const doc: OpenApi = {
  paths: {
    "/api/v5/connectors": {
      post: { requestBody: { content: { "application/json": { schema: { oneOf: [{ $ref: "#/components/schemas/kp" }] } } } } },
    },
  },
  components: {
    schemas: {
      kp: {
        type: "object",
        required: ["bootstrap_hosts", "type", "name"],
        properties: {
          type: { type: "string", const: "kafka_producer" },
          name: { type: "string" },
          bootstrap_hosts: { type: "string" },
          connect_timeout: { type: "number", default: 5 },
          authentication: { anyOf: [{ type: "string", const: "none" }, { $ref: "#/components/schemas/sasl" }], default: "none" },
          ssl: { $ref: "#/components/schemas/tls" },
          group_id: { anyOf: [{ type: "string" }, { type: "null" }] },
          password: { anyOf: [{ type: "string", format: "password" }, { type: "null" }] },
          tags: { type: "array", items: { type: "string" } },
        },
      },
      sasl: { type: "object", properties: { mechanism: { type: "string", enum: ["plain"] } } },
      tls: { type: "object", properties: { enable: { type: "boolean", default: false } } },
    },
  },
};

describe("schema", () => {
  it("finds each type's settings model in the POST body", () => {
    expect(Object.keys(typeSchemas(doc, "connectors"))).toEqual(["kafka_producer"]);
    expect(typeSchemas(doc, "sources")).toEqual({});
  });
  it("classifies fields", () => {
    const fs = Object.fromEntries(fields(doc, typeSchemas(doc, "connectors").kafka_producer).map((f) => [f.name, f]));
    expect(fs.type.kind).toBe("hidden");
    expect(fs.bootstrap_hosts.kind).toBe("string");
    expect(fs.bootstrap_hosts.required).toBe(true);
    expect(fs.connect_timeout.kind).toBe("number");
    expect(fs.authentication.kind).toBe("choice");
    expect(fs.authentication.variants?.length).toBe(2);
    expect(fs.ssl.kind).toBe("object");
    expect(fs.group_id).toMatchObject({ kind: "string", nullable: true });
    expect(fs.password.kind).toBe("password");
    expect(fs.tags.kind).toBe("list");
    expect(isBasic(fs.connect_timeout)).toBe(false);
    expect(isBasic(fs.bootstrap_hosts)).toBe(true);
  });
  it("picks the variant a value belongs to", () => {
    const vs = [{ type: "string", const: "none" }, { type: "object", properties: {} }];
    expect(variantIndex(vs, "none")).toBe(0);
    expect(variantIndex(vs, { mechanism: "plain" })).toBe(1);
  });
  it("prunes undefined values and maps problems to fields", () => {
    expect(prune({ a: undefined, b: { c: undefined, d: 1 } })).toEqual({ b: { d: 1 } });
    expect(errorProblems(undefined, "body.kafka_producer.parameters.topic: Field required", "actions.kafka_producer.s",
      "kafka_producer")).toEqual({ "parameters.topic": "Field required" });
    expect(errorProblems({ problems: [{ path: "actions.kafka_producer.s.connector", message: "unknown" }] }, "x",
      "actions.kafka_producer.s", "kafka_producer")).toEqual({ connector: "unknown" });
    expect(problemsByField([{ path: "actions.kafka_producer.s.parameters.topic", message: "Field required" }],
      "actions.kafka_producer.s")).toEqual({ "parameters.topic": "Field required" });
  });
});

describe("sql", () => {
  it("highlights keywords, topics, strings and functions", () => {
    const kinds = tokenize(`SELECT upper(payload.x) AS y FROM "t/#" WHERE a = 'b'`).filter((t) => t.kind !== "space");
    expect(kinds.map((t) => t.kind)).toEqual(["keyword", "func", "op", "ident", "op", "ident", "op", "keyword", "ident",
      "keyword", "topic", "keyword", "ident", "op", "string"]);
  });
  it("splits tokens at newlines and keeps the text", () => {
    const sql = 'SELECT\n  *\nFROM\n  "t/\n#"';
    const lines = tokenLines(sql);
    expect(lines.length).toBe(5);
    expect(lines.map((l) => l.map((t) => t.text).join("")).join("\n")).toBe(sql);
  });
  it("finds the line and column of an API error", () => {
    expect(errorPosition("rules.r.sql: line 2, col 8: unexpected 'FROM'")).toEqual({ line: 2, col: 8 });
    expect(errorPosition("no position")).toBeNull();
  });
});

describe("prometheus", () => {
  it("reads counters and gauges by kind and id", () => {
    const text = [
      "# HELP mqferry_rule_matched_total x",
      'mqferry_rule_matched_total{id="r1"} 12.0',
      'mqferry_rule_failed_no_result_total{id="r1"} 1.0',
      'mqferry_action_queuing{id="kafka_producer:s",type="kafka_producer"} 3.0',
      'mqferry_status{id="x",kind="connector",status="connected"} 1.0',
    ].join("\n");
    const m = parsePrometheus(text);
    expect(m.rule.r1).toEqual({ matched: 12, failed_no_result: 1 });
    expect(m.action["kafka_producer:s"].queuing).toBe(3);
  });
});

describe("flow", () => {
  it("draws topic filters, sources, rules, actions and topics with rates", () => {
    const g = buildFlow({
      rules: [
        { id: "r1", name: "", sql: "", actions: ["kafka_producer:s"], enable: true, description: "", from: ["t/#"] },
        { id: "r2", name: "", sql: "", actions: [{ function: "republish", args: { topic: "out/1" } }], enable: true,
          description: "", from: ["$bridges/kafka_consumer:in"] },
      ],
      actions: [{ type: "kafka_producer", name: "s", status: "connected", parameters: { topic: "k-out" } }],
      sources: [{ type: "kafka_consumer", name: "in", status: "connected", parameters: { topic: "k-in" } }],
      metrics: { rule: { r1: { rate: 2 } }, action: { "kafka_producer:s": { rate: 2 } }, source: { "kafka_consumer:in": { rate: 5 } } },
    });
    const edges = g.edges.map((e) => `${e.from}>${e.to}=${e.rate ?? "-"}`).sort();
    expect(edges).toEqual([
      "action/kafka_producer:s>kafka-out/k-out=2",
      "inline/r2/republish>mqtt-out/out/1=-",
      "kafka-in/k-in>source/kafka_consumer:in=5",
      "mqtt-in/t/#>rule/r1=2",
      "rule/r1>action/kafka_producer:s=2",
      "rule/r2>inline/r2/republish=-",
      "source/kafka_consumer:in>rule/r2=-",
    ]);
    const placed = layout(g.nodes, g.edges);
    expect(new Set(placed.map((n) => `${n.x},${n.y}`)).size).toBe(placed.length);
  });

  const rule = (id: string, from: string[], actions: (string | Record<string, unknown>)[] = []) =>
    ({ id, name: "", sql: "", actions, enable: true, description: "", from });
  // Fan-in, fan-out, a filter shared by rules, a source mapping straight to MQTT (over two columns).
  const busy: FlowInput = {
    rules: [
      rule("r1", ["a/#", "b/#", "c/+/d"], ["kafka_producer:s1", "kafka_producer:s2"]),
      rule("r2", ["b/#"], ["kafka_producer:s1"]),
      rule("r3", ["$bridges/kafka_consumer:in"], ["republish:back"]),
      rule("r4", ["e/#"], [{ function: "republish", args: { topic: "x/1" } }]),
    ],
    actions: [
      { type: "kafka_producer", name: "s1", status: "connected", parameters: { topic: "k1" } },
      { type: "kafka_producer", name: "s2", status: "connected", parameters: { topic: "k2" } },
      { type: "republish", name: "back", status: "connected", parameters: { topic: "m/back" } },
    ],
    sources: [{ type: "kafka_consumer", name: "in", status: "connected",
      parameters: { topic: "k-in", topic_mapping: [{ kafka_topic: "k-in", mqtt_topic: "m/1" }, { kafka_topic: "k-in", mqtt_topic: "m/2" }] } }],
    metrics: { rule: { r1: { rate: 9 }, r2: { rate: 3 }, r3: { rate: 1 } }, action: { "kafka_producer:s2": { rate: 9 } }, source: { "kafka_consumer:in": { rate: 5 } } },
  };

  it("gives each MQTT topic filter its own edge and its own end at the rule", () => {
    const g = buildFlow(busy);
    const into = g.edges.filter((e) => e.to === "rule/r1");
    expect(into.map((e) => e.from).sort()).toEqual(["mqtt-in/a/#", "mqtt-in/b/#", "mqtt-in/c/+/d"]);
    // The rule's rate cannot be split between three filters; r2 has one.
    expect(into.every((e) => e.rate === undefined)).toBe(true);
    expect(g.edges.find((e) => e.to === "rule/r2")?.rate).toBe(3);
    const placed = layout(g.nodes, g.edges);
    const routes = route(placed, g.edges);
    const ends = routes.filter((r) => r.edge.to === "rule/r1").map((r) => r.points[r.points.length - 1].join(","));
    expect(new Set(ends).size).toBe(3);
    // Filters sit beside the sources: their edges cross no column and are not dashed.
    expect(routes.filter((r) => r.edge.from.startsWith("mqtt-in/")).every((r) => !r.skips)).toBe(true);
  });

  it("puts rate labels where no other edge passes, and lanes clear of nodes", () => {
    const g = buildFlow(busy);
    const placed = layout(g.nodes, g.edges);
    const routes = route(placed, g.edges);
    const labelled = routes.filter((r) => r.edge.rate !== undefined);
    expect(labelled.length).toBeGreaterThan(4);
    for (const r of labelled) {
      // A label is at most "2.3k/s" (about 40 px of 11 px bold text) on its own stretch.
      const box = { x0: r.label.x, x1: r.label.x + 40, y0: r.label.y - 6, y1: r.label.y + 6 };
      for (const other of routes) {
        if (other === r) continue;
        const hit = sample(other.points).find(([x, y]) => x > box.x0 && x < box.x1 && y > box.y0 && y < box.y1);
        expect(hit, `${other.edge.from}>${other.edge.to} under the label of ${r.edge.from}>${r.edge.to}`).toBeUndefined();
      }
    }
    for (const r of routes.filter((x) => x.skips)) {
      for (const n of placed) {
        if (n.id === r.edge.from || n.id === r.edge.to) continue;
        const inside = sample(r.points).find(([x, y]) => x > n.x && x < n.x + ROUTING.nodeW && y > n.y && y < n.y + n.h);
        expect(inside, `${r.edge.from}>${r.edge.to} through ${n.id}`).toBeUndefined();
      }
    }
    // No two edges share a stretch: sampled points of distinct edges rarely coincide (crossings only).
    const seen = new Map<string, number>();
    routes.forEach((r, i) => sample(r.points, 4).slice(1, -1).forEach(([x, y]) => {
      const k = `${Math.round(x)},${Math.round(y)}`;
      if (seen.has(k) && seen.get(k) !== i) seen.set(k, -1); else if (!seen.has(k)) seen.set(k, i);
    }));
    expect([...seen.values()].filter((v) => v === -1).length).toBeLessThan(12);
  });

  it("names every node in full for its tooltip", () => {
    const long = "factory/line-42/station-7/sensors/+/temperature";
    const g = buildFlow({ ...busy, rules: [rule("r9", [long])] });
    const n = g.nodes.find((x) => x.id === `mqtt-in/${long}`)!;
    expect(nodeTitle(n)).toBe(`MQTT topic filter: ${long}`);
    expect(nodeTitle(g.nodes.find((x) => x.id === "source/kafka_consumer:in")!)).toBe("Source: kafka_consumer:in (connected)");
  });
});

describe("charts", () => {
  it("turn the server's history into points, a sample of a stopped component into a gap", () => {
    const h = { interval: 5, t: [1000, 6000, 11000], metrics: { rate: [1, null, 3] } };
    const pts = historyPoints(h, "rate");
    expect(pts.map(([t]) => t)).toEqual([1000, 6000, 11000]);
    expect(Number.isNaN(pts[1][1])).toBe(true);
    expect(segments(pts, 0)).toEqual([[[1000, 1]], [[11000, 3]]]);
    expect(segments(pts, 5000)).toEqual([[[11000, 3]]]);
    expect(historyPoints(h, "inflight").every(([, v]) => Number.isNaN(v))).toBe(true);
  });
  it("merge live samples with the history in time order, within the hour", () => {
    const now = 10 * HISTORY_MS;
    const live: [number, number][] = [[now - 2000, 7], [now, 8]];
    const hist: [number, number][] = [[now - HISTORY_MS - 1, 0], [now - 5000, 5], [now, 99]];
    expect(mergeSamples(live, hist, now - HISTORY_MS)).toEqual([[now - 5000, 5], [now - 2000, 7], [now, 8]]);
  });
});

const cat: Catalogue = {
  functions: [
    { name: "upper", args: ["s"], min_args: 1, max_args: 1, description: "Upper-case." },
    { name: "map_get", args: ["key", "data", "default"], min_args: 2, max_args: 3, description: "A map's value." },
    { name: "clientid", args: [], min_args: 0, max_args: 0, description: "The clientid column." },
  ],
  events: [
    { event: "message.publish", title: "MQTT message", columns: [
      { name: "payload", description: "the payload" }, { name: "clientid", description: "the publisher" }, { name: "topic", description: "" }] },
    { event: "$bridges/kafka_consumer:*", title: "kafka_consumer source", source_type: "kafka_consumer", columns: [
      { name: "value", description: "the record's value" }, { name: "key", description: "" }, { name: "topic", description: "" }] },
  ],
};

describe("sql completion", () => {
  it("completes columns of the FROM's event, then functions, then keywords", () => {
    const sql = 'SELECT cl FROM "t/#"';
    const r = complete(sql, "SELECT cl".length, cat)!;
    expect(r.start).toBe(7);
    expect(r.items.map((i) => `${i.kind}:${i.label}`)).toEqual(["column:clientid", "function:clientid()"]);
    expect(r.items[1].insert).toBe("clientid(");
    const kafka = 'SELECT v FROM "$bridges/kafka_consumer:in"';
    expect(complete(kafka, 8, cat)!.items.map((i) => i.label)).toEqual(["value"]);
    expect(columnsFor(kafka, cat.events).map((c) => c.name)).toEqual(["value", "key", "topic"]);
    expect(complete("SELECT map", 10, cat)!.items[0].label).toBe("map_get(key, data, [default])");
    expect(complete("sel", 3, cat)!.items).toEqual([{ kind: "keyword", label: "SELECT", insert: "select", detail: "" }]);
  });
  it("stays quiet in strings, topics, paths and numbers, and on an empty word unless asked", () => {
    expect(complete("SELECT 'up", 10, cat)).toBeNull();
    expect(complete('SELECT * FROM "up', 17, cat)).toBeNull();
    expect(complete("SELECT payload.cl", 17, cat)).toBeNull();
    expect(complete("SELECT 12", 9, cat)).toBeNull();
    expect(complete("SELECT ", 7, cat)).toBeNull();
    expect(complete("SELECT ", 7, cat, true)!.items.length).toBeGreaterThan(3);
    expect(wordAt("a upp", 5)).toEqual({ start: 2, prefix: "upp" });
    // A complete name needs no completion.
    expect(complete("SELECT upper", 12, cat)).toBeNull();
  });
});

const actionsDoc: OpenApi = {
  paths: {
    "/api/v5/actions": { post: { requestBody: { content: { "application/json": { schema: { oneOf: [
      { $ref: "#/components/schemas/rp" }, { $ref: "#/components/schemas/kp" }] } } } } } },
    "/api/v5/mqtt": { put: { requestBody: { content: { "application/json": { schema: { $ref: "#/components/schemas/MqttConfig" } } } } } },
  },
  components: { schemas: {
    rp: { type: "object", properties: { type: { const: "republish" }, parameters: { $ref: "#/components/schemas/rpp" } } },
    rpp: { type: "object", required: ["topic"], properties: { topic: { type: "string" }, qos: { type: "integer" } } },
    kp: { type: "object", required: ["connector", "parameters"], properties: { type: { const: "kafka_producer" }, connector: { type: "string" },
      parameters: { type: "object", properties: { topic: { type: "string" } } } } },
    MqttConfig: { type: "object", properties: { server: { type: "string" }, clientid: { type: "string" } } },
  } },
};

describe("inline actions and the mqtt section", () => {
  it("offer the action types that need no connector, with their parameters as args", () => {
    expect(inlineTypes(actionsDoc)).toEqual(["republish"]);
    expect(Object.keys(argsSchema(actionsDoc, "republish")!.properties!)).toEqual(["topic", "qos"]);
    expect(argsSchema(actionsDoc, "nope")).toBeNull();
  });
  it("map the API's problems to the inline action's fields", () => {
    expect(inlineProblems([{ path: "rules.r.1.actions[2].parameters.topic", message: "Field required" },
      { path: "rules.other.actions[0].parameters.topic", message: "x" }], "r.1")).toEqual({ "inline2.topic": "Field required" });
  });
  it("finds the mqtt section's form in the PUT body", () => {
    expect(Object.keys(mqttSchema(actionsDoc)!.properties!)).toEqual(["server", "clientid"]);
  });
});

describe("the nodes page's units", () => {
  it("shows an uptime by its two largest units", () => {
    expect(uptime(0)).toBe("0s");
    expect(uptime(4_000)).toBe("4s");
    expect(uptime(250_000)).toBe("4m 10s");
    expect(uptime(2 * 3600_000 + 5 * 60_000 + 9_000)).toBe("2h 5m");
    expect(uptime(3 * 86400_000 + 4 * 3600_000)).toBe("3d 4h");
    expect(uptime(86400_000 + 30_000)).toBe("1d");
  });
  it("shows memory in binary units", () => {
    expect(bytes(undefined)).toBe("–");
    expect(bytes(512)).toBe("512 B");
    expect(bytes(1536 * 1024)).toBe("1.5 MiB");
    expect(bytes(64 * 1024 ** 3)).toBe("64 GiB");
  });
});
