// A form generated from a JSON schema (the OpenAPI document's settings models).
import type { ComponentChildren, JSX } from "preact";
import {
  type Field, type OpenApi, type Schema, fields, isBasic, resolve, variantIndex, variantLabel,
} from "./schema";

type Obj = Record<string, unknown>;

interface Props {
  doc: OpenApi;
  schema: Schema;
  value: Obj;
  onChange: (v: Obj) => void;
  /** Dotted path of this object, for ids and the API's problems. */
  path: string;
  problems: Record<string, string>;
  /** Fields not to render (e.g. `type` and `name`, handled by the page). */
  skip?: string[];
  /** Fold the non-basic fields under "Advanced settings". */
  fold?: boolean;
  /** Fields the page renders itself, placed first in the same grid. */
  lead?: ComponentChildren;
}

const id = (path: string) => "f-" + path.replace(/[^A-Za-z0-9_-]/g, "-");

export function SchemaForm(p: Props): JSX.Element {
  const all = fields(p.doc, p.schema).filter((f) => f.kind !== "hidden" && !p.skip?.includes(f.name));
  const basic = p.fold === false ? all : all.filter(isBasic);
  const advanced = p.fold === false ? [] : all.filter((f) => !isBasic(f));
  const set = (name: string, v: unknown) => p.onChange({ ...p.value, [name]: v });
  const render = (f: Field) => (
    <FieldView key={f.name} {...p} field={f} v={p.value[f.name]} set={(v) => set(f.name, v)}
      fpath={p.path ? `${p.path}.${f.name}` : f.name} />
  );
  return (
    <div class="form-grid">
      {p.lead}
      {basic.map(render)}
      {advanced.length > 0 && (
        <details class="advanced">
          <summary>Advanced settings ({advanced.length})</summary>
          <div class="form-grid">{advanced.map(render)}</div>
        </details>
      )}
    </div>
  );
}

interface FieldProps extends Props {
  field: Field;
  v: unknown;
  set: (v: unknown) => void;
  fpath: string;
}

function FieldView(p: FieldProps): JSX.Element {
  const { field: f, fpath } = p;
  const fid = id(fpath);
  const problem = p.problems[fpath];
  const help = f.help ? <small class="help">{f.help}</small> : null;
  const err = problem ? <small class="field-error" role="alert">{problem}</small> : null;
  const lab = (
    <label for={fid}>
      {f.label}
      {f.required && <span class="req" aria-hidden="true"> *</span>}
    </label>
  );
  const wrap = (control: JSX.Element, cls = "field") => (
    <div class={cls + (problem ? " invalid" : "")} data-field={fpath}>
      {lab}
      {control}
      {help}
      {err}
    </div>
  );
  const dflt = f.schema.default;
  switch (f.kind) {
    case "boolean": {
      const checked = (p.v ?? dflt ?? false) as boolean;
      return (
        <div class={"field check" + (problem ? " invalid" : "")} data-field={fpath}>
          <input id={fid} type="checkbox" checked={checked}
            onChange={(e) => p.set((e.target as HTMLInputElement).checked)} />
          <label for={fid}>{f.label}</label>
          {help}
          {err}
        </div>
      );
    }
    case "enum": {
      const opts = f.schema.enum ?? [];
      const cur = p.v ?? dflt;
      return wrap(
        <select id={fid} value={cur === undefined ? "" : String(cur)}
          onChange={(e) => {
            const raw = (e.target as HTMLSelectElement).value;
            const hit = opts.find((o) => String(o) === raw);
            p.set(raw === "" ? undefined : hit);
          }}>
          {(cur === undefined || f.nullable) && <option value="">—</option>}
          {opts.map((o) => <option key={String(o)} value={String(o)}>{String(o)}</option>)}
        </select>,
      );
    }
    case "string":
    case "password":
      return wrap(
        <input id={fid} type={f.kind === "password" ? "password" : "text"} autocomplete="off"
          value={(p.v as string | null | undefined) ?? ""}
          placeholder={dflt != null ? String(dflt) : ""}
          required={f.required}
          onInput={(e) => {
            const t = (e.target as HTMLInputElement).value;
            p.set(t === "" ? (f.nullable ? null : undefined) : t);
          }} />,
      );
    case "number":
    case "integer":
      return wrap(
        <input id={fid} type="number" step={f.kind === "integer" ? 1 : "any"}
          value={p.v == null ? "" : String(p.v)}
          placeholder={dflt != null ? String(dflt) : ""}
          min={f.schema.minimum} max={f.schema.maximum}
          onInput={(e) => {
            const t = (e.target as HTMLInputElement).value;
            p.set(t === "" ? (f.nullable ? null : undefined) : Number(t));
          }} />,
      );
    case "object":
      return (
        <fieldset class="group" data-field={fpath}>
          <legend>{f.label}</legend>
          {help}
          {err}
          <SchemaForm {...p} schema={f.schema} value={(p.v as Obj | undefined) ?? {}}
            onChange={(v) => p.set(v)} path={fpath} skip={undefined} lead={undefined} />
        </fieldset>
      );
    case "choice":
      return <ChoiceField {...p} />;
    case "list": {
      const list = (p.v as unknown[] | undefined) ?? [];
      return wrap(
        <textarea id={fid} rows={2} value={list.join("\n")} placeholder="one per line"
          onInput={(e) => {
            const lines = (e.target as HTMLTextAreaElement).value.split("\n").map((s) => s.trim()).filter(Boolean);
            p.set(lines.length ? lines : undefined);
          }} />,
      );
    }
    case "objects":
      return <ObjectsField {...p} />;
    default:
      return wrap(<JsonField id={fid} v={p.v} set={p.set} />);
  }
}

function ChoiceField(p: FieldProps): JSX.Element {
  const { field: f, fpath } = p;
  const variants = f.variants ?? [];
  const cur = p.v ?? f.schema.default;
  const idx = variantIndex(variants, cur);
  const chosen = variants[idx];
  const fid = id(fpath);
  const pick = (i: number) => {
    const v = variants[i];
    if (v.const !== undefined) p.set(v.const);
    else if (v.type === "object") p.set({});
    else p.set(undefined);
  };
  return (
    <fieldset class="group" data-field={fpath}>
      <legend>{f.label}</legend>
      <div class="field">
        <label for={fid}>Kind</label>
        <select id={fid} value={String(idx)} onChange={(e) => pick(Number((e.target as HTMLSelectElement).value))}>
          {variants.map((v, i) => <option key={i} value={String(i)}>{variantLabel(v)}</option>)}
        </select>
      </div>
      {chosen?.type === "object" && (
        <SchemaForm {...p} schema={chosen} value={(cur && typeof cur === "object" ? cur : {}) as Obj}
          onChange={(v) => p.set(v)} path={fpath} skip={undefined} fold={false} lead={undefined} />
      )}
      {(chosen?.type === "integer" || chosen?.type === "number") && (
        <div class="field">
          <label for={fid + "-n"}>Value</label>
          <input id={fid + "-n"} type="number" value={typeof cur === "number" ? String(cur) : ""}
            onInput={(e) => { const t = (e.target as HTMLInputElement).value; p.set(t === "" ? undefined : Number(t)); }} />
        </div>
      )}
      {chosen?.type === "string" && chosen.const === undefined && (
        <div class="field">
          <label for={fid + "-s"}>Value</label>
          <input id={fid + "-s"} type="text" value={typeof cur === "string" ? cur : ""}
            onInput={(e) => p.set((e.target as HTMLInputElement).value)} />
        </div>
      )}
      {p.problems[fpath] && <small class="field-error" role="alert">{p.problems[fpath]}</small>}
    </fieldset>
  );
}

function ObjectsField(p: FieldProps): JSX.Element {
  const { field: f, fpath } = p;
  const items = (p.v as Obj[] | undefined) ?? [];
  const itemSchema = resolve(p.doc, f.schema.items ?? {});
  const update = (i: number, v: Obj | null) => {
    const next = items.slice();
    if (v === null) next.splice(i, 1);
    else next[i] = v;
    p.set(next);
  };
  return (
    <fieldset class="group" data-field={fpath}>
      <legend>{f.label}{f.required && " *"}</legend>
      {f.help && <small class="help">{f.help}</small>}
      {items.map((item, i) => (
        <div class="array-item" key={i}>
          <SchemaForm {...p} schema={itemSchema} value={item} onChange={(v) => update(i, v)}
            path={`${fpath}.${i}`} skip={undefined} lead={undefined} />
          <button type="button" class="secondary" onClick={() => update(i, null)}>
            Remove {f.label.toLowerCase()} {i + 1}
          </button>
        </div>
      ))}
      <button type="button" class="secondary" onClick={() => p.set([...items, {}])}>
        Add {f.label.toLowerCase()}
      </button>
      {p.problems[fpath] && <small class="field-error" role="alert">{p.problems[fpath]}</small>}
    </fieldset>
  );
}

function JsonField(p: { id: string; v: unknown; set: (v: unknown) => void }): JSX.Element {
  return (
    <textarea id={p.id} rows={3} class="mono" value={p.v === undefined ? "" : JSON.stringify(p.v, null, 2)}
      placeholder="JSON"
      onChange={(e) => {
        const t = (e.target as HTMLTextAreaElement).value.trim();
        if (!t) return p.set(undefined);
        try { p.set(JSON.parse(t)); } catch { /* kept as typed until it parses */ }
      }} />
  );
}
