// The app's voice pieces as an admin uses them: Settings → Voice, the rate card's speech models,
// a member's "Answer in voice", and the month's split on the dashboard.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen, waitFor, within } from "@testing-library/svelte";

const invoke = vi.fn();
vi.mock("@tauri-apps/api/core", () => ({ invoke: (...a: unknown[]) => invoke(...a) }));

import VoiceSettings from "../components/VoiceSettings.svelte";
import RateCard from "../components/RateCard.svelte";
import MemberPage from "../components/MemberPage.svelte";
import Dashboard from "../components/Dashboard.svelte";
import { app } from "../lib/state.svelte";
import { memberDetail } from "./members";
import type { MemberDetail, PriceDto, Snapshot, SpeechServiceDto, VoiceSettingsDto } from "../lib/ipc.gen";

const byId = (id: string) => screen.getByTestId(id);
const type = (id: string, value: string) => fireEvent.input(byId(id), { target: { value } });
const calls = (cmd: string) => invoke.mock.calls.filter((c) => c[0] === cmd).map((c) => c[1]?.args);

beforeEach(() => {
  invoke.mockReset();
  app.snapshot = null;
});
afterEach(() => cleanup());

const voice = (): VoiceSettingsDto => ({
  hearing: { direction: "in", source: "chat_provider", base_url: "https://api.openai.com/v1", model: "whisper-1", voice: null },
  speaking: { direction: "out", source: "none", base_url: null, model: null, voice: null },
});

describe("VoiceSettings", () => {
  it("shows what is in force and tests hearing: what it heard, or the error sentence", async () => {
    let fail = false;
    invoke.mockImplementation(async (cmd: string) => {
      if (cmd === "voice_settings") return voice();
      if (cmd === "speech_test") {
        if (fail) throw { code: "rejected", message: "The speech service refused the key: paste it again." };
        return { direction: "in", model: "whisper-1", latency_ms: 640, heard: "Hello from Hearth.", audio_bytes: null };
      }
    });
    render(VoiceSettings);
    await waitFor(() => expect(byId("speech-in-state")).toHaveTextContent("Uses your AI provider's own service: whisper-1 at https://api.openai.com/v1."));
    expect(byId("speech-out-state")).toHaveTextContent("Not set up");
    expect(byId("speech-out-test")).toBeDisabled(); // nothing to test
    await fireEvent.click(byId("speech-in-test"));
    await waitFor(() => expect(byId("speech-in-result")).toHaveTextContent("✓ whisper-1 heard “Hello from Hearth.” in 0.6 s"));
    expect(calls("speech_test")).toEqual([{ direction: "in" }]);
    fail = true;
    await fireEvent.click(byId("speech-in-test"));
    await waitFor(() => expect(within(byId("speech-in-result")).getByRole("alert")).toHaveTextContent("refused the key"));
  });

  it("sets an own voice service with a voice name, never shows the key back, and turns hearing off", async () => {
    invoke.mockImplementation(async (cmd: string, a?: { args: Record<string, string> }): Promise<unknown> => {
      if (cmd === "voice_settings") return voice();
      if (cmd === "speech_service_set") {
        const { direction, base_url, model, voice } = a!.args;
        return { direction, source: "own", base_url, model, voice } as SpeechServiceDto;
      }
      if (cmd === "speech_service_off") return { direction: a!.args.direction, source: "off", base_url: null, model: null, voice: null };
      if (cmd === "speech_test") return { direction: "out", model: "tts-1", latency_ms: 910, heard: null, audio_bytes: 18432 };
    });
    render(VoiceSettings);
    await fireEvent.click(await screen.findByTestId("speech-out-edit"));
    expect(byId("speech-out-url")).toHaveValue("https://api.openai.com/v1");
    expect(byId("speech-out-model")).toHaveValue("tts-1");
    expect(byId("speech-out-voice")).toHaveValue("alloy");
    expect(byId("speech-out-key")).toHaveAttribute("type", "password");
    await type("speech-out-model", "");
    expect(byId("speech-out-save")).toBeDisabled(); // a service needs its model
    await type("speech-out-model", "tts-1");
    await type("speech-out-voice", "nova");
    await type("speech-out-key", "sk-voice");
    await fireEvent.click(byId("speech-out-save"));
    await waitFor(() => expect(byId("speech-out-state")).toHaveTextContent("Uses its own service: tts-1 (voice nova) at https://api.openai.com/v1."));
    expect(calls("speech_service_set")).toEqual([
      { direction: "out", base_url: "https://api.openai.com/v1", model: "tts-1", voice: "nova", api_key: "sk-voice" },
    ]);
    expect(screen.queryByTestId("speech-out-key")).toBeNull();
    expect(document.body.textContent).not.toContain("sk-voice");
    await fireEvent.click(byId("speech-out-test"));
    await waitFor(() => expect(byId("speech-out-result")).toHaveTextContent("✓ tts-1 spoke a test sentence in 0.9 s (18 KB of audio)"));

    await fireEvent.click(byId("speech-in-off"));
    await waitFor(() => expect(byId("speech-in-state")).toHaveTextContent("Turned off: a voice note gets a kind note asking to type instead."));
    expect(screen.queryByTestId("speech-in-off")).toBeNull();
    expect(byId("speech-in-test")).toBeDisabled();
  });
});

const price = (model: string, over: Partial<PriceDto> = {}): PriceDto => ({
  model, input_usd_per_mtok: 0, output_usd_per_mtok: 0, cached_input_usd_per_mtok: 0, source: "default (as of 2025-10)",
  usd_per_minute: null, usd_per_million_chars: null, ...over,
});

describe("RateCard", () => {
  it("shows speech models by the minute and voice models by the character, and sets their prices", async () => {
    let prices = [price("gpt-4o-mini", { input_usd_per_mtok: 0.15, output_usd_per_mtok: 0.6 }), price("whisper-1", { usd_per_minute: 0.006 }), price("tts-1", { usd_per_million_chars: 15 })];
    invoke.mockImplementation(async (cmd: string, a?: { args: { model: string; direction: string; usd: number } }) => {
      if (cmd === "prices") return prices;
      if (cmd === "speech_price_set") {
        const { model, direction, usd } = a!.args;
        prices = [...prices.filter((p) => p.model !== model), price(model, direction === "in" ? { usd_per_minute: usd, source: "admin" } : { usd_per_million_chars: usd, source: "admin" })];
        return prices;
      }
    });
    render(RateCard);
    const row = async (model: string) => (await screen.findAllByTestId("price-row")).find((r) => r.dataset.model === model)!;
    expect(within(await row("whisper-1")).getByTestId("price-speech")).toHaveTextContent("$0.006 per minute of audio");
    expect(within(await row("tts-1")).getByTestId("price-speech")).toHaveTextContent("$15.00 per million characters spoken");
    expect(within(await row("gpt-4o-mini")).queryByTestId("price-speech")).toBeNull();

    await fireEvent.click(within(await row("whisper-1")).getByTestId("price-edit"));
    expect(byId("price-per")).toHaveValue("0.006");
    await type("price-per", "0.004");
    await fireEvent.click(byId("price-save"));
    await waitFor(() => expect(within(byId("rate-card")).getByText("$0.004 per minute of audio")).toBeInTheDocument());

    await fireEvent.click(byId("price-add"));
    await fireEvent.change(byId("price-kind"), { target: { value: "out" } });
    await type("price-model", "kokoro");
    await type("price-per", "1.5");
    await fireEvent.click(byId("price-save"));
    await waitFor(() => expect(within(byId("rate-card")).getByText("$1.50 per million characters spoken")).toBeInTheDocument());
    expect(calls("speech_price_set")).toEqual([
      { model: "whisper-1", direction: "in", usd: 0.004 },
      { model: "kokoro", direction: "out", usd: 1.5 },
    ]);
  });
});

const detail = memberDetail;

describe("MemberPage", () => {
  it("shows the member's voice choice and saves a change through member_voice", async () => {
    let d = detail();
    invoke.mockImplementation(async (cmd: string, a?: { args: { voice_replies: MemberDetail["voice_replies"] } }) => {
      if (cmd === "member_list") return [d];
      if (cmd === "voice_settings") return voice();
      if (cmd === "member_update") return d;
      if (cmd === "member_voice") return (d = { ...d, voice_replies: a!.args.voice_replies });
      if (cmd === "member_caps") return d;
      if (cmd === "snapshot") return new Promise(() => {});
    });
    render(MemberPage, { id: "m1" });
    const whenSpoken = (await screen.findByTestId("member-voice-when_spoken-input")) as HTMLInputElement;
    expect(whenSpoken.checked).toBe(true);
    expect(byId("member-voice")).toHaveTextContent("When they send a voice note");
    // The household has no voice service yet: the page says so instead of promising voice.
    await waitFor(() => expect(byId("member-voice-unavailable")).toHaveTextContent("Settings → Voice"));

    await fireEvent.click(byId("member-voice-always"));
    expect(byId("member-voice")).toHaveTextContent("Every answer comes as a voice note");
    await fireEvent.click(byId("member-save"));
    await waitFor(() => expect(byId("member-saved")).toHaveTextContent("✓ Saved"));
    expect(calls("member_voice")).toEqual([{ member: "m1", voice_replies: "always" }]);
    expect((byId("member-voice-always-input") as HTMLInputElement).checked).toBe(true);

    // Saving again without a change asks nothing more of member_voice.
    await fireEvent.click(byId("member-save"));
    await waitFor(() => expect(calls("member_caps")).toHaveLength(2));
    expect(calls("member_voice")).toHaveLength(1);
    await fireEvent.click(byId("member-voice-never"));
    expect(screen.queryByTestId("member-voice-unavailable")).toBeNull();
  });
});

describe("Dashboard", () => {
  it("splits the month's spend into chat, voice notes heard and voice replies", () => {
    const split = { chat_usd: 17.2, images: 6, heard_usd: 0.3, heard_notes: 21, heard_minutes: 12.4, replies_usd: 1.01, replies: 9 };
    const household = { today_usd: 1, month_usd: 18.51, monthly_cap_usd: null, per_day: [], month: "2026-11", timezone: "UTC", month_split: split };
    app.setSnapshot({ phase: "serving", health: "fine", problems: [], provider: null, members: [], household, turns_in_flight: 0, turn_cap: 4, isolation: "account", host: null, all_paused: false, paused_since: null, uptime_secs: 1 } as Snapshot);
    render(Dashboard);
    expect(byId("household-month-split")).toHaveTextContent("Chat ≈ US$17.20 (6 photos) · Voice notes heard ≈ US$0.30 (12 min) · Voice replies ≈ US$1.01 (9 sent)");
    cleanup();
    app.setSnapshot({ ...app.snapshot!, household: { ...household, month_split: { ...split, images: 0, heard_usd: 0, heard_notes: 0, heard_minutes: 0, replies_usd: 0, replies: 0 } } });
    render(Dashboard);
    expect(screen.queryByTestId("household-month-split")).toBeNull();
  });
});
