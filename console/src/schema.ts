// Reads the OpenAPI document's JSON schemas into the fields a form shows.
// Pure functions: unit-tested with vitest, rendered by SchemaForm.tsx.

export type Schema = {
  $ref?: string;
  type?: string | string[];
  title?: string;
  description?: string;
  default?: unknown;
  const?: unknown;
  enum?: unknown[];
  format?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  anyOf?: Schema[];
  oneOf?: Schema[];
  additionalProperties?: boolean | Schema;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  pattern?: string;
  maxLength?: number;
  writeOnly?: boolean;
  discriminator?: { propertyName: string; mapping?: Record<string, string> };
};

export type OpenApi = {
  paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: Schema }> } }>>;
  components: { schemas: Record<string, Schema> };
};

export function resolve(doc: OpenApi, s: Schema): Schema {
  let out = s;
  for (let i = 0; out.$ref && i < 20; i++) {
    const name = out.$ref.split("/").pop() ?? "";
    const target = doc.components.schemas[name];
    if (!target) throw new Error(`unknown schema ${out.$ref}`);
    // Keep the referring schema's own title/default/description over the target's.
    const { $ref: _ignored, ...rest } = out;
    out = { ...target, ...rest };
  }
  return out;
}

/** The settings schema of each type of a kind, from the body of `POST /<kind>`. */
export function typeSchemas(doc: OpenApi, kind: string): Record<string, Schema> {
  const body = doc.paths[`/api/v5/${kind}`]?.post?.requestBody?.content["application/json"]?.schema;
  if (!body) return {};
  const variants = body.oneOf ?? body.anyOf ?? [body];
  const out: Record<string, Schema> = {};
  for (const v of variants) {
    const s = resolve(doc, v);
    const t = s.properties?.type?.const;
    if (typeof t === "string") out[t] = s;
  }
  return out;
}

export type FieldKind =
  | "hidden"
  | "boolean"
  | "enum"
  | "string"
  | "password"
  | "number"
  | "integer"
  | "object"
  | "choice"
  | "list"
  | "objects"
  | "json";

export interface Field {
  name: string;
  label: string;
  kind: FieldKind;
  schema: Schema;
  required: boolean;
  nullable: boolean;
  help?: string;
  /** For "choice": the variants (a constant, or a schema to fill in). */
  variants?: Schema[];
}

const LABEL_WORDS: Record<string, string> = {
  qos: "QoS", mqtt: "MQTT", ssl: "TLS", sql: "SQL", id: "ID", clientid: "Client ID",
  sni: "SNI", opts: "options", cacertfile: "CA cert file", certfile: "Cert file", keyfile: "Key file",
};

export function label(name: string): string {
  if (LABEL_WORDS[name]) return LABEL_WORDS[name];
  const words = name.split("_").map((w) => LABEL_WORDS[w] ?? w);
  const text = words.join(" ");
  return text[0].toUpperCase() + text.slice(1);
}

function nonNull(variants: Schema[]): Schema[] {
  return variants.filter((v) => v.type !== "null");
}

function kindOf(doc: OpenApi, s: Schema): FieldKind {
  if (s.const !== undefined) return "hidden";
  if (s.enum) return "enum";
  const t = Array.isArray(s.type) ? s.type.find((x) => x !== "null") : s.type;
  switch (t) {
    case "boolean": return "boolean";
    case "string": return s.format === "password" || s.writeOnly ? "password" : "string";
    case "number": return "number";
    case "integer": return "integer";
    case "array": {
      const items = s.items ? resolve(doc, s.items) : {};
      if (items.type === "object" && items.properties) return "objects";
      if (items.type === "string" || items.type === "number" || items.type === "integer") return "list";
      return "json";
    }
    case "object": return s.properties ? "object" : "json";
    default: return "json";
  }
}

/** The fields of an object schema, in the document's order. */
export function fields(doc: OpenApi, obj: Schema): Field[] {
  const required = new Set(obj.required ?? []);
  return Object.entries(obj.properties ?? {}).map(([name, raw]) => {
    let s = resolve(doc, raw);
    let nullable = false;
    let kind: FieldKind;
    let variants: Schema[] | undefined;
    const alts = s.anyOf ?? s.oneOf;
    if (alts) {
      const real = nonNull(alts).map((v) => resolve(doc, v));
      nullable = real.length < alts.length;
      if (real.length === 1) {
        s = { ...real[0], title: s.title, default: s.default, description: s.description ?? real[0].description };
        kind = kindOf(doc, s);
        if (kind === "hidden") kind = "enum", s = { ...s, enum: [s.const] };
      } else {
        kind = "choice";
        variants = real;
      }
    } else {
      kind = kindOf(doc, s);
    }
    return {
      name, label: label(name), kind, schema: s, required: required.has(name), nullable,
      help: s.description?.split("\n\n")[0].replace(/``/g, ""), variants,
    };
  });
}

/** Fields shown before "Advanced settings": required ones and the few every user sets. */
const BASIC = new Set([
  "description", "connector", "authentication", "message", "topic", "topic_mapping", "server",
  "username", "password", "clientid", "parameters", "bootstrap_hosts", "mechanism", "kafka_topic",
  "mqtt_topic", "qos", "payload_template", "key", "value", "timestamp", "enable", "group_id", "payload",
]);

export function isBasic(f: Field): boolean {
  return f.required || BASIC.has(f.name);
}

/** The variant of a "choice" that a value is in. */
export function variantIndex(variants: Schema[], value: unknown): number {
  for (let i = 0; i < variants.length; i++) {
    const v = variants[i];
    if (v.const !== undefined && v.const === value) return i;
  }
  for (let i = 0; i < variants.length; i++) {
    const v = variants[i];
    if (v.type === "object" && value && typeof value === "object") return i;
    if ((v.type === "integer" || v.type === "number") && typeof value === "number") return i;
    if (v.type === "string" && v.const === undefined && typeof value === "string") return i;
  }
  return 0;
}

export function variantLabel(v: Schema): string {
  if (v.const !== undefined) return String(v.const);
  return v.title ?? (Array.isArray(v.type) ? v.type.join("|") : v.type) ?? "value";
}

/** Drops keys whose value is undefined, recursively: the API then applies its defaults. */
export function prune(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(prune);
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = prune(v);
    return out;
  }
  return value;
}

/** Problems the API reported as `<kind>.<type>.<name>.<field path>` keyed by the field path. */
export function problemsByField(
  problems: { path: string; message: string }[] | undefined,
  prefix: string,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of problems ?? []) {
    const path = p.path.startsWith(prefix + ".") ? p.path.slice(prefix.length + 1) : p.path;
    out[path] = out[path] ? `${out[path]}; ${p.message}` : p.message;
  }
  return out;
}

/** Field problems of an API error: its `problems` list, or the `path: message` parts of its text. */
export function errorProblems(
  body: Record<string, unknown> | undefined,
  message: string | undefined,
  prefix: string,
  type: string,
): Record<string, string> {
  const listed = body?.problems as { path: string; message: string }[] | undefined;
  if (listed?.length) return problemsByField(listed, prefix);
  const parts = (message ?? "").split("; ").flatMap((part) => {
    const m = /^(body(?:\.[^.:\s]+)?)\.([^:\s]+): (.*)$/s.exec(part);
    if (!m) return [];
    // FastAPI names the union member after its type: body.<type>.<field path>
    const path = m[1] === `body.${type}` || m[1] === "body" ? m[2] : `${m[1].slice(5)}.${m[2]}`;
    return [{ path, message: m[3] }];
  });
  return problemsByField(parts, prefix);
}

/** A new value of an object schema: required objects present (so their own required fields are
 * reported one by one), everything else left to the API's defaults. */
export function skeleton(doc: OpenApi, obj: Schema): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of fields(doc, obj)) if (f.required && f.kind === "object") out[f.name] = skeleton(doc, f.schema);
  return out;
}
