import { describe, expect, it } from "vitest";
import { contrast, daysInMonth, layoutMonth, projectMonth, recentDays, SERIES_COLOURS, todayIn } from "../lib/chart";
import { capText, spent, spentOfCap } from "../lib/format";

describe("spend is an estimate, caps are exact", () => {
  it("marks spend with ≈ and names the currency", () => {
    expect(spent(0.03)).toBe("≈ US$0.03");
    expect(spent(1234.567)).toBe("≈ US$1,234.57");
    expect(spent(0.004)).toBe("< US$0.01");
    expect(spent(0)).toBe("US$0.00");
    expect(spent(-0)).toBe("US$0.00");
    expect(spent(NaN)).toBe("US$0.00");
    expect(spent(null)).toBe("US$0.00");
  });
  it("shows caps as the admin set them", () => {
    expect(capText(30)).toBe("US$30");
    expect(capText(12.5)).toBe("US$12.50");
    expect(capText(1000)).toBe("US$1,000");
    expect(spentOfCap(3.2, 30)).toBe("≈ US$3.20 of US$30");
    expect(spentOfCap(3.2, null)).toBe("≈ US$3.20, no limit");
  });
});

describe("the month's axis", () => {
  it("knows each month's length", () => {
    expect(daysInMonth("2026-02")).toBe(28);
    expect(daysInMonth("2028-02")).toBe(29);
    expect(daysInMonth("2026-12")).toBe(31);
    expect(daysInMonth("2026-11")).toBe(30);
    expect(daysInMonth("nope")).toBe(0);
    expect(daysInMonth("2026-13")).toBe(0);
  });

  it("reads today on the household's clock", () => {
    const now = new Date("2026-12-08T02:30:00Z");
    expect(todayIn("Europe/Berlin", now)).toBe("2026-12-08");
    expect(todayIn("America/Los_Angeles", now)).toBe("2026-12-07");
  });

  const ana = { id: "ana", name: "Ana", days: [{ date: "2026-11-02", usd: 0.5 }, { date: "2026-11-05", usd: 1 }] };
  const leo = { id: "leo", name: "Leo", days: [{ date: "2026-11-05", usd: 0.5 }, { date: "2026-11-20", usd: 9 }] };
  const mia = { id: "mia", name: "Mia", days: [] };

  it("has every day 1 … last, placed by date, today marked and the future empty", () => {
    const c = layoutMonth("2026-11", "2026-11-10", [ana, leo, mia], 300, 100);
    expect(c.slots.map((s) => s.day)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(c.slots[0].x).toBeLessThan(c.slots[1].x);
    expect(c.slots.filter((s) => s.today).map((s) => s.date)).toEqual(["2026-11-10"]);
    expect(c.slots[10].future).toBe(true);
    expect(c.slots[9].future).toBe(false);
    // Leo's spend dated after today (a clock that moved back) is not drawn in the future.
    expect(c.slots[19].segments).toEqual([]);
    expect(c.slots[0].segments).toEqual([]);
    expect(c.slots[1].segments.map((g) => g.member)).toEqual(["ana"]);
  });

  it("stacks the members bottom up with one colour each and a legend of who spent", () => {
    const c = layoutMonth("2026-11", "2026-11-30", [ana, leo, mia], 300, 100);
    expect(c.max).toBe(10);
    const fifth = c.slots[4];
    expect(fifth.usd).toBe(1.5);
    expect(fifth.segments.map((g) => [g.member, g.colour])).toEqual([["ana", 0], ["leo", 1]]);
    const [a, l] = fifth.segments;
    expect(a.y + a.h).toBeCloseTo(100);
    expect(l.y + l.h).toBeCloseTo(a.y);
    expect(a.h).toBeCloseTo(10);
    expect(c.legend).toEqual([{ id: "ana", name: "Ana", colour: 0 }, { id: "leo", name: "Leo", colour: 1 }]);
    // A past month shows every day, marks none as today.
    const past = layoutMonth("2026-10", "2026-11-30", [ana], 300, 100);
    expect(past.slots).toHaveLength(31);
    expect(past.slots.some((s) => s.today || s.future)).toBe(false);
  });

  it("gives a tiny day at least a pixel", () => {
    const c = layoutMonth("2026-11", "2026-11-30", [{ id: "a", name: "A", days: [{ date: "2026-11-01", usd: 0.0001 }, { date: "2026-11-02", usd: 100 }] }], 300, 100);
    expect(c.slots[0].segments[0].h).toBe(1);
  });
});

describe("the month-end projection", () => {
  it("is linear in the days elapsed", () => {
    expect(projectMonth(0.12, "2026-11", "2026-11-03")).toBeCloseTo(1.2);
    expect(projectMonth(3, "2026-12", "2026-12-31")).toBeCloseTo(3);
  });
  it("says nothing before day 3, with no spend, or for another month", () => {
    expect(projectMonth(0.12, "2026-11", "2026-11-02")).toBeNull();
    expect(projectMonth(0, "2026-11", "2026-11-20")).toBeNull();
    expect(projectMonth(1, "2026-10", "2026-11-20")).toBeNull();
    expect(projectMonth(1, "", "2026-11-20")).toBeNull();
  });
});

describe("a member's recent days", () => {
  it("lists every day of the span up to today, across the month's start", () => {
    const r = recentDays([{ date: "2026-11-30", usd: 0.2, messages: 3 }, { date: "2026-12-02", usd: 0.1, messages: 1 }], "2026-12-02", 7);
    expect(r.map((d) => d.date)).toEqual(["2026-11-26", "2026-11-27", "2026-11-28", "2026-11-29", "2026-11-30", "2026-12-01", "2026-12-02"]);
    expect(r[4]).toEqual({ date: "2026-11-30", usd: 0.2, messages: 3 });
    expect(r[5]).toEqual({ date: "2026-12-01", usd: 0, messages: 0 });
    expect(recentDays([], "2026-12-02", 30)).toHaveLength(30);
  });
});

describe("the chart's colours", async () => {
  // The colours the app really ships, read from app.css, against the card they sit on. (Node's
  // fs by a computed name: the UI's type check has no Node types.)
  const fs = "node:fs";
  const css: string = (await import(/* @vite-ignore */ fs)).readFileSync("src/app.css", "utf8");
  const [light, dark] = css.split("@media (prefers-color-scheme: dark)");
  const vars = (block: string) => Object.fromEntries([...block.matchAll(/--([\w-]+):\s*(#[0-9a-f]{6})/gi)].map((m) => [m[1], m[2]]));
  for (const [scheme, block] of [["light", light], ["dark", dark]] as const) {
    it(`each member colour meets WCAG 3:1 against the ${scheme} surface`, () => {
      const v = vars(block);
      for (let i = 0; i < SERIES_COLOURS; i++) {
        const c = v[`series-${i}`];
        expect(c, `--series-${i}`).toMatch(/^#/);
        expect(contrast(c, v.surface), `--series-${i} ${c} on ${v.surface}`).toBeGreaterThanOrEqual(3);
      }
    });
  }
  it("computes contrast as WCAG does", () => {
    expect(contrast("#000000", "#ffffff")).toBeCloseTo(21);
    expect(contrast("#777777", "#ffffff")).toBeCloseTo(4.48, 1);
  });
});
