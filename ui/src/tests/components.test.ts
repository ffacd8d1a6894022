import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/svelte";

const invoke = vi.fn();
vi.mock("@tauri-apps/api/core", () => ({ invoke: (...a: unknown[]) => invoke(...a) }));

import ProviderForm from "../components/ProviderForm.svelte";
import MemberCard from "../components/MemberCard.svelte";
import TokenField from "../components/TokenField.svelte";
import PairingPanel from "../components/PairingPanel.svelte";
import CopyCommand from "../components/CopyCommand.svelte";
import Settings from "../components/Settings.svelte";
import Wizard from "../components/Wizard.svelte";
import { app } from "../lib/state.svelte";
import type { MemberCard as Card, PairingDto, Snapshot } from "../lib/ipc.gen";

const byId = (id: string) => screen.getByTestId(id);
const type = (id: string, value: string) => fireEvent.input(byId(id), { target: { value } });

beforeEach(() => {
  invoke.mockReset();
  app.snapshot = null;
});
afterEach(() => {
  cleanup();
  vi.useRealTimers();
});

describe("ProviderForm", () => {
  it("enables Continue only after a successful test of the current values", async () => {
    const onsaved = vi.fn();
    invoke.mockImplementation(async (cmd: string, a?: { args: Record<string, string> }) => {
      if (cmd === "provider_test") {
        if (a!.args.api_key === "bad") throw { code: "rejected", message: "The key is wrong." };
        return { model: a!.args.model, reply: "Hello there", latency_ms: 800 };
      }
      if (cmd === "provider_set") return { kind: a!.args.kind, base_url: a!.args.base_url, model: a!.args.model };
    });
    render(ProviderForm, { onsaved });

    const next = byId("wizard-next");
    expect(next).toBeDisabled();
    expect(byId("provider-test")).toBeDisabled(); // no key yet

    await type("provider-key", "bad");
    await fireEvent.click(byId("provider-test"));
    await waitFor(() => expect(screen.getByRole("alert")).toHaveTextContent("The key is wrong."));
    expect(next).toBeDisabled();

    await type("provider-key", "sk-good");
    await fireEvent.click(byId("provider-test"));
    await waitFor(() => expect(byId("provider-result")).toHaveTextContent("✓ Connected — the model answered “Hello there” in 0.8 s"));
    expect(next).toBeEnabled();

    await type("provider-model", "gpt-4o");
    expect(next).toBeDisabled();
    expect(byId("provider-result")).toHaveTextContent("");
    await type("provider-model", "gpt-4o-mini");
    expect(next).toBeEnabled();

    await fireEvent.click(next);
    await waitFor(() => expect(onsaved).toHaveBeenCalled());
    expect(invoke).toHaveBeenLastCalledWith("provider_set", {
      args: { kind: "openai", base_url: "https://api.openai.com/v1", model: "gpt-4o-mini", api_key: "sk-good" },
    });
  });

  it("hides the base URL behind Advanced for cloud providers", async () => {
    render(ProviderForm, { onsaved: () => {} });
    expect(screen.queryByTestId("provider-base-url")).toBeNull();
    await fireEvent.click(byId("provider-advanced"));
    expect(byId("provider-base-url")).toHaveValue("https://api.openai.com/v1");
    await fireEvent.click(byId("provider-choice-anthropic"));
    expect(byId("provider-base-url")).toHaveValue("https://api.anthropic.com");
    expect(byId("provider-model")).toHaveValue("claude-sonnet-4-5");
  });

  it("finds Ollama and lets a local model be tested without a key", async () => {
    invoke.mockImplementation(async (cmd: string) => {
      if (cmd === "provider_detect") return [{ name: "Ollama", base_url: "http://localhost:11434/v1", models: ["llama3.2", "qwen2.5"] }];
      if (cmd === "provider_test") return { model: "llama3.2", reply: "Hi", latency_ms: 1500 };
    });
    render(ProviderForm, { onsaved: () => {} });
    await fireEvent.click(byId("provider-choice-local"));
    await screen.findByText(/Found Ollama on this machine with 2 models/);
    expect(byId("provider-base-url")).toHaveValue("http://localhost:11434/v1");
    expect(byId("provider-model")).toHaveValue("llama3.2");
    expect(byId("provider-test")).toBeEnabled();
    await fireEvent.click(byId("provider-test"));
    await waitFor(() => expect(byId("wizard-next")).toBeEnabled());
  });

  it("says plainly when no local model server is found", async () => {
    invoke.mockResolvedValue([]);
    render(ProviderForm, { onsaved: () => {} });
    await fireEvent.click(byId("provider-choice-local"));
    await screen.findByText(/No local model server was found/);
    expect(screen.getByText(/Install Ollama from ollama.com/)).toBeInTheDocument();
  });
});

describe("TokenField", () => {
  it("asks Telegram once, 400 ms after a token-shaped paste", async () => {
    vi.useFakeTimers();
    invoke.mockResolvedValue({ bot_username: "ana_hearth_bot", bot_name: "Ana's Hearth" });
    render(TokenField, { token: "", identity: null });
    await type("member-token", "123");
    await type("member-token", "123:ABC");
    await type("member-token", "123:ABCdef");
    await vi.advanceTimersByTimeAsync(399);
    expect(invoke).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    expect(invoke).toHaveBeenCalledTimes(1);
    expect(invoke).toHaveBeenCalledWith("bot_check", { args: { token: "123:ABCdef" } });
    vi.useRealTimers();
    await waitFor(() => expect(byId("bot-identity")).toHaveTextContent("✓ This is @ana_hearth_bot (Ana's Hearth)"));
  });

  it("does not call Telegram for something that is not a token", async () => {
    vi.useFakeTimers();
    render(TokenField, { token: "", identity: null });
    await type("member-token", "hello");
    await vi.advanceTimersByTimeAsync(1000);
    expect(invoke).not.toHaveBeenCalled();
    expect(byId("bot-identity")).toHaveTextContent("doesn't look like a bot token");
  });
});

const card = (over: Partial<Card> = {}): Card => ({
  id: "m1", name: "Ana", role: "adult", bot_username: "ana_hearth_bot", bot: { state: "polling", label: "Connected" },
  paired: true, paused: false, lane: { state: "idle", queued: 0, secs: 0, doing: "thinking" }, last_activity: null,
  today_usd: 0.5, today_calls: 1, month_usd: 4, daily_cap_usd: 2, monthly_cap_usd: null, isolation: "account", resting_until: null, status: { text: "2 waiting", tone: "info" }, days: [], ...over,
});

describe("MemberCard", () => {
  it("shows the live lane, spend bars in dollars and badges", () => {
    render(MemberCard, { m: card({ lane: { state: "queued", queued: 2, secs: 0, doing: "thinking" } }) });
    expect(byId("member-card")).toHaveAttribute("data-member", "Ana");
    expect(byId("lane-state")).toHaveTextContent(/^2 waiting$/);
    expect(byId("spend-today")).toHaveTextContent("≈ US$0.50");
    const today = byId("spend-today-bar");
    expect(today).toHaveAttribute("role", "progressbar");
    expect(today).toHaveAttribute("aria-valuenow", "0.5");
    expect(today).toHaveAttribute("aria-valuemax", "2");
    expect(today).toHaveAttribute("aria-valuetext", "≈ US$0.50 of US$2");
    const month = byId("spend-month-bar");
    expect(month).toHaveAttribute("aria-valuenow", "4");
    expect(month).not.toHaveAttribute("aria-valuemax");
    expect(month).toHaveAttribute("aria-valuetext", "≈ US$4.00, no limit");
    expect(screen.queryByTestId("paused-badge")).toBeNull();
    expect(byId("paired-state")).toHaveTextContent("Paired");
    expect(byId("member-status")).toHaveTextContent(/^2 waiting$/);
    // How members are kept apart is for Settings → Advanced, not every card.
    expect(screen.queryByTestId("isolation-badge")).toBeNull();
  });

  it("shows paused, unpaired and thinking", () => {
    app.snapshotAt = Date.now();
    app.now = app.snapshotAt;
    render(MemberCard, { m: card({ paused: true, paired: false, lane: { state: "thinking", queued: 0, secs: 4, doing: "thinking" }, status: { text: "Not connected to Telegram yet", tone: "warn" } }) });
    expect(byId("paused-badge")).toHaveTextContent("Paused");
    expect(byId("lane-state")).toHaveTextContent(/^Thinking 4 s$/);
    expect(byId("paired-state")).toHaveTextContent("Not paired yet — pair now");
    expect(byId("member-status")).toHaveTextContent("Not connected to Telegram yet");
  });

  it("shows a voice note being heard and a photo being looked at", async () => {
    app.snapshotAt = Date.now();
    app.now = app.snapshotAt;
    const { rerender } = render(MemberCard, { m: card({ lane: { state: "thinking", queued: 0, secs: 1, doing: "listening" } }) });
    expect(byId("lane-state")).toHaveTextContent(/^Listening… 1 s$/);
    await rerender({ m: card({ lane: { state: "thinking", queued: 0, secs: 2, doing: "looking" } }) });
    expect(byId("lane-state")).toHaveTextContent(/^Looking at a photo… 2 s$/);
  });
});

const pairing: PairingDto = {
  member_id: "m1", name: "Ana", bot_username: "ana_hearth_bot", code: "K7QXM2PA",
  link: "https://t.me/ana_hearth_bot?start=K7QXM2PA", qr_svg: "<svg xmlns='http://www.w3.org/2000/svg'></svg>", expires_at: null,
};

describe("PairingPanel", () => {
  it("shows the QR as an image and turns to paired from the snapshot", async () => {
    invoke.mockReturnValue(new Promise(() => {}));
    render(PairingPanel, { pairing });
    const img = byId("pair-qr") as HTMLImageElement;
    expect(img.getAttribute("src")).toMatch(/^data:image\/svg\+xml;utf8,%3Csvg/);
    expect(img).toHaveAttribute("alt");
    expect(byId("pair-link")).toHaveValue(pairing.link);
    expect(byId("pair-code")).toHaveTextContent("K7QXM2PA");
    expect(byId("pair-status")).toHaveTextContent("Waiting for Ana to press Start…");
    app.setSnapshot({ members: [card({ paired: true })] } as unknown as Snapshot);
    await waitFor(() => expect(byId("pair-status")).toHaveTextContent("✓ Connected to Ana's Telegram (@ana_hearth_bot)"));
  });
});

describe("Wizard", () => {
  it("walks from Welcome to the provider step", async () => {
    render(Wizard, { oninfo: () => {} });
    expect(byId("wizard-welcome")).toBeInTheDocument();
    await fireEvent.click(byId("start-setup"));
    expect(byId("wizard-provider")).toBeInTheDocument();
    expect(screen.getByText("Step 1 of 6")).toBeInTheDocument();
    expect(byId("wizard-next")).toBeDisabled();
  });

  it("starts the demo", async () => {
    const oninfo = vi.fn();
    invoke.mockResolvedValue({ phase: "demo", version: "1", data_dir: "/x", problem: null });
    render(Wizard, { oninfo });
    await fireEvent.click(byId("try-demo"));
    await waitFor(() => expect(oninfo).toHaveBeenCalledWith(expect.objectContaining({ phase: "demo" })));
  });
});

describe("CopyCommand", () => {
  it("copies the command and says so, or selects it when there is no clipboard", async () => {
    const writeText = vi.fn(async () => {});
    Object.defineProperty(navigator, "clipboard", { value: { writeText }, configurable: true });
    render(CopyCommand, { command: "sudo pmset -a autorestart 1", testid: "cmd" });
    await fireEvent.click(byId("cmd-copy"));
    await waitFor(() => expect(byId("cmd-copy")).toHaveTextContent("✓ Copied"));
    expect(writeText).toHaveBeenCalledWith("sudo pmset -a autorestart 1");
    cleanup();

    Object.defineProperty(navigator, "clipboard", { value: undefined, configurable: true });
    render(CopyCommand, { command: "sudo pmset -a sleep 0 disksleep 0", testid: "cmd" });
    await fireEvent.click(byId("cmd-copy"));
    await waitFor(() => expect(screen.getByText(/press ⌘C or Ctrl\+C/)).toBeInTheDocument());
    expect(window.getSelection()?.toString()).toBe("sudo pmset -a sleep 0 disksleep 0");
    expect(byId("cmd-copy")).toHaveTextContent("Copy");
  });
});

describe("Settings", () => {
  // What the rest of the page asks for: the rate card (no rows) and the voice section.
  const other = (cmd: string) =>
    cmd === "voice_settings"
      ? {
          hearing: { direction: "in", source: "off", base_url: null, model: null, voice: null },
          speaking: { direction: "out", source: "off", base_url: null, model: null, voice: null },
        }
      : [];
  const settings = (platform: string) => ({
    data_dir: "/d", launch_at_login: false, keep_awake: { enabled: false, available: true, detail: "" },
    turn_cap: 4, timezone: "UTC", provider: null, platform, daemon: platform === "macos" ? { state: "not_registered", text: "" } : null,
    backup: { dest_dir: null, every_hours: 0, last: null, suggested_dir: "/srv/hearth-backups" },
  });
  it("shows the Mac's appliance steps with copyable commands", async () => {
    invoke.mockImplementation(async (cmd: string) => (cmd === "settings" ? settings("macos") : other(cmd)));
    render(Settings);
    await waitFor(() => expect(byId("appliance")).toHaveTextContent("This Mac as an appliance"));
    expect(byId("appliance-autorestart-command")).toHaveTextContent("sudo pmset -a autorestart 1");
    expect(byId("appliance-supervisor")).toHaveTextContent("Login Items");
    expect(byId("appliance-login")).toHaveTextContent("Off — turn on");
  });
  it("registers the Mac's supervisor and then opens Login Items for the approval", async () => {
    invoke.mockImplementation(async (cmd: string) => {
      if (cmd === "settings") return settings("macos");
      if (cmd === "daemon_register") return { state: "requires_approval", text: "The Hearth supervisor waits for your approval." };
      if (cmd === "daemon_open_settings") return null;
      return other(cmd);
    });
    render(Settings);
    await fireEvent.click(await screen.findByTestId("supervisor-register"));
    await waitFor(() => expect(byId("supervisor-state")).toHaveTextContent("waits for your approval"));
    expect(screen.queryByTestId("supervisor-register")).toBeNull();
    await fireEvent.click(byId("supervisor-open-settings"));
    await waitFor(() => expect(invoke.mock.calls.map((c) => c[0])).toContain("daemon_open_settings"));
  });
  it("shows systemd's on Linux", async () => {
    invoke.mockImplementation(async (cmd: string) => (cmd === "settings" ? settings("linux") : other(cmd)));
    render(Settings);
    await waitFor(() => expect(byId("appliance")).toHaveTextContent("This machine as an appliance"));
    expect(byId("appliance-services-command")).toHaveTextContent("sudo systemctl enable --now hearth-supervisor hearth");
    expect(screen.queryByTestId("appliance-supervisor")).toBeNull();
  });
  it("backs up now into the suggested folder and says where", async () => {
    invoke.mockImplementation(async (cmd: string, args?: { args?: { dest_dir?: string } }) => {
      if (cmd === "settings") return settings("linux");
      if (cmd === "backup_now") return { path: `${args?.args?.dest_dir}/hearth-backup-20261121-101500`, members: 2, megabytes: 3 };
      return other(cmd);
    });
    render(Settings);
    await waitFor(() => expect(byId("backup-dir")).toHaveValue("/srv/hearth-backups"));
    expect(byId("backup-state")).toHaveTextContent("Scheduled backups are off.");
    await fireEvent.click(byId("backup-now"));
    await waitFor(() =>
      expect(byId("backup-result")).toHaveTextContent("✓ Saved 2 members (3 MB) to /srv/hearth-backups/hearth-backup-20261121-101500"),
    );
  });
});
