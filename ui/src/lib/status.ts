// The dashboard's headline and problem lines, from the snapshot's problems (decided once, in
// the app's `snapshot::health`; each member's sentence is `MemberCard.status`, from the same
// place) — pure, tested in tests/status.test.ts.
import type { Problem, Snapshot } from "./ipc.gen";
import type { Tone } from "./format";

/** "14:02" in this computer's zone, from RFC 3339; "" when unreadable. */
export function clockTime(iso: string | null | undefined): string {
  const t = iso ? Date.parse(iso) : NaN;
  return Number.isNaN(t) ? "" : new Date(t).toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" });
}

/** A problem's sentence as the dashboard shows it: "All assistants paused since 14:02". */
export function problemText(p: Problem, s: Pick<Snapshot, "paused_since">): string {
  if (p.fix === "resume_all" && s.paused_since) {
    const at = clockTime(s.paused_since);
    if (at) return `${p.text} since ${at}`;
  }
  return p.text;
}

/** The label of the button that fixes a problem. */
export const FIX_LABEL = {
  resume_all: "Resume",
  open_member: "Open",
  open_settings: "Open Settings",
  allow_supervisor: "Allow the supervisor",
  restart: "Restart Hearth",
} as const;

/** The dashboard's headline: the worst problem, or all is well. */
export function headline(s: Pick<Snapshot, "health" | "problems" | "paused_since">): { text: string; tone: Tone } {
  const first = s.problems[0];
  if (!first) return { text: "All is well", tone: "good" };
  const more = s.problems.length - 1;
  const text = problemText(first, s) + (more > 0 ? ` (and ${more} more)` : "");
  return { text, tone: first.health === "broken" ? "bad" : "warn" };
}
