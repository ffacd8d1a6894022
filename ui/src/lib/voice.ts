// Voice notes and voice replies in plain words: what the speech services in force are, what a
// member's choice means, what a test found, and how a month's spend splits. Pure, so vitest
// checks every sentence.
import type { PriceDto, SpeechDirection, SpeechServiceDto, SpeechTestDto, SpendSplit, VoiceReplies } from "./ipc.gen";
import { priceText, spent } from "./format";

export const VOICE_REPLIES: { id: VoiceReplies; label: string; hint: string }[] = [
  { id: "never", label: "Never", hint: "Answers are always written." },
  {
    id: "when_spoken",
    label: "When they send a voice note",
    hint: "A voice note gets a voice note back, with the words written under it; a typed message gets a typed answer.",
  },
  { id: "always", label: "Always", hint: "Every answer comes as a voice note, with the words written under it." },
];

export function voiceRepliesHint(v: VoiceReplies): string {
  return VOICE_REPLIES.find((o) => o.id === v)?.hint ?? "";
}

/** Defaults for "use my own service": OpenAI's, which local whisper and speech servers copy. */
export const SPEECH_DEFAULTS: Record<SpeechDirection, { base_url: string; model: string; voice: string }> = {
  in: { base_url: "https://api.openai.com/v1", model: "whisper-1", voice: "" },
  out: { base_url: "https://api.openai.com/v1", model: "tts-1", voice: "alloy" },
};

/** The heading of each direction's part. */
export const SPEECH_TITLE: Record<SpeechDirection, string> = { in: "Hearing voice notes", out: "Answering in voice" };

/** "whisper-1 at https://…" or "tts-1 (voice alloy) at https://…". */
function serviceWords(s: SpeechServiceDto): string {
  const model = s.model ?? "a model";
  const voice = s.direction === "out" && s.voice ? ` (voice ${s.voice})` : "";
  return s.base_url ? `${model}${voice} at ${s.base_url}` : `${model}${voice}`;
}

/** What is in force for one direction, in a sentence, and whether it works. */
export function speechInForce(s: SpeechServiceDto): { text: string; on: boolean } {
  const hearing = s.direction === "in";
  switch (s.source) {
    case "chat_provider":
      return { on: true, text: `Uses your AI provider's own service: ${serviceWords(s)}.` };
    case "own":
      return { on: true, text: `Uses its own service: ${serviceWords(s)}.` };
    case "off":
      return {
        on: false,
        text: hearing
          ? "Turned off: a voice note gets a kind note asking to type instead."
          : "Turned off: answers are always written, whatever each member chose.",
      };
    default:
      return {
        on: false,
        text: hearing
          ? "Not set up: your AI provider has no speech service, so voice notes can't be understood yet. Set a service below."
          : "Not set up: your AI provider has no voice service, so answers are written. Set a service below.",
      };
  }
}

/** What a successful test found, in a sentence. */
export function speechTestText(t: SpeechTestDto): string {
  const secs = `${(t.latency_ms / 1000).toFixed(1)} s`;
  if (t.direction === "in") {
    const heard = t.heard?.trim();
    return heard ? `✓ ${t.model} heard “${heard}” in ${secs}` : `✓ ${t.model} answered in ${secs} (it heard no words in the test sound)`;
  }
  const kb = Math.max(1, Math.round((t.audio_bytes ?? 0) / 1024));
  return `✓ ${t.model} spoke a test sentence in ${secs} (${kb} KB of audio)`;
}

/** How a rate-card row is priced. */
export type PriceKind = "chat" | "in" | "out";

export function priceKind(p: PriceDto): PriceKind {
  if (p.usd_per_minute != null) return "in";
  if (p.usd_per_million_chars != null) return "out";
  return "chat";
}

/** A speech model's price as a person reads it: "$0.006 per minute of audio". */
export function speechPriceText(p: PriceDto): string | null {
  if (p.usd_per_minute != null) return `${priceText(p.usd_per_minute)} per minute of audio`;
  if (p.usd_per_million_chars != null) return `${priceText(p.usd_per_million_chars)} per million characters spoken`;
  return null;
}

/** A month's spend by kind, one short part each; `null` when it was all chat (nothing to split). */
export function spendSplitParts(s: SpendSplit): string[] | null {
  if (s.images === 0 && s.heard_notes === 0 && s.replies === 0 && s.heard_usd === 0 && s.replies_usd === 0) return null;
  const photos = s.images > 0 ? ` (${s.images} ${s.images === 1 ? "photo" : "photos"})` : "";
  const parts = [`Chat ${spent(s.chat_usd)}${photos}`];
  if (s.heard_notes > 0 || s.heard_usd > 0) {
    const mins = s.heard_minutes < 1 && s.heard_minutes > 0 ? "under 1 min" : `${Math.round(s.heard_minutes)} min`;
    parts.push(`Voice notes heard ${spent(s.heard_usd)} (${mins})`);
  }
  if (s.replies > 0 || s.replies_usd > 0) parts.push(`Voice replies ${spent(s.replies_usd)} (${s.replies} sent)`);
  return parts;
}
