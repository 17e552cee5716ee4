// The client of the REST API (EMQX v5 paths under /api/v5, HTTP Basic with an API key).

export interface Session {
  /** The instance's address, e.g. "http://10.0.0.5:18083"; "" means the origin that served this page. */
  url: string;
  key: string;
  secret: string;
}

export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
    public body: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

const STORE = "mqferry.session";
let session: Session | null = load();
const listeners = new Set<() => void>();

function load(): Session | null {
  try {
    const raw = sessionStorage.getItem(STORE);
    return raw ? (JSON.parse(raw) as Session) : null;
  } catch {
    return null;
  }
}

export function currentSession(): Session | null {
  return session;
}

export function onSessionChange(fn: () => void): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function setSession(s: Session | null): void {
  session = s;
  if (s) sessionStorage.setItem(STORE, JSON.stringify(s));
  else sessionStorage.removeItem(STORE);
  listeners.forEach((fn) => fn());
}

export function baseUrl(s: Session | null = session): string {
  return `${(s?.url ?? "").replace(/\/+$/, "")}/api/v5`;
}

/** Calls the API; resolves to the parsed JSON (or text, or null for 204). */
export async function call<T = unknown>(
  method: string,
  path: string,
  body?: unknown,
  s: Session | null = session,
): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (s) headers.Authorization = "Basic " + btoa(`${s.key}:${s.secret}`);
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp: Response;
  try {
    resp = await fetch(baseUrl(s) + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
    });
  } catch (e) {
    throw new ApiError(0, "UNREACHABLE", `cannot reach ${baseUrl(s)}: ${String(e)}`);
  }
  const type = resp.headers.get("content-type") ?? "";
  const payload: unknown =
    resp.status === 204 ? null : type.includes("json") ? await resp.json() : await resp.text();
  if (!resp.ok) {
    const obj = (payload && typeof payload === "object" ? payload : {}) as Record<string, unknown>;
    const err = new ApiError(
      resp.status,
      String(obj.code ?? resp.status),
      String(obj.message ?? (typeof payload === "string" ? payload : resp.statusText)),
      obj,
    );
    if (resp.status === 401 && s === session) setSession(null);
    throw err;
  }
  return payload as T;
}

export const api = {
  get: <T = unknown>(p: string) => call<T>("GET", p),
  post: <T = unknown>(p: string, b?: unknown) => call<T>("POST", p, b ?? {}),
  put: <T = unknown>(p: string, b?: unknown) => call<T>("PUT", p, b ?? {}),
  del: <T = unknown>(p: string) => call<T>("DELETE", p),
};

export type Kind = "connectors" | "actions" | "sources";

export interface Component {
  type: string;
  name: string;
  enable?: boolean;
  connector?: string | null;
  status: string;
  status_reason?: string | null;
  actions?: string[];
  parameters?: Record<string, unknown>;
  [k: string]: unknown;
}

export interface Rule {
  id: string;
  name: string;
  sql: string;
  actions: (string | Record<string, unknown>)[];
  enable: boolean;
  description: string;
  from: string[];
  /** The rule's last failure on a message (evaluation or an action refusing an output). */
  last_error?: RuleFailure | null;
}

export interface RuleFailure {
  at: number;
  reason: string;
  message: string;
  topic: string | null;
  action: string | null;
}

export type Metrics = Record<string, number>;

/** Parses the Prometheus text format of GET /metrics into kind -> id -> counter -> value. */
export function parsePrometheus(text: string): Record<string, Record<string, Metrics>> {
  const out: Record<string, Record<string, Metrics>> = {};
  const line = /^mqferry_(rule|action|source)_([a-z0-9_]+)\{([^}]*)\}\s+(\S+)/;
  for (const raw of text.split("\n")) {
    const m = line.exec(raw);
    if (!m) continue;
    const idm = /(?:^|,)id="((?:[^"\\]|\\.)*)"/.exec(m[3]);
    if (!idm) continue;
    const id = idm[1].replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
    const name = m[2].replace(/_total$/, "");
    ((out[m[1]] ??= {})[id] ??= {})[name] = Number(m[4]);
  }
  return out;
}

/** "line 2, col 8: ..." in an SQL error, as numbers. */
export function errorPosition(message: string): { line: number; col: number } | null {
  const m = /line (\d+), col(?:umn)? (\d+)/.exec(message);
  return m ? { line: Number(m[1]), col: Number(m[2]) } : null;
}

/** Every rule, page by page (the API gives at most 10,000 a page). */
export async function allRules(): Promise<Rule[]> {
  const out: Rule[] = [];
  for (let page = 1; ; page++) {
    const r = await call<{ data: Rule[]; meta: { hasnext: boolean } }>("GET", `/rules?limit=10000&page=${page}`);
    out.push(...r.data);
    if (!r.meta?.hasnext || r.data.length === 0) return out;
  }
}

/** A node of the cluster (GET /nodes): EMQX's fields and what runs on it. */
export interface ClusterNode {
  node: string;
  node_status: string;
  version: string;
  /** Milliseconds. */
  uptime: number;
  load1?: number;
  load5?: number;
  load15?: number;
  /** Bytes: the machine's memory, and this node's resident size. */
  memory_total?: number;
  memory_used?: number;
  host?: string;
  pid?: number;
  runs?: { sources?: string[]; rules?: string[]; slots?: number[] };
}

/** A metrics endpoint's answer: the cluster's total and each node's. */
export interface NodeMetrics {
  metrics: Metrics;
  node_metrics: { node: string; metrics: Metrics }[];
}

/** "3d 4h", "2h 5m", "4m 10s": a duration in milliseconds, to its two largest units. */
export function uptime(ms: number): string {
  const s = Math.floor(ms / 1000);
  const parts: [number, string][] = [[Math.floor(s / 86400), "d"], [Math.floor(s / 3600) % 24, "h"], [Math.floor(s / 60) % 60, "m"], [s % 60, "s"]];
  const first = parts.findIndex(([n]) => n > 0);
  if (first < 0) return "0s";
  return parts.slice(first, first + 2).filter(([n]) => n > 0).map(([n, u]) => `${n}${u}`).join(" ");
}

/** "512 MiB", "1.5 GiB": bytes, binary units. */
export function bytes(n: number | undefined): string {
  if (n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`;
}
