// The dashboard's headline and the wizard's always-on step, in components (the words are
// decided in the app's snapshot rule; these check what the window does with them).
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/svelte";

const invoke = vi.fn();
vi.mock("@tauri-apps/api/core", () => ({ invoke: (...a: unknown[]) => invoke(...a) }));

import Dashboard from "../components/Dashboard.svelte";
import AlwaysOn from "../components/AlwaysOn.svelte";
import MemberForm from "../components/MemberForm.svelte";
import { app } from "../lib/state.svelte";
import type { MemberCard, SettingsDto, Snapshot } from "../lib/ipc.gen";

const byId = (id: string) => screen.getByTestId(id);

const ana: MemberCard = {
  id: "m1", name: "Ana", role: "adult", bot_username: "ana_bot", bot: { state: "polling", label: "Online" }, paired: true,
  paused: true, lane: { state: "idle", queued: 0, secs: 0, doing: "thinking" }, last_activity: null, today_usd: 0,
  today_calls: 0, month_usd: 0, daily_cap_usd: null, monthly_cap_usd: null, isolation: "process", resting_until: null,
  status: { text: "Paused by you", tone: "warn" }, days: [],
};
const snapshot = (over: Partial<Snapshot> = {}): Snapshot => ({
  phase: "serving", health: "attention", provider: null, members: [ana], turns_in_flight: 0, turn_cap: 64, isolation: "process",
  host: null, all_paused: true, paused_since: null, uptime_secs: 5,
  problems: [{ health: "attention", text: "All assistants paused", fix: "resume_all", member_id: null }],
  household: { today_usd: 0, month_usd: 0, monthly_cap_usd: null, per_day: [], month: "2026-11", timezone: "UTC", month_split: { chat_usd: 0, images: 0, heard_usd: 0, heard_notes: 0, heard_minutes: 0, replies_usd: 0, replies: 0 } },
  ...over,
});

beforeEach(() => {
  invoke.mockReset();
  app.snapshot = null;
  app.go({ name: "dashboard" });
});
afterEach(() => cleanup());

describe("Dashboard", () => {
  it("heads with the pause, amber, and Resume resumes everyone", async () => {
    invoke.mockImplementation(async (cmd: string) => (cmd === "snapshot" ? snapshot({ health: "fine", problems: [], all_paused: false }) : null));
    app.setSnapshot(snapshot());
    render(Dashboard);
    expect(byId("health")).toHaveAttribute("data-health", "attention");
    expect(byId("headline")).toHaveTextContent("All assistants paused");
    expect(byId("member-status")).toHaveTextContent("Paused by you");
    // Load and capacity are in Settings → Advanced now.
    expect(screen.queryByTestId("turns")).toBeNull();
    await fireEvent.click(byId("headline-fix"));
    expect(invoke).toHaveBeenCalledWith("member_pause", { args: { paused: false } });
    await waitFor(() => expect(byId("headline")).toHaveTextContent("All is well"));
  });

  it("opens the member whose bot stopped working", async () => {
    const dead = { health: "broken" as const, text: "Ana's bot stopped working.", fix: "open_member" as const, member_id: "m1" };
    app.setSnapshot(snapshot({ health: "broken", problems: [dead, ...snapshot().problems] }));
    render(Dashboard);
    expect(byId("headline")).toHaveTextContent("Ana's bot stopped working. (and 1 more)");
    await fireEvent.click(byId("headline-fix"));
    expect(app.view).toEqual({ name: "member", id: "m1", pair: false });
  });
});

const settings = (over: Partial<SettingsDto> = {}): SettingsDto => ({
  data_dir: "/d", launch_at_login: true, keep_awake: { enabled: true, holding: true, available: true, detail: "Held." },
  power_restart: { on: null, detail: "A firmware setting.", command: null }, turn_cap: 64, timezone: "UTC", provider: null,
  backup: { dest_dir: null, every_hours: 0, last: null, suggested_dir: "/b" }, platform: "linux", daemon: null, ...over,
});

describe("AlwaysOn", () => {
  it("turns launch at login and keep-awake on, then ticks what the machine says", async () => {
    invoke.mockResolvedValue(settings({ keep_awake: { enabled: true, holding: false, available: false, detail: "No logind." } }));
    const ondone = vi.fn();
    render(AlwaysOn, { turnOn: true, ondone });
    expect(invoke).toHaveBeenCalledWith("settings_set", { args: { launch_at_login: true, keep_awake: true } });
    await waitFor(() => expect(byId("always-on-login")).toHaveAttribute("data-on", "true"));
    // Asked for, but the machine could not: no ✓.
    expect(byId("always-on-awake")).toHaveAttribute("data-on", "false");
    expect(byId("always-on-awake-toggle")).toHaveTextContent("Try again");
    expect(byId("always-on-power")).toHaveAttribute("data-on", "unknown");
    await fireEvent.click(byId("always-on-next"));
    expect(ondone).toHaveBeenCalledWith(expect.objectContaining({ launch_at_login: true }));
  });
});

describe("MemberForm in the wizard", () => {
  it("adds the first member as the admin unless told otherwise", async () => {
    invoke.mockImplementation(async (cmd: string) => {
      if (cmd === "bot_check") return { bot_username: "ana_bot", bot_name: "Ana" };
      if (cmd === "member_add") return { member_id: "m1", name: "Ana", bot_username: "ana_bot", code: "C", link: "l", qr_svg: "", expires_at: null };
    });
    const onadded = vi.fn();
    render(MemberForm, { onadded, askAdmin: true });
    expect(byId("member-is-you")).toBeChecked();
    await fireEvent.input(byId("member-name"), { target: { value: "Ana" } });
    await fireEvent.input(byId("member-token"), { target: { value: "123:ABCdef" } });
    await fireEvent.click(byId("member-add"));
    await waitFor(() => expect(onadded).toHaveBeenCalled());
    expect(invoke).toHaveBeenCalledWith("member_add", { args: { name: "Ana", role: "adult", token: "123:ABCdef", admin: true } });
  });

  it("does not ask on the members page", () => {
    render(MemberForm, { onadded: vi.fn() });
    expect(screen.queryByTestId("member-is-you")).toBeNull();
  });
});
