import type { Lane, BotHealthState, TurnActivity } from "./ipc.gen";

const usd = new Intl.NumberFormat("en-US", {
  style: "currency",
  currency: "USD",
  minimumFractionDigits: 2,
  maximumFractionDigits: 2,
});

/** `$1,234.56`; negative zero and NaN show as `$0.00`. */
export function money(n: number | null | undefined): string {
  if (n == null || !Number.isFinite(n) || Math.abs(n) < 0.005) return "$0.00";
  return usd.format(n);
}

const price = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", minimumFractionDigits: 2, maximumFractionDigits: 4 });

/** A rate-card price: `$0.15`, `$0.075`, `$15.00`. */
export function priceText(n: number): string {
  return Number.isFinite(n) ? price.format(n) : "—";
}


/** How full a bar is, 0–100, or null when there is no cap (no bar to fill). */
export function barPercent(value: number, cap: number | null | undefined): number | null {
  if (cap == null) return null;
  if (!(cap > 0)) return value > 0 ? 100 : 0;
  const p = (Math.max(0, value) / cap) * 100;
  return Math.min(100, Math.max(0, p));
}

/** "ok" under 80 %, "warn" from 80 %, "over" at 100 %, "none" without a cap. */
export function barLevel(value: number, cap: number | null | undefined): "none" | "ok" | "warn" | "over" {
  const p = barPercent(value, cap);
  if (p == null) return "none";
  if (p >= 100) return "over";
  if (p >= 80) return "warn";
  return "ok";
}

/** What a running turn is doing, in words; never what it is about. */
export const DOING_LABEL: Record<TurnActivity, string> = {
  thinking: "Thinking",
  listening: "Listening…",
  looking: "Looking at a photo…",
  speaking: "Recording a voice reply…",
  writing: "Writing…",
};

/**
 * Exactly "Idle", "N waiting", or what the turn does and for how long: "Thinking N s",
 * "Listening… N s", "Looking at a photo… N s", "Recording a voice reply… N s", "Writing… N s"
 * (the member sees the answer appear in Telegram) — the end-to-end tests match these.
 */
export function laneLabel(lane: Lane, extraSecs = 0): string {
  if (lane.state === "thinking") {
    return `${DOING_LABEL[lane.doing] ?? DOING_LABEL.thinking} ${Math.max(0, Math.floor(lane.secs + extraSecs))} s`;
  }
  if (lane.state === "queued" || lane.queued > 0) return `${lane.queued} waiting`;
  return "Idle";
}

/** "just now", "5 min ago", "3 h ago", "yesterday", "4 days ago", or a date. */
export function relativeTime(iso: string | null | undefined, now: number = Date.now()): string {
  if (!iso) return "No activity yet";
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return "No activity yet";
  const s = Math.round((now - t) / 1000);
  if (s < 45) return "just now";
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min ago`;
  const h = Math.round(s / 3600);
  if (h < 24) return `${h} h ago`;
  const d = Math.round(s / 86400);
  if (d === 1) return "yesterday";
  if (d < 14) return `${d} days ago`;
  return new Date(t).toLocaleDateString(undefined, { day: "numeric", month: "short", year: "numeric" });
}

/** A pasted Telegram bot token: digits, a colon, then the secret part. */
export function looksLikeToken(s: string): boolean {
  return /^\d+:[A-Za-z0-9_-]+$/.test(s.trim());
}

/** Parses a dollar amount the way a person types it ("30", "$12.50", "1,000"). */
export function parseDollars(s: string): number | null {
  const t = s.replace(/[$,\s]/g, "");
  if (!/^\d+(\.\d*)?$|^\.\d+$/.test(t)) return null;
  const n = Number(t);
  return Number.isFinite(n) ? n : null;
}

/** A dollar amount as an input's text ("" for none). */
export function dollarsText(n: number | null | undefined): string {
  if (n == null) return "";
  return Number.isInteger(n) ? String(n) : n.toFixed(2);
}

export type Tone = "good" | "info" | "warn" | "bad";

export function botTone(state: BotHealthState): Tone {
  switch (state) {
    case "polling":
      return "good";
    case "starting":
      return "info";
    case "rate_limited":
    case "unreachable":
      return "warn";
    default:
      return "bad";
  }
}

/** Isolation in words and a tone: "process" is the weaker, development-only level. */
export function isolationInfo(level: string): { label: string; tone: Tone; hint: string } {
  const l = level.trim().toLowerCase();
  if (l === "process")
    return { label: "Shared account", tone: "warn", hint: "Weaker: members' data is protected only by folder permissions." };
  if (l.includes("sandbox"))
    return { label: "Own account + sandbox", tone: "good", hint: "Strongest: each member has an OS account, and the assistant is confined to its own folder." };
  if (l === "account") return { label: "Own account", tone: "good", hint: "Each member's data lives in an OS account of its own." };
  return { label: level, tone: "info", hint: "" };
}

export const ROLE_LABEL = { adult: "Adult", teen: "Teen", child: "Child" } as const;

export const ROLE_HINT = {
  adult: "Full assistant, no extra restrictions.",
  teen: "Helpful, with age-appropriate care on sensitive topics.",
  child: "Answers kept simple and safe.",
} as const;

/**
 * Spend as Hearth knows it: an estimate from the rate card, so `≈ US$0.03`. Sub-cent spend
 * reads `< US$0.01` rather than a misleading `≈ US$0.00`; nothing spent is exactly `US$0.00`.
 */
export function spent(n: number | null | undefined): string {
  if (n == null || !Number.isFinite(n) || n <= 0) return "US$0.00";
  if (n < 0.005) return "< US$0.01";
  return `≈ US${usd.format(n)}`;
}

/** A cap the admin set is exact: `US$30`, `US$12.50`. */
export function capText(n: number): string {
  if (!Number.isFinite(n)) return "—";
  return Number.isInteger(n) ? `US$${n.toLocaleString("en-US")}` : `US${usd.format(n)}`;
}

/** "≈ US$3.20 of US$30" or "≈ US$3.20, no limit". */
export function spentOfCap(value: number, cap: number | null | undefined): string {
  return cap == null ? `${spent(value)}, no limit` : `${spent(value)} of ${capText(cap)}`;
}
