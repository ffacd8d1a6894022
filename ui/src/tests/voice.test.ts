import { describe, expect, it } from "vitest";
import type { PriceDto, SpeechServiceDto, SpendSplit } from "../lib/ipc.gen";
import { VOICE_REPLIES, priceKind, speechInForce, speechPriceText, speechTestText, spendSplitParts, voiceRepliesHint } from "../lib/voice";

const service = (over: Partial<SpeechServiceDto>): SpeechServiceDto => ({
  direction: "in", source: "none", base_url: null, model: null, voice: null, ...over,
});

describe("speechInForce", () => {
  it("names the service and where it comes from", () => {
    expect(speechInForce(service({ source: "chat_provider", base_url: "https://api.openai.com/v1", model: "whisper-1" }))).toEqual({
      on: true, text: "Uses your AI provider's own service: whisper-1 at https://api.openai.com/v1.",
    });
    expect(speechInForce(service({ direction: "out", source: "own", base_url: "http://127.0.0.1:8880/v1", model: "kokoro", voice: "af_sky" })).text).toBe(
      "Uses its own service: kokoro (voice af_sky) at http://127.0.0.1:8880/v1.",
    );
  });
  it("says plainly what off and nothing mean for members", () => {
    expect(speechInForce(service({ source: "off" }))).toEqual({ on: false, text: "Turned off: a voice note gets a kind note asking to type instead." });
    expect(speechInForce(service({ direction: "out", source: "off" })).text).toContain("answers are always written");
    const none = speechInForce(service({ source: "none" }));
    expect(none.on).toBe(false);
    expect(none.text).toContain("Set a service below");
  });
});

describe("speechTestText", () => {
  it("quotes what the service heard, or says it heard nothing", () => {
    expect(speechTestText({ direction: "in", model: "whisper-1", latency_ms: 640, heard: "Hello from Hearth.", audio_bytes: null })).toBe(
      "✓ whisper-1 heard “Hello from Hearth.” in 0.6 s",
    );
    expect(speechTestText({ direction: "in", model: "whisper-1", latency_ms: 1200, heard: " ", audio_bytes: null })).toBe(
      "✓ whisper-1 answered in 1.2 s (it heard no words in the test sound)",
    );
  });
  it("says how much audio a voice answered", () => {
    expect(speechTestText({ direction: "out", model: "tts-1", latency_ms: 910, heard: null, audio_bytes: 18432 })).toBe(
      "✓ tts-1 spoke a test sentence in 0.9 s (18 KB of audio)",
    );
  });
});

describe("voice replies", () => {
  it("offers the three choices in plain words", () => {
    expect(VOICE_REPLIES.map((o) => o.label)).toEqual(["Never", "When they send a voice note", "Always"]);
    expect(voiceRepliesHint("when_spoken")).toContain("typed message gets a typed answer");
  });
});

const price = (over: Partial<PriceDto>): PriceDto => ({
  model: "m", input_usd_per_mtok: 0, output_usd_per_mtok: 0, cached_input_usd_per_mtok: 0, source: "admin",
  usd_per_minute: null, usd_per_million_chars: null, ...over,
});

describe("speech prices", () => {
  it("reads per minute and per million characters, and chat has none", () => {
    expect(speechPriceText(price({ usd_per_minute: 0.006 }))).toBe("$0.006 per minute of audio");
    expect(speechPriceText(price({ usd_per_million_chars: 15 }))).toBe("$15.00 per million characters spoken");
    expect(speechPriceText(price({ input_usd_per_mtok: 0.15 }))).toBeNull();
    expect([price({ usd_per_minute: 0 }), price({ usd_per_million_chars: 1 }), price({})].map(priceKind)).toEqual(["in", "out", "chat"]);
  });
});

describe("spendSplitParts", () => {
  const none: SpendSplit = { chat_usd: 3, images: 0, heard_usd: 0, heard_notes: 0, heard_minutes: 0, replies_usd: 0, replies: 0 };
  it("has nothing to split when it was all chat", () => {
    expect(spendSplitParts(none)).toBeNull();
  });
  it("splits chat, photos, voice notes heard and voice replies", () => {
    expect(spendSplitParts({ chat_usd: 17.2, images: 6, heard_usd: 0.3, heard_notes: 21, heard_minutes: 12.4, replies_usd: 1.01, replies: 9 })).toEqual([
      "Chat ≈ US$17.20 (6 photos)", "Voice notes heard ≈ US$0.30 (12 min)", "Voice replies ≈ US$1.01 (9 sent)",
    ]);
    expect(spendSplitParts({ ...none, images: 1 })).toEqual(["Chat ≈ US$3.00 (1 photo)"]);
    expect(spendSplitParts({ ...none, heard_notes: 1, heard_minutes: 0.25, heard_usd: 0.006 })).toEqual(["Chat ≈ US$3.00", "Voice notes heard ≈ US$0.01 (under 1 min)"]);
  });
});
