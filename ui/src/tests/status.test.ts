import { describe, expect, it } from "vitest";
import type { MemberCard, Problem, SettingsDto } from "../lib/ipc.gen";
import { headline, problemText } from "../lib/status";
import { alwaysOnRows, askAdminDefault, donePromises, firstAnswer, stepLabel, STEPS } from "../lib/wizard";

const card = (over: Partial<MemberCard> = {}): MemberCard => ({
  id: "m1", name: "Ana", role: "adult", bot_username: "ana_bot", bot: { state: "polling", label: "Online" }, paired: true,
  paused: false, lane: { state: "idle", queued: 0, secs: 0, doing: "thinking" }, last_activity: null, today_usd: 0.1,
  today_calls: 2, month_usd: 1, daily_cap_usd: null, monthly_cap_usd: null, isolation: "account", resting_until: null,
  status: { text: "Ready", tone: "good" }, days: [], ...over,
});

describe("the dashboard's headline", () => {
  const paused: Problem = { health: "attention", text: "All assistants paused", fix: "resume_all", member_id: null };
  const dead: Problem = { health: "broken", text: "Ana's bot stopped working.", fix: "open_member", member_id: "m1" };
  it("is all well with no problem, else the first (worst) problem and how many more", () => {
    expect(headline({ health: "fine", problems: [], paused_since: null })).toEqual({ text: "All is well", tone: "good" });
    expect(headline({ health: "broken", problems: [dead, paused], paused_since: null })).toEqual({ text: "Ana's bot stopped working. (and 1 more)", tone: "bad" });
    expect(headline({ health: "attention", problems: [paused], paused_since: null }).tone).toBe("warn");
  });
  it("says since when everyone is paused, when the app saw it happen", () => {
    const since = new Date(2026, 10, 21, 14, 2).toISOString();
    expect(problemText(paused, { paused_since: since })).toBe("All assistants paused since 14:02");
    expect(problemText(paused, { paused_since: null })).toBe("All assistants paused");
    expect(problemText(dead, { paused_since: since })).toBe("Ana's bot stopped working.");
  });
});

describe("the wizard's last steps", () => {
  it("has an always-on step before saying hi", () => {
    expect(STEPS.slice(-3)).toEqual(["pairing", "always_on", "done"]);
    expect(stepLabel("always_on")).toBe("Step 5 of 6");
  });
  it("asks the first member only whether they are the admin", () => {
    expect(askAdminDefault(0)).toBe(true);
    expect(askAdminDefault(1)).toBe(false);
  });
  it("follows the first message to its answer", () => {
    expect(firstAnswer(undefined, 0)).toBe("waiting");
    expect(firstAnswer(card({ today_calls: 2 }), 2)).toBe("waiting");
    expect(firstAnswer(card({ today_calls: 2, lane: { state: "queued", queued: 1, secs: 0, doing: "thinking" } }), 2)).toBe("answering");
    expect(firstAnswer(card({ today_calls: 3, lane: { state: "thinking", queued: 0, secs: 1, doing: "writing" } }), 2)).toBe("answering");
    expect(firstAnswer(card({ today_calls: 3 }), 2)).toBe("answered");
  });

  const settings = (over: Partial<SettingsDto> = {}): SettingsDto => ({
    data_dir: "/d", launch_at_login: true, keep_awake: { enabled: true, holding: true, available: true, detail: "held" },
    power_restart: { on: null, detail: "firmware", command: null }, turn_cap: 64, timezone: "UTC", provider: null,
    backup: { dest_dir: null, every_hours: 0, last: null, suggested_dir: "/b" }, platform: "linux", daemon: null, ...over,
  });
  it("ticks only what the machine says is on", () => {
    expect(alwaysOnRows(settings()).map((r) => [r.id, r.on])).toEqual([["login", true], ["awake", true], ["power", null]]);
    const off = settings({ launch_at_login: false, keep_awake: { enabled: true, holding: false, available: false, detail: "no logind" } });
    expect(alwaysOnRows(off).map((r) => r.on)).toEqual([false, false, null]);
    const mac = settings({ power_restart: { on: false, detail: "Off", command: "sudo pmset -a autorestart 1" } });
    expect(alwaysOnRows(mac)[2]).toMatchObject({ on: false, command: "sudo pmset -a autorestart 1" });
  });
  it("promises on the Done screen only what is set", () => {
    expect(donePromises(null)).toEqual([]);
    expect(donePromises(settings())).toEqual([
      "Hearth opens by itself when you log in to this computer.",
      "This computer stays awake while Hearth runs.",
    ]);
    const off = donePromises(settings({ launch_at_login: false, keep_awake: { enabled: true, holding: false, available: false, detail: "" } }));
    expect(off[0]).toMatch(/does not open by itself/);
    expect(off[1]).toMatch(/may still go to sleep/);
    expect(donePromises(settings({ power_restart: { on: true, detail: "", command: null } }))[2]).toBe("After a power cut, this computer turns itself on again.");
  });
});
