import { describe, expect, it } from "vitest";
import { errorPosition, parsePrometheus } from "./api";
import { buildFlow, layout } from "./flow";
import { type OpenApi, errorProblems, fields, isBasic, problemsByField, prune, typeSchemas, variantIndex } from "./schema";
import { tokenLines, tokenize } from "./sql";

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
});
