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

/** One member's spend per day, for a stack. */
export type Series = { id: string; name: string; days: { date: string; usd: number }[] };
export type Segment = { member: string; colour: number; usd: number; y: number; h: number };
export type MonthSlot = {
  date: string;
  day: number;
  /** The household's today. */
  today: boolean;
  /** After today: the slot stays empty. */
  future: boolean;
  usd: number;
  x: number;
  w: number;
  /** Bottom up, in the members' order. */
  segments: Segment[];
};
export type MonthChart = {
  slots: MonthSlot[];
  /** Members with spend this month, each with its colour index (0–5, `--series-N`). */
  legend: { id: string; name: string; colour: number }[];
  max: number;
  ticks: number[];
  width: number;
  height: number;
};

/** How many series colours app.css defines (`--series-0` … `--series-5`). */
export const SERIES_COLOURS = 6;

/** Days in a `YYYY-MM` month (0 for anything else). */
export function daysInMonth(month: string): number {
  const m = /^(\d{4})-(\d{2})$/.exec(month);
  if (!m) return 0;
  const mo = Number(m[2]);
  if (mo < 1 || mo > 12) return 0;
  return new Date(Date.UTC(Number(m[1]), mo, 0)).getUTCDate();
}

/** The household's date (`YYYY-MM-DD`) at `now` in its zone; the computer's own when the zone is unknown. */
export function todayIn(timezone: string, now: Date = new Date()): string {
  // From the parts, not a locale's layout: engines disagree on how "en-CA" writes a date.
  const fmt = (timeZone?: string) => {
    const parts = new Intl.DateTimeFormat("en-US", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" }).formatToParts(now);
    const part = (t: string) => parts.find((p) => p.type === t)?.value ?? "";
    return `${part("year").padStart(4, "0")}-${part("month")}-${part("day")}`;
  };
  try {
    return fmt(timezone || undefined);
  } catch {
    return fmt();
  }
}

/**
 * The month on a real day-of-month axis: a slot for every day 1 … last, each a stack of the
 * members' spend that day (bottom up, one colour per member in the members' order), today
 * marked, days after today empty. `today` outside `month` (a past month) marks nothing.
 */
export function layoutMonth(month: string, today: string, members: Series[], width: number, height: number): MonthChart {
  const n = daysInMonth(month);
  const slot = width / Math.max(n, 1);
  const w = Math.max(1, slot * 0.7);
  const colours = new Map(members.map((m, i) => [m.id, i % SERIES_COLOURS]));
  const cells = Array.from({ length: n }, (_, i) => {
    const date = `${month}-${String(i + 1).padStart(2, "0")}`;
    const future = today.slice(0, 7) === month && date > today;
    const parts = future
      ? []
      : members
          .map((m) => ({ member: m.id, usd: m.days.filter((d) => d.date === date).reduce((a, d) => a + Math.max(0, d.usd), 0) }))
          .filter((p) => p.usd > 0);
    return { date, day: i + 1, today: date === today, future, parts, usd: parts.reduce((a, p) => a + p.usd, 0) };
  });
  const max = niceMax(Math.max(0, ...cells.map((c) => c.usd)));
  const slots = cells.map((c, i) => {
    let top = height;
    const segments = c.parts.map((p) => {
      const h = Math.max(1, (p.usd / max) * height);
      top -= h;
      return { member: p.member, colour: colours.get(p.member) ?? 0, usd: p.usd, y: top, h };
    });
    return { date: c.date, day: c.day, today: c.today, future: c.future, usd: c.usd, x: i * slot + (slot - w) / 2, w, segments };
  });
  const spenders = new Set(slots.flatMap((s) => s.segments.map((g) => g.member)));
  const legend = members.filter((m) => spenders.has(m.id)).map((m) => ({ id: m.id, name: m.name, colour: colours.get(m.id) ?? 0 }));
  return { slots, legend, max, ticks: [0, max / 2, max], width, height };
}

/**
 * Where the month ends at this pace: spend so far over the days elapsed (today counts), times
 * the days in the month. Nothing before day 3 (too little to go on), with no spend, or for a
 * month that is not the household's current one.
 */
export function projectMonth(monthUsd: number, month: string, today: string): number | null {
  const n = daysInMonth(month);
  if (n === 0 || today.slice(0, 7) !== month || !(monthUsd > 0)) return null;
  const day = Number(today.slice(8, 10));
  if (!(day >= 3)) return null;
  return (monthUsd / day) * n;
}

/** One member's last `span` days up to `today`, every day present (zeros where nothing happened). */
export function recentDays(
  days: { date: string; usd: number; messages: number }[],
  today: string,
  span: number,
): { date: string; usd: number; messages: number }[] {
  const [y, m, d] = today.split("-").map(Number);
  if (!y || !m || !d) return [];
  const out = [];
  for (let i = span - 1; i >= 0; i--) {
    const date = new Date(Date.UTC(y, m - 1, d - i)).toISOString().slice(0, 10);
    const hit = days.filter((x) => x.date === date);
    out.push({ date, usd: hit.reduce((a, x) => a + x.usd, 0), messages: hit.reduce((a, x) => a + x.messages, 0) });
  }
  return out;
}

/** WCAG relative luminance of `#rrggbb`. */
export function luminance(hex: string): number {
  const v = /^#([0-9a-f]{6})$/i.exec(hex.trim());
  if (!v) return NaN;
  const c = [0, 2, 4].map((i) => parseInt(v[1].slice(i, i + 2), 16) / 255);
  const [r, g, b] = c.map((x) => (x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4)));
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

/** WCAG contrast ratio between two `#rrggbb` colours (1–21). */
export function contrast(a: string, b: string): number {
  const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p);
  return (x + 0.05) / (y + 0.05);
}
