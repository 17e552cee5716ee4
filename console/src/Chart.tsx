// A line chart of the last five minutes of samples, drawn as SVG.
import type { JSX } from "preact";

export interface Series {
  name: string;
  color: string;
  points: [number, number][]; // [time ms, value]
}

export const WINDOW_MS = 5 * 60 * 1000;

export function Chart(p: { series: Series[]; now: number; title: string; unit?: string }): JSX.Element {
  const W = 600, H = 160, L = 44, B = 20, T = 8, R = 8;
  const from = p.now - WINDOW_MS;
  const max = Math.max(1, ...p.series.flatMap((s) => s.points.map(([, v]) => v)));
  const x = (t: number) => L + ((t - from) / WINDOW_MS) * (W - L - R);
  const y = (v: number) => T + (1 - v / max) * (H - T - B);
  const ticks = [0, max / 2, max];
  const last = p.series.map((s) => s.points[s.points.length - 1]?.[1] ?? 0);
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
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`${p.title}, last 5 minutes`} preserveAspectRatio="none">
        {ticks.map((v) => (
          <g key={v}>
            <line x1={L} x2={W - R} y1={y(v)} y2={y(v)} class="grid" />
            <text x={L - 4} y={y(v) + 4} text-anchor="end" class="axis">{fmt(v)}</text>
          </g>
        ))}
        {[5, 4, 3, 2, 1, 0].map((m) => (
          <text key={m} x={x(p.now - m * 60000)} y={H - 4} text-anchor="middle" class="axis">
            {m ? `-${m}m` : "now"}
          </text>
        ))}
        {p.series.map((s) => (
          <polyline key={s.name} fill="none" stroke={s.color} stroke-width="2"
            points={s.points.filter(([t]) => t >= from).map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" ")} />
        ))}
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

/** Keeps samples per key across page changes, trimmed to the window. */
const store = new Map<string, [number, number][]>();

export function record(key: string, t: number, v: number): [number, number][] {
  const pts = store.get(key) ?? [];
  pts.push([t, v]);
  while (pts.length && pts[0][0] < t - WINDOW_MS) pts.shift();
  store.set(key, pts);
  return pts;
}
