// A textarea with the highlighted SQL drawn behind it, the error marked at its line and column,
// and completion of columns, functions and keywords.
import type { JSX } from "preact";
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { type Catalogue, type Completion, type Token, complete, tokenLines } from "./sql";

interface Props {
  id: string;
  value: string;
  onInput: (v: string) => void;
  error?: { line: number; col: number; message: string } | null;
  label: string;
  /** Functions and event columns to complete (GET /rule_functions, /rule_events). */
  catalogue?: Catalogue;
}

interface Open {
  start: number;
  caret: number;
  items: Completion[];
  active: number;
}

export function SqlEditor(p: Props): JSX.Element {
  const pre = useRef<HTMLPreElement>(null);
  const input = useRef<HTMLTextAreaElement>(null);
  // Where the caret goes once the value an accepted completion made is rendered. Set in the
  // same render (not a later animation frame): keys typed meanwhile must not be moved behind it.
  const caretAfter = useRef<{ value: string; at: number } | null>(null);
  const typed = useRef(false);
  const [open, setOpen] = useState<Open | null>(null);
  const [scroll, setScroll] = useState({ top: 0, left: 0 });
  const lines = tokenLines(p.value);
  const listId = p.id + "-completions";
  const sync = (e: Event) => {
    const ta = e.target as HTMLTextAreaElement;
    if (pre.current) {
      pre.current.scrollTop = ta.scrollTop;
      pre.current.scrollLeft = ta.scrollLeft;
    }
    setScroll({ top: ta.scrollTop, left: ta.scrollLeft });
  };
  const suggest = (value: string, caret: number, force: boolean) => {
    const found = p.catalogue ? complete(value, caret, p.catalogue, force) : null;
    setOpen(found ? { ...found, caret, active: 0 } : null);
  };
  const accept = (ta: HTMLTextAreaElement, o: Open, c: Completion) => {
    const v = p.value.slice(0, o.start) + c.insert + p.value.slice(o.caret);
    const at = o.start + c.insert.length;
    caretAfter.current = { value: v, at };
    p.onInput(v);
    setOpen(null);
    ta.focus();
  };
  useLayoutEffect(() => {
    const want = caretAfter.current;
    const ta = input.current;
    if (!want || !ta) return;
    caretAfter.current = null;
    if (ta.value === want.value) ta.setSelectionRange(want.at, want.at);
  }, [p.value]);
  // The functions and columns may arrive after typing began: suggest then, without a new key.
  useEffect(() => {
    const ta = input.current;
    if (p.catalogue && ta && typed.current && document.activeElement === ta) {
      suggest(ta.value, ta.selectionStart, false);
    }
  }, [p.catalogue]);
  const onKey = (e: KeyboardEvent) => {
    const ta = e.target as HTMLTextAreaElement;
    if (e.key === " " && e.ctrlKey) {
      e.preventDefault();
      suggest(ta.value, ta.selectionStart, true);
      return;
    }
    if (open) {
      const n = open.items.length;
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        setOpen({ ...open, active: (open.active + (e.key === "ArrowDown" ? 1 : n - 1)) % n });
        return;
      }
      if (e.key === "Enter" || e.key === "Tab") {
        e.preventDefault();
        accept(ta, open, open.items[open.active]);
        return;
      }
      if (e.key === "Escape") {
        e.preventDefault();
        setOpen(null);
        ta.dataset.escaped = "0";
        return;
      }
    }
    // Tab indents; Escape then Tab leaves the editor (keyboard users are never trapped).
    if (e.key === "Tab" && !e.shiftKey && ta.dataset.escaped !== "1") {
      e.preventDefault();
      const { selectionStart: s, selectionEnd: en } = ta;
      const v = ta.value.slice(0, s) + "  " + ta.value.slice(en);
      p.onInput(v);
      requestAnimationFrame(() => ta.setSelectionRange(s + 2, s + 2));
    }
    ta.dataset.escaped = e.key === "Escape" ? "1" : "0";
  };
  return (
    <div class={"sql-editor" + (p.error ? " has-error" : "")}>
      <div class="sql-box">
      <pre ref={pre} aria-hidden="true" class="sql-highlight">
        {lines.map((toks, i) => {
          const errLine = p.error && p.error.line === i + 1;
          return (
            <div key={i} class={"sql-line" + (errLine ? " err-line" : "")}>
              {errLine ? markColumn(toks, p.error!.col) : toks.map((t, j) => <span key={j} class={"tok-" + t.kind}>{t.text}</span>)}
              {"\n"}
            </div>
          );
        })}
      </pre>
      <textarea ref={input} id={p.id} class="sql-input" spellcheck={false} aria-label={p.label}
        aria-invalid={p.error ? "true" : "false"}
        aria-describedby={p.error ? p.id + "-error" : undefined}
        aria-autocomplete={p.catalogue ? "list" : undefined} aria-controls={open ? listId : undefined}
        aria-expanded={p.catalogue ? (open ? "true" : "false") : undefined}
        aria-activedescendant={open ? `${listId}-${open.active}` : undefined}
        value={p.value}
        onInput={(e) => {
          const ta = e.target as HTMLTextAreaElement;
          p.onInput(ta.value);
          // Typing opens the list; deleting or pasting closes it.
          typed.current = (e as InputEvent).inputType === "insertText";
          if (typed.current) suggest(ta.value, ta.selectionStart, false);
          else setOpen(null);
        }}
        onBlur={() => setOpen(null)} onClick={() => setOpen(null)}
        onScroll={sync} onKeyDown={onKey} rows={Math.max(6, lines.length + 1)} />
      {open && (() => {
        const before = p.value.slice(0, open.start);
        const line = before.split("\n").length;
        const col = open.start - before.lastIndexOf("\n") - 1;
        return (
          <ul id={listId} class="completions" role="listbox" aria-label="Completions"
            style={{ top: `calc(${line * 1.5}em + .6rem - ${scroll.top}px)`, left: `calc(${col}ch + .7rem - ${scroll.left}px)` }}>
            {open.items.map((c, i) => (
              <li key={c.kind + c.label} id={`${listId}-${i}`} role="option" aria-selected={i === open.active}
                class={`completion completion-${c.kind}` + (i === open.active ? " active" : "")}
                // mousedown, not click: the textarea must keep the focus (its blur closes the list).
                onMouseDown={(e) => { e.preventDefault(); accept(document.getElementById(p.id) as HTMLTextAreaElement, open, c); }}>
                <span class="completion-kind">{c.kind === "column" ? "col" : c.kind === "function" ? "fn" : "kw"}</span>
                <span class="completion-label">{c.label}</span>
                {c.detail && <span class="completion-detail">{c.detail}</span>}
              </li>
            ))}
          </ul>
        );
      })()}
      </div>
      {p.error && (
        <div id={p.id + "-error"} class="sql-error" role="alert">
          <strong>Line {p.error.line}, column {p.error.col}:</strong> {p.error.message}
        </div>
      )}
      <small class="help">Tab indents; press Escape, then Tab, to move on.{p.catalogue ? " Columns and functions are suggested as you type (Ctrl+Space to ask); arrows choose, Enter or Tab insert." : ""}</small>
    </div>
  );
}

/** The tokens of the error's line, with the character at `col` (1-based) marked. */
function markColumn(toks: Token[], col: number): JSX.Element[] {
  const out: JSX.Element[] = [];
  let at = 1;
  let marked = false;
  toks.forEach((t, j) => {
    const end = at + t.text.length;
    if (!marked && col >= at && col < end) {
      const i = col - at;
      out.push(<span key={j + "a"} class={"tok-" + t.kind}>{t.text.slice(0, i)}</span>);
      out.push(<span key={j + "b"} class={"tok-" + t.kind + " err-char"}>{t.text[i]}</span>);
      out.push(<span key={j + "c"} class={"tok-" + t.kind}>{t.text.slice(i + 1)}</span>);
      marked = true;
    } else {
      out.push(<span key={j} class={"tok-" + t.kind}>{t.text}</span>);
    }
    at = end;
  });
  // Past the end of the line (e.g. "unexpected end of input"): a marked space.
  if (!marked) out.push(<span key="end" class="err-char"> </span>);
  return out;
}
