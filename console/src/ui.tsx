// Small shared pieces: status badges, messages, the OpenAPI document cache, confirm dialogs.
import type { ComponentChildren, JSX } from "preact";
import { ApiError, call } from "./api";
import type { OpenApi } from "./schema";

let docPromise: Promise<OpenApi> | null = null;

export function openApi(): Promise<OpenApi> {
  docPromise ??= call<OpenApi>("GET", "/openapi.json").catch((e) => {
    docPromise = null;
    throw e;
  });
  return docPromise;
}

export function resetOpenApi(): void {
  docPromise = null;
}

export function Status(p: { status?: string; reason?: string | null }): JSX.Element {
  const s = p.status ?? "unknown";
  return (
    <span class={`status status-${s}`} title={p.reason ?? undefined}>
      <i aria-hidden="true" />
      {s}
    </span>
  );
}

export function ErrorBox(p: { error: ApiError | string | null | undefined }): JSX.Element | null {
  if (!p.error) return null;
  const e = p.error;
  const label = typeof e === "string" ? "" : e.code === "BAD_REQUEST" ? "Refused" : e.code;
  const text = typeof e === "string" ? e : `${label}: ${e.message}`;
  return <div class="error-box" role="alert">{text}</div>;
}

export function Notice(p: { children: ComponentChildren; kind?: "ok" | "info" }): JSX.Element {
  return <div class={`notice notice-${p.kind ?? "info"}`} role="status">{p.children}</div>;
}

export function Page(p: { title: string; actions?: ComponentChildren; children: ComponentChildren }): JSX.Element {
  return (
    <section class="page">
      <header class="page-head">
        <h1 tabIndex={-1} id="page-title">{p.title}</h1>
        <div class="page-actions">{p.actions}</div>
      </header>
      {p.children}
    </section>
  );
}

export function asError(e: unknown): ApiError {
  return e instanceof ApiError ? e : new ApiError(0, "ERROR", String(e));
}

export function Metric(p: { name: string; value: number | undefined }): JSX.Element {
  return (
    <div class="metric">
      <span class="metric-name">{p.name}</span>
      <span class="metric-value">{p.value === undefined ? "–" : p.value}</span>
    </div>
  );
}
