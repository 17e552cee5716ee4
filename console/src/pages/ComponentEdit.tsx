// Create or edit a connector, action or source: a form generated from the type's config model.
import type { JSX } from "preact";
import { useMemo, useState } from "preact/hooks";
import { ApiError, type Component, type Kind, api } from "../api";
import { useLoad } from "../hooks";
import { enc, navigate } from "../router";
import { type OpenApi, errorProblems, label, prune, skeleton, typeSchemas } from "../schema";
import { SchemaForm } from "../SchemaForm";
import { ErrorBox, Notice, Page, Status, asError, openApi } from "../ui";
import { ONE } from "./ComponentList";

type Obj = Record<string, unknown>;
/** The settings of a component as the API shows it, without the read-only fields. */
function stored(c: Component): Obj {
  const v: Obj = { ...c };
  for (const k of ["type", "name", "status", "status_reason", "node_status", "actions", "created_at", "last_modified_at"]) delete v[k];
  return v;
}

const SHOWN_ELSEWHERE = ["type", "name", "connector", "status", "status_reason", "node_status", "actions",
  "created_at", "last_modified_at"];

export function ComponentEdit({ kind, id }: { kind: Kind; id?: string }): JSX.Element {
  const doc = useLoad(openApi, []);
  const existing = useLoad(() => (id ? api.get<Component>(`/${kind}/${enc(id)}`) : Promise.resolve(undefined)), [kind, id]);
  const connectors = useLoad(() => (kind === "connectors" ? Promise.resolve([]) : api.get<Component[]>("/connectors")), [kind]);
  const schemas = useMemo(() => (doc.data ? typeSchemas(doc.data, kind) : {}), [doc.data, kind]);
  const types = Object.keys(schemas);
  const [chosenType, setType] = useState<string>(id ? id.split(":")[0] : "");
  // Derived, not set by an effect: a choice made right after the page appears is never undone.
  const type = chosenType || (types.includes("kafka_producer") ? "kafka_producer" : types[0] ?? "");
  const [name, setName] = useState<string>(id ? id.slice(id.indexOf(":") + 1) : "");
  // null: not edited yet; the form then shows the stored settings, or a new type's skeleton.
  const [edited, setValue] = useState<Obj | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [ok, setOk] = useState<string | null>(null);

  const schema = schemas[type];
  const value: Obj = edited ?? (existing.data ? stored(existing.data)
    : doc.data && schema ? skeleton(doc.data, schema) : {});
  const hasConnector = !!schema?.properties?.connector;
  const problems = errorProblems(error?.body, error?.message, `${kind}.${type}.${name}`, type);
  const body = () => ({ ...(prune(value) as Obj), type, name });

  const probe = async () => {
    setBusy("Testing…"); setError(null); setOk(null);
    try {
      await api.post(`/${kind}_probe`, body());
      setOk("Connection test passed.");
    } catch (e) { setError(asError(e)); } finally { setBusy(null); }
  };
  const save = async (ev: Event) => {
    ev.preventDefault();
    setBusy("Saving…"); setError(null); setOk(null);
    try {
      if (id) await api.put(`/${kind}/${enc(id)}`, prune(value));
      else await api.post(`/${kind}`, body());
      const cid = `${type}:${name}`;
      navigate(kind === "connectors" ? `/connectors` : `/${kind}/${enc(cid)}`);
    } catch (e) { setError(asError(e)); } finally { setBusy(null); }
  };

  const title = id ? `Edit ${ONE[kind]} ${id}` : `Create ${ONE[kind]}`;
  if (doc.error) return <Page title={title}><ErrorBox error={doc.error} /></Page>;
  if (!doc.data || (id && !existing.data && !existing.error)) return <Page title={title}><p>Loading…</p></Page>;
  const conns = (connectors.data ?? []).filter((c) => c.type === type || !types.includes(c.type));
  const lead = (
    <>
      <div class="field">
        <label for="f-type">Type</label>
        <select id="f-type" value={type} disabled={!!id} onChange={(e) => { setType((e.target as HTMLSelectElement).value); setValue(null); }}>
          {types.map((t) => <option key={t} value={t}>{t}</option>)}
        </select>
      </div>
      <div class="field">
        <label for="f-name">Name<span class="req" aria-hidden="true"> *</span></label>
        <input id="f-name" type="text" value={name} disabled={!!id} required pattern="[A-Za-z0-9]+[A-Za-z0-9_\-.]*"
          onInput={(e) => setName((e.target as HTMLInputElement).value)} />
        <small class="help">Letters, digits, and _ - . after the first character.</small>
      </div>
      {hasConnector && (
        <div class={"field" + (problems.connector ? " invalid" : "")}>
          <label for="f-connector">Connector<span class="req" aria-hidden="true"> *</span></label>
          <select id="f-connector" value={(value.connector as string) ?? ""}
            onChange={(e) => setValue({ ...value, connector: (e.target as HTMLSelectElement).value || undefined })}>
            <option value="">—</option>
            {conns.map((c) => <option key={c.name} value={c.name}>{c.name} ({c.type})</option>)}
          </select>
          {problems.connector && <small class="field-error" role="alert">{problems.connector}</small>}
          {conns.length === 0 && <small class="help">No {type} connector yet: <a href="#/connectors/new">create one</a>.</small>}
        </div>
      )}
    </>
  );
  return (
    <Page title={title}>
      <ErrorBox error={existing.error} />
      {existing.data && (
        <p>Status: <Status status={existing.data.status} reason={existing.data.status_reason} />
          {existing.data.status_reason && <span class="reason"> {existing.data.status_reason}</span>}</p>
      )}
      <form class="edit-form" onSubmit={save} noValidate>
        {schema ? (
          <SchemaForm doc={doc.data as OpenApi} schema={schema} value={value} onChange={setValue} path=""
            problems={problems} skip={SHOWN_ELSEWHERE} lead={lead} />
        ) : <div class="form-grid">{lead}</div>}
        <ErrorBox error={error} />
        {ok && <Notice kind="ok">{ok}</Notice>}
        {busy && <Notice>{busy}</Notice>}
        <div class="form-actions">
          <button type="button" class="secondary" onClick={probe} disabled={!!busy}>
            {kind === "connectors" ? "Test connection" : `Test ${label(ONE[kind])}`}
          </button>
          <button type="submit" disabled={!!busy}>{id ? "Save" : "Create"}</button>
          <a class="button secondary" href={`#/${kind}`}>Cancel</a>
        </div>
      </form>
    </Page>
  );
}
