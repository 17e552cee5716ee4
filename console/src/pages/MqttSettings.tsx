// The top-level `mqtt` section: the broker mqferry is attached to (GET/PUT /mqtt).
import type { JSX } from "preact";
import { useState } from "preact/hooks";
import { ApiError, api } from "../api";
import { useLoad } from "../hooks";
import { type OpenApi, type Schema, errorProblems, resolve } from "../schema";
import { SchemaForm } from "../SchemaForm";
import { ErrorBox, Notice, Page, asError, openApi } from "../ui";

type Obj = Record<string, unknown>;

interface MqttView {
  config: Obj;
  restart_needed: boolean;
}

/** The section's schema: the body of `PUT /mqtt` in the OpenAPI document. */
export function mqttSchema(doc: OpenApi): Schema | null {
  const body = doc.paths["/api/v5/mqtt"]?.put?.requestBody?.content["application/json"]?.schema;
  return body ? resolve(doc, body) : null;
}

export function MqttSettings(): JSX.Element {
  const doc = useLoad(openApi, []);
  const current = useLoad(() => api.get<MqttView>("/mqtt"), []);
  const [edited, setValue] = useState<Obj | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [saved, setSaved] = useState<MqttView | null>(null);
  const [busy, setBusy] = useState(false);
  const schema = doc.data ? mqttSchema(doc.data) : null;
  const value = edited ?? current.data?.config ?? {};
  const problems = errorProblems(error?.body, error?.message, "mqtt", "");
  const restart = (saved ?? current.data)?.restart_needed;
  const save = async (ev: Event) => {
    ev.preventDefault();
    setBusy(true); setError(null); setSaved(null);
    try {
      const r = await api.put<MqttView>("/mqtt", value);
      setSaved(r);
      setValue(null);
      await current.reload();
    } catch (e) { setError(asError(e)); } finally { setBusy(false); }
  };
  const title = "MQTT";
  if (doc.error || current.error) return <Page title={title}><ErrorBox error={doc.error ?? current.error} /></Page>;
  if (!schema || !current.data) return <Page title={title}><p>Loading…</p></Page>;
  return (
    <Page title={title}>
      <p class="help">The MQTT broker mqferry subscribes to for its rules and publishes to. Saved changes are validated and
        written to the config file; the MQTT session takes them up when mqferry restarts, so it never drops in-flight messages.</p>
      {restart && !saved && <Notice>The running MQTT session uses other settings than these saved ones: restart mqferry to apply them.</Notice>}
      <form class="edit-form" onSubmit={save} noValidate>
        <SchemaForm doc={doc.data as OpenApi} schema={schema} value={value} onChange={setValue} path="" problems={problems} />
        <ErrorBox error={error} />
        {saved && <Notice kind="ok">Saved.{saved.restart_needed ? " Restart mqferry to apply the MQTT settings to the running session." : ""}</Notice>}
        <div class="form-actions">
          <button type="submit" disabled={busy}>Save</button>
          <button type="button" class="secondary" disabled={busy || edited === null} onClick={() => { setValue(null); setError(null); }}>Undo changes</button>
        </div>
      </form>
    </Page>
  );
}
