import type { DaySpend } from "./ipc.gen";

export type ChartBar = { date: string; day: number; usd: number; x: number; y: number; w: number; h: number };
export type Chart = { bars: ChartBar[]; max: number; ticks: number[]; width: number; height: number };

/** A "nice" upper bound for the axis: 1, 2, 2.5 or 5 times a power of ten, at least `v`. */
export function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v - 1e-9) return m * p;
  return 10 * p;
}

/**
 * Lays out one bar per day in a `width` × `height` box (y grows down, as in SVG).
 * A day with spend but a tiny bar still gets 1 px so it is visible.
 */
export function layoutChart(days: DaySpend[], width: number, height: number, slots = 31): Chart {
  const n = Math.max(slots, days.length, 1);
  const max = niceMax(Math.max(0, ...days.map((d) => d.usd)));
  const slot = width / n;
  const w = Math.max(1, slot * 0.7);
  const bars = days.map((d, i) => {
    const raw = (Math.max(0, d.usd) / max) * height;
    const h = d.usd > 0 ? Math.max(1, raw) : 0;
    return {
      date: d.date,
      day: Number(d.date.slice(8, 10)) || i + 1,
      usd: d.usd,
      x: i * slot + (slot - w) / 2,
      y: height - h,
      w,
      h,
    };
  });
  return { bars, max, ticks: [0, max / 2, max], width, height };
}
