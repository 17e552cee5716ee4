// A line chart of the last minutes or hour of samples, drawn as SVG.
import type { JSX } from "preact";

export interface Series {
  name: string;
  color: string;
  /** [time ms, value]; a NaN value is a gap (the component was not running). */
  points: [number, number][];
}

export const WINDOW_MS = 5 * 60 * 1000;
/** What the charts keep and the server's history holds. */
export const HISTORY_MS = 60 * 60 * 1000;

export const WINDOWS: { ms: number; label: string; ticks: number[] }[] = [
  { ms: WINDOW_MS, label: "5 minutes", ticks: [5, 4, 3, 2, 1, 0] },
  { ms: HISTORY_MS, label: "1 hour", ticks: [60, 45, 30, 15, 0] },
];

/** The runs of consecutive samples in the window, split at gaps. */
export function segments(points: [number, number][], from: number): [number, number][][] {
  const out: [number, number][][] = [[]];
  for (const p of points) {
    if (p[0] < from) continue;
    if (Number.isNaN(p[1])) {
      if (out[out.length - 1].length) out.push([]);
    } else {
      out[out.length - 1].push(p);
    }
  }
  return out.filter((s) => s.length);
}

export function Chart(p: { series: Series[]; now: number; title: string; unit?: string; window?: number }): JSX.Element {
  const W = 600, H = 160, L = 44, B = 20, T = 8, R = 8;
  const win = WINDOWS.find((w) => w.ms === p.window) ?? WINDOWS[0];
  const from = p.now - win.ms;
  const shown = p.series.map((s) => segments(s.points, from));
  const max = Math.max(1, ...shown.flatMap((segs) => segs.flatMap((seg) => seg.map(([, v]) => v))));
  const x = (t: number) => L + ((t - from) / win.ms) * (W - L - R);
  const y = (v: number) => T + (1 - v / max) * (H - T - B);
  const ticks = [0, max / 2, max];
  const last = p.series.map((s) => s.points.filter(([, v]) => !Number.isNaN(v)).pop()?.[1] ?? 0);
  return (
    <figure class="chart">
      <figcaption>
        {p.title}
        {p.series.map((s, i) => (
          <span class="legend" key={s.name}>
            <i style={{ background: s.color }} /> {s.name}: <b>{fmt(last[i])}</b>{p.unit ?? ""}
          </span>
        ))}
      </figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`${p.title}, last ${win.label}`} preserveAspectRatio="none">
        {ticks.map((v) => (
          <g key={v}>
            <line x1={L} x2={W - R} y1={y(v)} y2={y(v)} class="grid" />
            <text x={L - 4} y={y(v) + 4} text-anchor="end" class="axis">{fmt(v)}</text>
          </g>
        ))}
        {win.ticks.map((m) => (
          <text key={m} x={x(p.now - m * 60000)} y={H - 4} text-anchor="middle" class="axis">
            {m ? `-${m}m` : "now"}
          </text>
        ))}
        {p.series.map((s, i) => shown[i].map((seg, j) => (
          <polyline key={`${s.name}-${j}`} fill="none" stroke={s.color} stroke-width="2" data-series={s.name}
            points={seg.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" ")} />
        )))}
      </svg>
    </figure>
  );
}

export function fmt(v: number | undefined): string {
  if (v === undefined || Number.isNaN(v)) return "–";
  if (Math.abs(v) >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (Math.abs(v) >= 1e4) return (v / 1e3).toFixed(1) + "k";
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}

/** Keeps samples per key across page changes, trimmed to the history's span. */
const store = new Map<string, [number, number][]>();

export function record(key: string, t: number, v: number): [number, number][] {
  const pts = store.get(key) ?? [];
  pts.push([t, v]);
  while (pts.length && pts[0][0] < t - HISTORY_MS) pts.shift();
  store.set(key, pts);
  return pts;
}

/** A copy of the samples kept for `key`. */
export function samples(key: string): [number, number][] {
  return (store.get(key) ?? []).slice();
}

/** Adds the server's samples of `key` to those recorded here; a time already present is kept. */
export function seed(key: string, points: [number, number][], now: number): [number, number][] {
  const merged = mergeSamples(store.get(key) ?? [], points, now - HISTORY_MS);
  store.set(key, merged);
  return merged;
}

/** `a` and `b` in time order from `from` on; `a` wins where both have a sample at one time. */
export function mergeSamples(a: [number, number][], b: [number, number][], from: number): [number, number][] {
  const seen = new Set(a.map(([t]) => t));
  return [...a, ...b.filter(([t]) => !seen.has(t))].filter(([t]) => t >= from).sort((p, q) => p[0] - q[0]);
}

/** The server's history (GET /<kind>/:id/metrics/history) of one field as chart points. */
export interface History {
  interval: number;
  t: number[];
  metrics: Record<string, (number | null)[]>;
}

export function historyPoints(h: History, field: string): [number, number][] {
  const values = h.metrics[field];
  return h.t.map((t, i) => [t, values ? values[i] ?? NaN : NaN]);
}
