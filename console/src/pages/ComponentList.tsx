// Connectors, actions (sinks) and sources: list with status, enable/disable, delete.
import type { JSX } from "preact";
import { useState } from "preact/hooks";
import { type Component, type Kind, api } from "../api";
import { useLoad } from "../hooks";
import { enc } from "../router";
import { ErrorBox, Notice, Page, Status, asError } from "../ui";

export const TITLES: Record<Kind, string> = { connectors: "Connectors", actions: "Actions (sinks)", sources: "Sources" };
export const ONE: Record<Kind, string> = { connectors: "connector", actions: "action", sources: "source" };

export function ComponentList({ kind }: { kind: Kind }): JSX.Element {
  const list = useLoad(() => api.get<Component[]>(`/${kind}`), [kind], 5000);
  const [msg, setMsg] = useState<string | null>(null);
  const [err, setErr] = useState<unknown>(null);
  const run = async (what: string, fn: () => Promise<unknown>) => {
    setErr(null);
    setMsg(null);
    try {
      await fn();
      setMsg(what);
      await list.reload();
    } catch (e) {
      setErr(e);
    }
  };
  const rows = list.data ?? [];
  // The instance's own MQTT session (the top-level `mqtt` section) is a connection too.
  const status = useLoad(() => (kind === "connectors"
    ? api.get<{ mqtt: { status: string; reason?: string | null }; ready: boolean; node: string; version: string }>("/status")
    : Promise.resolve(undefined)), [kind], 5000);
  return (
    <Page title={TITLES[kind]} actions={<a class="button" href={`#/${kind}/new`}>Create {ONE[kind]}</a>}>
      <ErrorBox error={list.error} />
      <ErrorBox error={err ? asError(err) : null} />
      {msg && <Notice kind="ok">{msg}</Notice>}
      {status.data && (
        <dl class="facts session" aria-label="This instance">
          <dt>MQTT session</dt>
          <dd><Status status={status.data.mqtt.status} reason={status.data.mqtt.reason} />
            {status.data.mqtt.reason && <span class="reason"> {status.data.mqtt.reason}</span>}</dd>
          <dt>Instance</dt>
          <dd>{status.data.node} · mqferry {status.data.version} · {status.data.ready ? "ready" : "not ready"}</dd>
        </dl>
      )}
      {list.loading && !list.data ? <p>Loading…</p> : rows.length === 0 ? (
        <p class="empty">No {kind} yet. <a href={`#/${kind}/new`}>Create one</a>.</p>
      ) : (
        <div class="table-wrap">
          <table class="list" aria-label={TITLES[kind]}>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Type</th>
                <th scope="col">Status</th>
                {kind === "connectors" ? <th scope="col">Used by</th> : <th scope="col">Connector</th>}
                <th scope="col">Enabled</th>
                <th scope="col"><span class="sr-only">Operations</span></th>
              </tr>
            </thead>
            <tbody>
              {rows.map((c) => {
                const id = `${c.type}:${c.name}`;
                const enabled = c.enable !== false;
                const href = kind === "connectors" ? `#/connectors/${enc(id)}/edit` : `#/${kind}/${enc(id)}`;
                return (
                  <tr key={id} data-id={id}>
                    <td><a href={href}>{c.name}</a></td>
                    <td>{c.type}</td>
                    <td>
                      <Status status={c.status} reason={c.status_reason} />
                      {c.status_reason && <div class="reason">{c.status_reason}</div>}
                    </td>
                    <td>{kind === "connectors" ? (c.actions ?? []).join(", ") || "–" : c.connector ?? "–"}</td>
                    <td>
                      <label class="switch">
                        <input type="checkbox" checked={enabled} aria-label={`Enable ${id}`}
                          onChange={() => run(`${id} ${enabled ? "disabled" : "enabled"}`,
                            () => api.put(`/${kind}/${enc(id)}/enable/${!enabled}`))} />
                        <span>{enabled ? "on" : "off"}</span>
                      </label>
                    </td>
                    <td class="ops">
                      <a href={kind === "connectors" ? href : `#/${kind}/${enc(id)}/edit`}>Edit</a>
                      <button type="button" class="danger link" onClick={() => {
                        if (confirm(`Delete ${ONE[kind]} ${id}?`)) void run(`${id} deleted`, () => api.del(`/${kind}/${enc(id)}`));
                      }}>Delete</button>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </Page>
  );
}
