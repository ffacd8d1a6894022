// A member as member_list returns one, for the component tests (Sam, an adult, defaults).
import type { MemberDetail } from "../lib/ipc.gen";

export const memberDetail = (over: Partial<MemberDetail> = {}): MemberDetail => ({
  id: "m1", name: "Sam", role: "adult", bot_username: "sam_bot", paired: true, paused: false, is_admin: false, persona: "",
  model: null, fallback_model: null, daily_cap_usd: null, monthly_cap_usd: null, quiet_hours: null, voice_replies: "when_spoken",
  streaming: true, created_at: "2026-11-01T00:00:00Z", ...over,
});
