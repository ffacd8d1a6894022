import { describe, expect, it } from "vitest";
import {
  barLevel, barPercent, dollarsText, isolationInfo, laneLabel, looksLikeToken, money, parseDollars, priceText, relativeTime,
} from "../lib/format";

describe("money", () => {
  it("formats dollars with two decimals and thousands separators", () => {
    expect(money(0)).toBe("$0.00");
    expect(money(3.2)).toBe("$3.20");
    expect(money(1234.567)).toBe("$1,234.57");
    expect(money(0.004)).toBe("$0.00");
    expect(money(-0)).toBe("$0.00");
    expect(money(NaN)).toBe("$0.00");
    expect(money(null)).toBe("$0.00");
  });
  it("shows prices with two to four decimals", () => {
    expect(priceText(0.6)).toBe("$0.60");
    expect(priceText(0.075)).toBe("$0.075");
    expect(priceText(15)).toBe("$15.00");
  });
});

describe("bars", () => {
  it("is a percentage of the cap, clamped", () => {
    expect(barPercent(5, 10)).toBe(50);
    expect(barPercent(15, 10)).toBe(100);
    expect(barPercent(-1, 10)).toBe(0);
  });
  it("has no fill without a cap", () => {
    expect(barPercent(5, null)).toBeNull();
    expect(barPercent(5, undefined)).toBeNull();
    expect(barLevel(5, null)).toBe("none");
  });
  it("treats a zero cap as full once anything is spent", () => {
    expect(barPercent(0, 0)).toBe(0);
    expect(barPercent(0.01, 0)).toBe(100);
  });
  it("warns from 80 % and is over at 100 %", () => {
    expect(barLevel(7.9, 10)).toBe("ok");
    expect(barLevel(8, 10)).toBe("warn");
    expect(barLevel(10, 10)).toBe("over");
  });
});

describe("laneLabel", () => {
  it("says exactly Idle, N waiting or Thinking N s", () => {
    expect(laneLabel({ state: "idle", queued: 0, secs: 0, doing: "thinking" })).toBe("Idle");
    expect(laneLabel({ state: "queued", queued: 2, secs: 0, doing: "thinking" })).toBe("2 waiting");
    expect(laneLabel({ state: "thinking", queued: 3, secs: 4, doing: "thinking" })).toBe("Thinking 4 s");
  });
  it("says what a running turn does, never what about", () => {
    expect(laneLabel({ state: "thinking", queued: 0, secs: 2, doing: "listening" })).toBe("Listening… 2 s");
    expect(laneLabel({ state: "thinking", queued: 0, secs: 2, doing: "looking" })).toBe("Looking at a photo… 2 s");
    expect(laneLabel({ state: "thinking", queued: 0, secs: 2, doing: "speaking" }, 1)).toBe("Recording a voice reply… 3 s");
    expect(laneLabel({ state: "thinking", queued: 0, secs: 5, doing: "writing" }, 0.4)).toBe("Writing… 5 s");
    // A lane with no running turn is idle or waiting, whatever `doing` says.
    expect(laneLabel({ state: "queued", queued: 1, secs: 0, doing: "listening" })).toBe("1 waiting");
  });
  it("counts on between snapshots", () => {
    expect(laneLabel({ state: "thinking", queued: 0, secs: 4, doing: "thinking" }, 2.7)).toBe("Thinking 6 s");
    expect(laneLabel({ state: "idle", queued: 0, secs: 0, doing: "thinking" }, 5)).toBe("Idle");
  });
});

describe("relativeTime", () => {
  const now = Date.parse("2025-03-10T12:00:00Z");
  const ago = (s: number) => new Date(now - s * 1000).toISOString();
  it("reads like a person would say it", () => {
    expect(relativeTime(null, now)).toBe("No activity yet");
    expect(relativeTime("nonsense", now)).toBe("No activity yet");
    expect(relativeTime(ago(10), now)).toBe("just now");
    expect(relativeTime(ago(120), now)).toBe("2 min ago");
    expect(relativeTime(ago(3 * 3600), now)).toBe("3 h ago");
    expect(relativeTime(ago(26 * 3600), now)).toBe("yesterday");
    expect(relativeTime(ago(4 * 86400), now)).toBe("4 days ago");
    expect(relativeTime(ago(40 * 86400), now)).toMatch(/2025/);
  });
  it("treats a clock slightly ahead as just now", () => {
    expect(relativeTime(ago(-5), now)).toBe("just now");
  });
});

describe("looksLikeToken", () => {
  it("accepts digits:rest", () => {
    expect(looksLikeToken("123456789:AAHfiqksKZ8WmR2zSjiQ7_v4TMAKdiHm9T0")).toBe(true);
    expect(looksLikeToken("  42:abc-DEF_1 ")).toBe(true);
  });
  it("rejects anything else", () => {
    for (const t of ["", "123456789", ":abc", "abc:def", "123:", "123: abc", "123:abc def"]) expect(looksLikeToken(t)).toBe(false);
  });
});

describe("dollar inputs", () => {
  it("parses what people type", () => {
    expect(parseDollars("30")).toBe(30);
    expect(parseDollars("$12.50")).toBe(12.5);
    expect(parseDollars("1,000")).toBe(1000);
    expect(parseDollars(".5")).toBe(0.5);
    expect(parseDollars("")).toBeNull();
    expect(parseDollars("ten")).toBeNull();
    expect(parseDollars("-5")).toBeNull();
  });
  it("shows stored amounts", () => {
    expect(dollarsText(null)).toBe("");
    expect(dollarsText(30)).toBe("30");
    expect(dollarsText(2.5)).toBe("2.50");
  });
});

describe("isolationInfo", () => {
  it("flags the process level as weaker", () => {
    expect(isolationInfo("process").tone).toBe("warn");
    expect(isolationInfo("account").tone).toBe("good");
    expect(isolationInfo("account + sandbox").label).toBe("Own account + sandbox");
    expect(isolationInfo("something new").label).toBe("something new");
  });
});
