import { describe, expect, it, vi } from "vitest";
import { applianceGuide, copyText, supervisorView } from "../lib/appliance";
import type { Platform } from "../lib/ipc.gen";
import { errorCode, errorMessage, FALLBACK_ERROR } from "../lib/errors";
import { layoutChart, niceMax } from "../lib/chart";
import { looksLikeToken, parseDollars } from "../lib/format";
import {
  budgetValue, canAddMember, canContinueProvider, canTestProvider, providerArgs, stepLabel,
} from "../lib/wizard";

describe("errorMessage", () => {
  it("reads an IpcError, a string and an Error", () => {
    expect(errorMessage({ code: "rejected", message: "The key is wrong." })).toBe("The key is wrong.");
    expect(errorMessage("Command not found")).toBe("Command not found");
    expect(errorMessage(new Error("boom"))).toBe("boom");
    expect(errorCode({ code: "not_found", message: "x" })).toBe("not_found");
    expect(errorCode("x")).toBeNull();
  });
  it("falls back for anything without words", () => {
    for (const e of [undefined, null, 42, {}, "", { message: "  " }]) expect(errorMessage(e)).toBe(FALLBACK_ERROR);
  });
});

describe("chart", () => {
  it("rounds the axis up to a nice number", () => {
    expect(niceMax(0)).toBe(1);
    expect(niceMax(0.37)).toBe(0.5);
    expect(niceMax(1)).toBe(1);
    expect(niceMax(1.2)).toBe(2);
    expect(niceMax(2.3)).toBe(2.5);
    expect(niceMax(7)).toBe(10);
    expect(niceMax(180)).toBe(200);
  });
  it("scales bars to the tallest day and keeps tiny days visible", () => {
    const c = layoutChart(
      [
        { date: "2025-03-01", usd: 2 },
        { date: "2025-03-02", usd: 0 },
        { date: "2025-03-03", usd: 1 },
        { date: "2025-03-04", usd: 0.0001 },
      ],
      310,
      100,
    );
    expect(c.max).toBe(2);
    expect(c.bars.map((b) => b.h)).toEqual([100, 0, 50, 1]);
    expect(c.bars[0].y).toBe(0);
    expect(c.bars[2].y).toBe(50);
    expect(c.bars[2].day).toBe(3);
    expect(c.bars[1].x).toBeCloseTo(10 + 1.5);
    expect(c.ticks).toEqual([0, 1, 2]);
  });
  it("handles an empty month", () => {
    const c = layoutChart([], 300, 100);
    expect(c.bars).toEqual([]);
    expect(c.max).toBe(1);
  });
});

describe("wizard gating", () => {
  it("labels the steps after Welcome", () => {
    expect(stepLabel("welcome")).toBeNull();
    expect(stepLabel("provider")).toBe("Step 1 of 6");
    expect(stepLabel("budget")).toBe("Step 2 of 6");
    expect(stepLabel("done")).toBe("Step 6 of 6");
  });
  it("maps the local choice to the OpenAI-compatible kind and trims", () => {
    expect(providerArgs("local", " http://localhost:11434/v1 ", "llama3.2", "")).toEqual({
      kind: "openai", base_url: "http://localhost:11434/v1", model: "llama3.2", api_key: "",
    });
    expect(providerArgs("anthropic", "u", "m", " k ").kind).toBe("anthropic");
  });
  it("needs a key to test a cloud provider, not a local one", () => {
    expect(canTestProvider("openai", providerArgs("openai", "u", "m", ""))).toBe(false);
    expect(canTestProvider("openai", providerArgs("openai", "u", "m", "k"))).toBe(true);
    expect(canTestProvider("local", providerArgs("local", "u", "m", ""))).toBe(true);
    expect(canTestProvider("local", providerArgs("local", "u", "", ""))).toBe(false);
  });
  it("continues only after a successful test of exactly these values", () => {
    const a = providerArgs("openai", "u", "m", "k");
    expect(canContinueProvider(null, a)).toBe(false);
    expect(canContinueProvider({ ...a }, a)).toBe(true);
    expect(canContinueProvider({ ...a, model: "other" }, a)).toBe(false);
    expect(canContinueProvider({ ...a, api_key: "k2" }, a)).toBe(false);
  });
  it("reads the household budget", () => {
    expect(budgetValue(true, "abc", parseDollars)).toBeNull();
    expect(budgetValue(false, "30", parseDollars)).toBe(30);
    expect(budgetValue(false, "0", parseDollars)).toBeUndefined();
    expect(budgetValue(false, "", parseDollars)).toBeUndefined();
  });
  it("adds a member with a name and a token-shaped token", () => {
    expect(canAddMember("Ana", "123:abc", looksLikeToken)).toBe(true);
    expect(canAddMember("  ", "123:abc", looksLikeToken)).toBe(false);
    expect(canAddMember("Ana", "abc", looksLikeToken)).toBe(false);
  });
});

describe("applianceGuide", () => {
  const commands = (p: Platform) => applianceGuide(p).steps.flatMap((s) => (s.command ? [s.command] : []));
  it("gives a Mac the power, sleep, FileVault and supervisor steps", () => {
    const g = applianceGuide("macos");
    expect(g.heading).toBe("This Mac as an appliance");
    expect(commands("macos")).toEqual(expect.arrayContaining(["sudo pmset -a autorestart 1", "sudo pmset -a sleep 0 disksleep 0"]));
    const ids = g.steps.map((s) => s.id);
    expect(ids).toEqual(["autorestart", "sleep", "filevault", "login", "supervisor"]);
    expect(g.steps.find((s) => s.id === "filevault")!.text).toMatch(/FileVault.*disk password.*Automatic login.*unavailable with FileVault/s);
    expect(g.steps.find((s) => s.id === "supervisor")!.text).toContain("System Settings → General → Login Items");
    expect(g.steps.filter((s) => s.loginToggle)).toHaveLength(1);
  });
  it("gives Linux the systemd equivalents", () => {
    const g = applianceGuide("linux");
    expect(g.heading).toBe("This machine as an appliance");
    expect(commands("linux")).toEqual([
      "sudo systemctl enable --now hearth-supervisor hearth",
      "sudo systemctl mask sleep.target suspend.target hibernate.target hybrid-sleep.target",
    ]);
    expect(commands("linux").join(" ")).not.toContain("pmset");
  });
  it("falls back to the login toggle elsewhere", () => {
    expect(applianceGuide("other").steps.map((s) => s.id)).toEqual(["login"]);
  });
});

describe("supervisorView", () => {
  const daemon = (state: "not_registered" | "requires_approval" | "enabled" | "not_found") => ({ state, text: `macOS says ${state}` });
  it("leads the admin from registering to allowing to restarting", () => {
    expect(supervisorView(daemon("not_registered"), "process").actions).toEqual(["register"]);
    const waiting = supervisorView(daemon("requires_approval"), "process");
    expect(waiting.actions).toEqual(["open_settings", "check"]);
    expect(waiting.text).toBe("macOS says requires_approval");
    const allowed = supervisorView(daemon("enabled"), "process");
    expect(allowed.actions).toEqual(["restart"]);
    expect(allowed.ok).toBe(false);
    expect(allowed.text).toContain("Restart Hearth");
  });
  it("says plainly when members have their accounts, or when the bundle is broken", () => {
    const done = supervisorView(daemon("enabled"), "account + sandbox");
    expect(done).toEqual({ ok: true, text: "Allowed: each member has an account of their own (account + sandbox).", actions: [] });
    expect(supervisorView(daemon("not_found"), "").actions).toEqual([]);
    expect(supervisorView(null, "process")).toEqual({ ok: false, text: "", actions: [] });
  });
});

describe("copyText", () => {
  it("writes to the clipboard and says whether it could", async () => {
    const writeText = vi.fn(async () => {});
    expect(await copyText("sudo pmset -a autorestart 1", { writeText })).toBe(true);
    expect(writeText).toHaveBeenCalledWith("sudo pmset -a autorestart 1");
    expect(await copyText("x", { writeText: async () => Promise.reject(new Error("denied")) })).toBe(false);
    expect(await copyText("x", undefined)).toBe(false);
  });
});
