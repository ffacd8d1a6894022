// The app's side of replies shown as they are written (#16): a member's switch, saved through
// member_streaming only when it changed, and the dashboard lane saying "Writing…".
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/svelte";

const invoke = vi.fn();
vi.mock("@tauri-apps/api/core", () => ({ invoke: (...a: unknown[]) => invoke(...a) }));

import MemberPage from "../components/MemberPage.svelte";
import MemberCard from "../components/MemberCard.svelte";
import { app } from "../lib/state.svelte";
import { memberDetail } from "./members";
import type { MemberCard as Card } from "../lib/ipc.gen";

const byId = (id: string) => screen.getByTestId(id);
const calls = (cmd: string) => invoke.mock.calls.filter((c) => c[0] === cmd).map((c) => c[1]?.args);

beforeEach(() => {
  invoke.mockReset();
  app.snapshot = null;
});
afterEach(() => cleanup());

const detail = memberDetail;

describe("MemberPage: Show replies as they are written", () => {
  it("shows the member's setting and saves a change through member_streaming only", async () => {
    let d = detail();
    invoke.mockImplementation(async (cmd: string, a?: { args: { streaming: boolean } }) => {
      if (cmd === "member_list") return [d];
      if (cmd === "voice_settings") throw { code: "unavailable", message: "not now" };
      if (cmd === "member_update" || cmd === "member_caps") return d;
      if (cmd === "member_streaming") return (d = { ...d, streaming: a!.args.streaming });
      if (cmd === "snapshot") return new Promise(() => {});
    });
    render(MemberPage, { id: "m1" });
    const box = (await screen.findByTestId("member-streaming")) as HTMLInputElement;
    await waitFor(() => expect(box.checked).toBe(true));
    expect(box).toHaveAttribute("role", "switch");
    expect(box).toHaveAccessibleName("Show replies as they are written");
    expect(byId("member-streaming-hint")).toHaveTextContent("Sam sees the answer appear in Telegram while it is written.");

    // Saving other things leaves the setting alone.
    await fireEvent.click(byId("member-save"));
    await waitFor(() => expect(calls("member_caps")).toHaveLength(1));
    expect(calls("member_streaming")).toEqual([]);

    await fireEvent.click(box);
    expect(byId("member-streaming-hint")).toHaveTextContent("Sam sees the answer only when it is finished.");
    await fireEvent.click(byId("member-save"));
    await waitFor(() => expect(byId("member-saved")).toHaveTextContent("✓ Saved"));
    expect(calls("member_streaming")).toEqual([{ member: "m1", streaming: false }]);
    expect((byId("member-streaming") as HTMLInputElement).checked).toBe(false);
  });

  it("shows a member who turned it off as off", async () => {
    invoke.mockImplementation(async (cmd: string) => {
      if (cmd === "member_list") return [detail({ streaming: false })];
      if (cmd === "voice_settings") return new Promise(() => {});
    });
    render(MemberPage, { id: "m1" });
    await waitFor(() => expect((byId("member-streaming") as HTMLInputElement).checked).toBe(false));
    expect(byId("member-streaming-hint")).toHaveTextContent("only when it is finished");
  });
});

describe("MemberCard: Writing…", () => {
  it("says Writing… while the answer is written, and counts on", async () => {
    app.snapshotAt = Date.now();
    app.now = app.snapshotAt;
    const card: Card = {
      id: "m1", name: "Ana", role: "adult", bot_username: "ana_hearth_bot", bot: { state: "polling", label: "Connected" },
      paired: true, paused: false, lane: { state: "thinking", queued: 0, secs: 3, doing: "writing" }, last_activity: null,
      today_usd: 0, month_usd: 0, daily_cap_usd: null, monthly_cap_usd: null, isolation: "account", today_calls: 1, resting_until: null, status: { text: "Answering", tone: "info" }, days: [],
    };
    render(MemberCard, { m: card });
    expect(byId("lane-state")).toHaveTextContent(/^Writing… 3 s$/);
    app.now = app.snapshotAt + 2000;
    await waitFor(() => expect(byId("lane-state")).toHaveTextContent(/^Writing… 5 s$/));
  });
});
