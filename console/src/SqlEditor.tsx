// A textarea with the highlighted SQL drawn behind it, and the error marked at its line and column.
import type { JSX } from "preact";
import { useRef } from "preact/hooks";
import { type Token, tokenLines } from "./sql";

interface Props {
  id: string;
  value: string;
  onInput: (v: string) => void;
  error?: { line: number; col: number; message: string } | null;
  label: string;
}

export function SqlEditor(p: Props): JSX.Element {
  const pre = useRef<HTMLPreElement>(null);
  const lines = tokenLines(p.value);
  const sync = (e: Event) => {
    const ta = e.target as HTMLTextAreaElement;
    if (pre.current) {
      pre.current.scrollTop = ta.scrollTop;
      pre.current.scrollLeft = ta.scrollLeft;
    }
  };
  const onKey = (e: KeyboardEvent) => {
    // Tab indents; Escape then Tab leaves the editor (keyboard users are never trapped).
    const ta = e.target as HTMLTextAreaElement;
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
      <textarea id={p.id} class="sql-input" spellcheck={false} aria-label={p.label}
        aria-invalid={p.error ? "true" : "false"}
        aria-describedby={p.error ? p.id + "-error" : undefined}
        value={p.value} onInput={(e) => p.onInput((e.target as HTMLTextAreaElement).value)}
        onScroll={sync} onKeyDown={onKey} rows={Math.max(6, lines.length + 1)} />
      </div>
      {p.error && (
        <div id={p.id + "-error"} class="sql-error" role="alert">
          <strong>Line {p.error.line}, column {p.error.col}:</strong> {p.error.message}
        </div>
      )}
      <small class="help">Tab indents; press Escape, then Tab, to move on.</small>
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
