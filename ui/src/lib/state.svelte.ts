// Shared, reactive app state: the live snapshot, the current screen, and toasts.
import type { AppInfo, Snapshot, Notice } from "./ipc.gen";

export type View =
  | { name: "dashboard" }
  | { name: "members" }
  | { name: "add-member" }
  | { name: "member"; id: string; pair?: boolean }
  | { name: "settings" };

export type Toast = { id: number; title: string; body: string; tone: "good" | "warn" | "info"; member_id: string | null };

class AppState {
  info = $state<AppInfo | null>(null);
  snapshot = $state<Snapshot | null>(null);
  /** When the snapshot arrived (ms), so timers can run on between snapshots. */
  snapshotAt = $state(0);
  view = $state<View>({ name: "dashboard" });
  toasts = $state<Toast[]>([]);
  /** Ticks every second for relative times and "Thinking N s". */
  now = $state(Date.now());
  #nextToast = 1;

  setSnapshot(s: Snapshot) {
    this.snapshot = s;
    this.snapshotAt = Date.now();
  }

  go(v: View) {
    this.view = v;
  }

  toast(t: Omit<Toast, "id">, ms = 8000) {
    const id = this.#nextToast++;
    this.toasts = [...this.toasts, { ...t, id }];
    if (ms > 0) setTimeout(() => this.dismiss(id), ms);
  }

  notice(n: Notice) {
    const tone = n.kind === "paired" ? "good" : "warn";
    this.toast({ title: n.title, body: n.body, tone, member_id: n.member_id }, 10000);
  }

  dismiss(id: number) {
    this.toasts = this.toasts.filter((t) => t.id !== id);
  }
}

export const app = new AppState();
