// A rule's inline actions, EMQX's {"function": "republish", "args": {...}}: each one's function
// and its arguments in a form generated from that action type's `parameters` settings.
import type { JSX } from "preact";
import { type OpenApi, type Schema, resolve, skeleton, typeSchemas } from "../schema";
import { SchemaForm } from "../SchemaForm";

export type RuleAction = string | Record<string, unknown>;
type Obj = Record<string, unknown>;

/** The schema of an action type's `parameters`: what an inline action of that type takes as `args`. */
export function argsSchema(doc: OpenApi, fn: string): Schema | null {
  const t = typeSchemas(doc, "actions")[fn];
  const params = t?.properties?.parameters;
  return params ? resolve(doc, params) : null;
}

/** Action types an inline action can use: those needing no connector (republish). */
export function inlineTypes(doc: OpenApi): string[] {
  return Object.entries(typeSchemas(doc, "actions"))
    .filter(([, s]) => s.properties?.parameters && !(s.required ?? []).includes("connector"))
    .map(([name]) => name);
}

/** Problems the API reported at `rules.<id>.actions[i].parameters.<field>`, keyed by form path. */
export function inlineProblems(problems: { path: string; message: string }[] | undefined, rid: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of problems ?? []) {
    const m = new RegExp(`^rules\\.${rid.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\.actions\\[(\\d+)\\](?:\\.(?:parameters|args))?\\.?(.*)$`).exec(p.path);
    if (m) out[m[2] ? `inline${m[1]}.${m[2]}` : `inline${m[1]}`] = p.message;
  }
  return out;
}

export function InlineActions(p: {
  doc: OpenApi | undefined;
  actions: RuleAction[];
  onChange: (a: RuleAction[]) => void;
  problems: Record<string, string>;
}): JSX.Element {
  const types = p.doc ? inlineTypes(p.doc) : [];
  const set = (i: number, v: Obj) => p.onChange(p.actions.map((a, j) => (j === i ? v : a)));
  const add = () => {
    const fn = types.includes("republish") ? "republish" : types[0];
    const s = p.doc && fn ? argsSchema(p.doc, fn) : null;
    p.onChange([...p.actions, { function: fn ?? "republish", args: s && p.doc ? skeleton(p.doc, s) : {} }]);
  };
  return (
    <fieldset class="group inline-actions">
      <legend>Inline actions</legend>
      {p.actions.map((a, i) => {
        if (typeof a === "string") return null;
        const fn = String(a.function ?? "");
        const args = (a.args && typeof a.args === "object" ? a.args : {}) as Obj;
        const schema = p.doc ? argsSchema(p.doc, fn) : null;
        const fid = `inline-${i}-function`;
        return (
          <div class="array-item inline-action" key={i} data-inline={i}>
            <div class="field">
              <label for={fid}>Function</label>
              <select id={fid} value={fn} onChange={(e) => {
                const next = (e.target as HTMLSelectElement).value;
                const s = p.doc ? argsSchema(p.doc, next) : null;
                set(i, { function: next, args: s && p.doc ? skeleton(p.doc, s) : {} });
              }}>
                {[...new Set([fn, ...types])].map((t) => <option key={t} value={t}>{t}</option>)}
              </select>
            </div>
            {p.problems[`inline${i}`] && <small class="field-error" role="alert">{p.problems[`inline${i}`]}</small>}
            {schema && p.doc ? (
              <SchemaForm doc={p.doc} schema={schema} value={args} path={`inline${i}`} problems={p.problems}
                onChange={(v) => set(i, { ...a, args: v })} />
            ) : <p class="help mono">args: {JSON.stringify(args)}</p>}
            <button type="button" class="secondary small" onClick={() => p.onChange(p.actions.filter((_, j) => j !== i))}>
              Remove inline action {i + 1}
            </button>
          </div>
        );
      })}
      {types.length > 0 && <button type="button" class="secondary small" onClick={add}>Add inline action</button>}
      {types.length === 0 && <p class="help">No action type can run inline here.</p>}
    </fieldset>
  );
}
