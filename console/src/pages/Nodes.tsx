// The nodes of the cluster (this instance alone without one): status, version, uptime, load,
// memory, and what runs on each (rules, sources, the MQTT session slots it holds).
import type { JSX } from "preact";
import { type ClusterNode, api, bytes, uptime } from "../api";
import { useLoad } from "../hooks";
import { ErrorBox, Page } from "../ui";

const load = (n: ClusterNode) => (n.load1 === undefined ? "–" : `${n.load1} / ${n.load5} / ${n.load15}`);

function Runs({ node }: { node: ClusterNode }): JSX.Element {
  const runs = node.runs ?? {};
  const rules = runs.rules ?? [];
  const sources = runs.sources ?? [];
  return (
    <div class="runs">
      <div>{rules.length} rule{rules.length === 1 ? "" : "s"}</div>
      {sources.length > 0 && <div>sources: <span class="mono">{sources.join(", ")}</span></div>}
      {runs.slots && <div>session slots: <span class="mono">{runs.slots.length ? runs.slots.join(", ") : "none"}</span></div>}
    </div>
  );
}

export function Nodes(): JSX.Element {
  const list = useLoad(() => api.get<ClusterNode[]>("/nodes"), [], 5000);
  const rows = list.data ?? [];
  return (
    <Page title="Nodes">
      <ErrorBox error={list.error} />
      <p class="help">{rows.length === 1 ? "One node: this instance runs alone, or is the only live node of its cluster."
        : `${rows.length} nodes, from their heartbeats; a node silent for the cluster's node_timeout leaves the list.`}</p>
      {list.loading && !list.data ? <p>Loading…</p> : (
        <div class="table-wrap">
          <table class="list" aria-label="Nodes">
            <thead>
              <tr>
                <th scope="col">Node</th>
                <th scope="col">Status</th>
                <th scope="col">Version</th>
                <th scope="col">Uptime</th>
                <th scope="col">Load (1/5/15 min)</th>
                <th scope="col">Memory (node / machine)</th>
                <th scope="col">Runs</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((n) => (
                <tr key={n.node} data-id={n.node}>
                  <td><span class="mono">{n.node}</span>{n.host && <div class="reason">pid {n.pid} on {n.host}</div>}</td>
                  <td><span class={`status status-${n.node_status === "running" ? "connected" : "stopped"}`}><i aria-hidden="true" />{n.node_status}</span></td>
                  <td>{n.version}</td>
                  <td>{uptime(n.uptime)}</td>
                  <td class="num">{load(n)}</td>
                  <td class="num">{bytes(n.memory_used)} / {bytes(n.memory_total)}</td>
                  <td><Runs node={n} /></td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </Page>
  );
}
