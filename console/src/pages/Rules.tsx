// The rules list: one request for the rules, one for every counter (the Prometheus text).
import type { JSX } from "preact";
import { useMemo, useState } from "preact/hooks";
import { type Rule, allRules, api, call, parsePrometheus } from "../api";
import { fmt } from "../Chart";
import { useLoad } from "../hooks";
import { enc } from "../router";
import { ErrorBox, Page, asError } from "../ui";

const PAGE = 50;

export function Rules(): JSX.Element {
  const rules = useLoad(allRules, [], 10000);
  // One request for every counter (~580 kB with 1,000 rules), so not too often.
  const metrics = useLoad(() => call<string>("GET", "/metrics").then(parsePrometheus), [], 5000);
  const [q, setQ] = useState("");
  const [page, setPage] = useState(0);
  const [err, setErr] = useState<unknown>(null);
  const filtered = useMemo(() => {
    const all = rules.data ?? [];
    const needle = q.trim().toLowerCase();
    if (!needle) return all;
    return all.filter((r) => r.id.toLowerCase().includes(needle) || r.description.toLowerCase().includes(needle)
      || r.name.toLowerCase().includes(needle) || r.from.some((f) => f.toLowerCase().includes(needle)));
  }, [rules.data, q]);
  const pages = Math.max(1, Math.ceil(filtered.length / PAGE));
  const cur = Math.min(page, pages - 1);
  const shown = filtered.slice(cur * PAGE, cur * PAGE + PAGE);
  const rm = metrics.data?.rule ?? {};
  const toggle = async (r: Rule) => {
    setErr(null);
    try { await api.put(`/rules/${enc(r.id)}`, { enable: !r.enable }); await rules.reload(); } catch (e) { setErr(e); }
  };
  return (
    <Page title="Rules" actions={<a class="button" href="#/rules/new">Create rule</a>}>
      <ErrorBox error={rules.error} />
      <ErrorBox error={metrics.error} />
      <ErrorBox error={err ? asError(err) : null} />
      <div class="toolbar">
        <label for="rule-filter" class="sr-only">Filter rules</label>
        <input id="rule-filter" type="search" placeholder="Filter by id, name, description or topic" value={q}
          onInput={(e) => { setQ((e.target as HTMLInputElement).value); setPage(0); }} />
        <span class="count" aria-live="polite">{filtered.length} of {rules.data?.length ?? 0} rules</span>
      </div>
      {rules.loading && !rules.data ? <p>Loading…</p> : (
        <div class="table-wrap">
          <table class="list" aria-label="Rules">
            <thead>
              <tr>
                <th scope="col">ID</th><th scope="col">From</th><th scope="col">Actions</th>
                <th scope="col" class="num">Matched</th><th scope="col" class="num">Passed</th>
                <th scope="col" class="num">Failed</th><th scope="col" class="num">Rate</th>
                <th scope="col">Enabled</th>
              </tr>
            </thead>
            <tbody>
              {shown.map((r) => {
                const m = rm[r.id] ?? {};
                return (
                  <tr key={r.id} data-id={r.id}>
                    <td><a href={`#/rules/${enc(r.id)}`}>{r.id}</a>{r.description && <div class="reason">{r.description}</div>}</td>
                    <td class="mono">{r.from.join(", ")}</td>
                    <td>{r.actions.map((a) => typeof a === "string" ? a : `${String(a.function)} (inline)`).join(", ") || "–"}</td>
                    <td class="num" data-counter="matched">{fmt(m.matched)}</td>
                    <td class="num" data-counter="passed">{fmt(m.passed)}</td>
                    <td class="num" data-counter="failed">{fmt(m.failed)}</td>
                    <td class="num">{fmt(m.rate)}</td>
                    <td>
                      <label class="switch">
                        <input type="checkbox" checked={r.enable} aria-label={`Enable rule ${r.id}`} onChange={() => toggle(r)} />
                        <span>{r.enable ? "on" : "off"}</span>
                      </label>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      {pages > 1 && (
        <nav class="pager" aria-label="Pages of rules">
          <button type="button" class="secondary" disabled={cur === 0} onClick={() => setPage(cur - 1)}>Previous</button>
          <span>Page {cur + 1} of {pages}</span>
          <button type="button" class="secondary" disabled={cur >= pages - 1} onClick={() => setPage(cur + 1)}>Next</button>
        </nav>
      )}
    </Page>
  );
}
