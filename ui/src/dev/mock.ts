// A fake backend for `VITE_MOCK=1 npm run dev`: lets the UI run in a plain browser.
// Start phase from the URL: ?phase=setup|serving|demo|stopped. Never part of a build.
import { mockIPC } from "@tauri-apps/api/mocks";
import { emit } from "@tauri-apps/api/event";
import type { AppInfo, MemberCard, MemberDetail, PairingDto, PriceDto, SettingsDto, Snapshot, SpeechServiceDto, VoiceSettingsDto } from "../lib/ipc.gen";

const QR = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 21 21"><rect width="21" height="21" fill="#fff"/><path d="M1 1h7v7H1zM13 1h7v7h-7zM1 13h7v7H1zM10 10h2v2h-2zM14 14h3v3h-3z" fill="#000"/></svg>`;
const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
const iso = (minsAgo: number) => new Date(Date.now() - minsAgo * 60000).toISOString();

export async function installMock() {
  const phase = (new URLSearchParams(location.search).get("phase") ?? "serving") as AppInfo["phase"];
  let info: AppInfo = { phase, version: "0.1.0-dev", data_dir: "/var/lib/hearth", problem: phase === "stopped" ? "Another Hearth is already using /var/lib/hearth. Quit it, then press Try again." : null };
  const card = (id: string, name: string, role: MemberCard["role"], extra: Partial<MemberCard> = {}): MemberCard => ({
    id, name, role, bot_username: `${name.toLowerCase()}_hearth_bot`, bot: { state: "polling", label: "Connected" },
    paired: true, paused: false, lane: { state: "idle", queued: 0, secs: 0, doing: "thinking" }, last_activity: iso(3),
    today_usd: 0.12, today_calls: 3, month_usd: 2.4, daily_cap_usd: 1, monthly_cap_usd: 10, isolation: "account", resting_until: null, status: { text: "Ready", tone: "good" }, days: [], ...extra,
  });
  const members: MemberCard[] = phase === "setup" ? [] : [
    card("m1", "Ana", "adult", { lane: { state: "thinking", queued: 1, secs: 3, doing: "listening" }, daily_cap_usd: null, monthly_cap_usd: null, today_usd: 0.84, month_usd: 7.31 }),
    card("m2", "Ben", "teen", { lane: { state: "queued", queued: 2, secs: 0, doing: "thinking" }, today_usd: 0.91, month_usd: 9.2 }),
    card("m3", "Cleo", "child", { paired: false, last_activity: null, today_usd: 0, month_usd: 0, bot: { state: "token_revoked", label: "Token revoked — paste a new one" } }),
  ];
  const details: Record<string, MemberDetail> = {};
  const detail = (m: MemberCard): MemberDetail =>
    (details[m.id] ??= { id: m.id, name: m.name, role: m.role, bot_username: m.bot_username, paired: m.paired, paused: m.paused, is_admin: m.name === "Ana", persona: "", model: null, fallback_model: null, daily_cap_usd: m.daily_cap_usd, monthly_cap_usd: m.monthly_cap_usd, quiet_hours: m.role === "child" ? "20:00-07:00" : null, voice_replies: m.role === "child" ? "never" : "when_spoken", streaming: true, created_at: iso(60 * 24 * 20) });
  let cap: number | null = 30;
  let provider: Snapshot["provider"] = phase === "setup" ? null : { kind: "openai", base_url: "https://api.openai.com/v1", model: "gpt-4o-mini" };
  const settings: SettingsDto = { data_dir: "/var/lib/hearth", launch_at_login: true, keep_awake: { enabled: false, holding: false, available: false, detail: "This Linux machine has no sleep inhibitor Hearth can use." }, power_restart: { on: null, detail: "This is a setting of the computer itself, which Hearth cannot read from here.", command: null }, turn_cap: 8, timezone: "Europe/Berlin", provider, platform: "linux", daemon: null, backup: { dest_dir: null, every_hours: 0, last: null, suggested_dir: "/var/lib/hearth-backups" } };
  let prices: PriceDto[] = [
    { model: "gpt-4o-mini", input_usd_per_mtok: 0.15, output_usd_per_mtok: 0.6, cached_input_usd_per_mtok: 0.075, source: "default (as of 2025-06-01)", usd_per_minute: null, usd_per_million_chars: null },
    { model: "claude-sonnet-4-5", input_usd_per_mtok: 3, output_usd_per_mtok: 15, cached_input_usd_per_mtok: 0.3, source: "default (as of 2025-06-01)", usd_per_minute: null, usd_per_million_chars: null },
    { model: "whisper-1", input_usd_per_mtok: 0, output_usd_per_mtok: 0, cached_input_usd_per_mtok: 0, source: "default (as of 2025-06-01)", usd_per_minute: 0.006, usd_per_million_chars: null },
    { model: "tts-1", input_usd_per_mtok: 0, output_usd_per_mtok: 0, cached_input_usd_per_mtok: 0, source: "default (as of 2025-06-01)", usd_per_minute: null, usd_per_million_chars: 15 },
  ];
  const speechPrice = (model: string, direction: string, usd: number): PriceDto => ({ model, input_usd_per_mtok: 0, output_usd_per_mtok: 0, cached_input_usd_per_mtok: 0, source: "admin", usd_per_minute: direction === "in" ? usd : null, usd_per_million_chars: direction === "out" ? usd : null });
  const voice: VoiceSettingsDto = {
    hearing: { direction: "in", source: "chat_provider", base_url: "https://api.openai.com/v1", model: "whisper-1", voice: null },
    speaking: { direction: "out", source: "none", base_url: null, model: null, voice: null },
  };
  const setVoice = (s: SpeechServiceDto) => { if (s.direction === "in") voice.hearing = s; else voice.speaking = s; return s; };
  const perDay = Array.from({ length: new Date().getDate() }, (_, i) => ({
    date: new Date(new Date().getFullYear(), new Date().getMonth(), i + 1, 12).toISOString().slice(0, 10),
    usd: Math.round((Math.sin(i) + 1.2) * 40) / 100,
  }));
  const snap = (): Snapshot => ({
    phase: info.phase, health: members.some((m) => m.bot.state === "token_revoked") ? "broken" : "fine",
    problems: members.filter((m) => m.bot.state === "token_revoked").map((m) => ({ health: "broken", text: `${m.name}'s bot stopped working: Telegram no longer accepts its token. Open ${m.name} and replace the token.`, fix: "open_member", member_id: m.id })),
    paused_since: null,
    provider, members, household: { today_usd: 1.87, month_usd: 18.51, monthly_cap_usd: cap, per_day: perDay, month: perDay[0].date.slice(0, 7), timezone: "Europe/Berlin", month_split: { chat_usd: 17.2, images: 6, heard_usd: 0.3, heard_notes: 21, heard_minutes: 12.4, replies_usd: 1.01, replies: 9 } },
    turns_in_flight: 1, turn_cap: settings.turn_cap, isolation: "account", host: { cpu_pct: 12, memory_pct: 41, disk_pct: 63 },
    all_paused: members.length > 0 && members.every((m) => m.paused), uptime_secs: 3600,
  });
  const pairing = (m: MemberCard): PairingDto => ({ member_id: m.id, name: m.name, bot_username: m.bot_username, code: "K7QX-M2PA", link: `https://t.me/${m.bot_username}?start=K7QXM2PA`, qr_svg: QR, expires_at: new Date(Date.now() + 3600e3).toISOString() });
  const fail = (code: string, message: string) => Promise.reject({ code, message });

  mockIPC(async (cmd, raw) => {
    const a = ((raw as { args?: Record<string, unknown> })?.args ?? {}) as Record<string, any>;
    await wait(150);
    switch (cmd) {
      case "app_info": return info;
      case "start_demo": return (info = { ...info, phase: "demo" });
      case "leave_demo": case "finish_setup": case "retry_start": return (info = { ...info, phase: "serving", problem: null });
      case "snapshot": return snap();
      case "provider_detect": return [{ name: "Ollama", base_url: "http://localhost:11434/v1", models: ["llama3.2", "qwen2.5:7b"] }];
      case "provider_test": await wait(600); return a.api_key === "bad" ? fail("rejected", "The provider said the API key is wrong. Copy it again from platform.openai.com → API keys.") : { model: a.model, reply: "Hello! How can I help?", latency_ms: 812 };
      case "provider_set": provider = { kind: a.kind, base_url: a.base_url, model: a.model }; settings.provider = provider; return provider;
      case "household_set": cap = a.monthly_cap_usd ?? null; return null;
      case "bot_check": return a.token.startsWith("0") ? fail("rejected", "Telegram doesn't know this token. Copy it again from BotFather.") : { bot_username: "ana_hearth_bot", bot_name: "Ana's Hearth" };
      case "member_add": {
        const m = card(`m${members.length + 1}`, a.name, a.role, { paired: false, last_activity: null, today_usd: 0, month_usd: 0 });
        members.push(m);
        setTimeout(() => { m.paired = true; emit("snapshot", snap()); emit("notice", { kind: "paired", title: `${m.name} is connected`, body: `${m.name} pressed Start and can now chat.`, member_id: m.id }); }, 6000);
        return pairing(m);
      }
      case "member_pair": return pairing(members.find((m) => m.id === a.member)!);
      case "member_list": return members.map(detail);
      case "member_update": { const d = details[a.member]; Object.assign(d, { role: a.role ?? d.role, persona: a.persona ?? d.persona, model: a.model ? a.model : null, is_admin: a.is_admin ?? d.is_admin, quiet_hours: a.quiet_hours === undefined ? d.quiet_hours : a.quiet_hours || null }); return d; }
      case "member_caps": { const d = details[a.member]; d.daily_cap_usd = a.daily_usd ?? null; d.monthly_cap_usd = a.monthly_usd ?? null; const m = members.find((x) => x.id === a.member)!; m.daily_cap_usd = d.daily_cap_usd; m.monthly_cap_usd = d.monthly_cap_usd; return d; }
      case "member_pause": for (const m of members) if (!a.member || m.id === a.member) { m.paused = a.paused; if (details[m.id]) details[m.id].paused = a.paused; } return null;
      case "member_token": return { bot_username: "cleo_hearth_bot", bot_name: "Cleo's Hearth" };
      case "member_export": return { path: `/home/admin/Documents/Hearth export ${a.member}` };
      case "member_remove": members.splice(members.findIndex((m) => m.id === a.member), 1); return null;
      case "prices": return prices;
      case "price_set": prices = [...prices.filter((p) => p.model !== a.model), { model: a.model, input_usd_per_mtok: a.input_usd_per_mtok, output_usd_per_mtok: a.output_usd_per_mtok, cached_input_usd_per_mtok: a.cached_input_usd_per_mtok ?? a.input_usd_per_mtok, source: "admin", usd_per_minute: null, usd_per_million_chars: null }]; return prices;
      case "speech_price_set": prices = [...prices.filter((p) => p.model !== a.model), speechPrice(a.model, a.direction, a.usd)]; return prices;
      case "member_voice": details[a.member].voice_replies = a.voice_replies; return details[a.member];
      case "member_streaming": details[a.member].streaming = a.streaming; return details[a.member];
      case "voice_settings": return voice;
      case "speech_service_set": return a.api_key === "bad" ? fail("rejected", "The speech service said the API key is wrong.") : setVoice({ direction: a.direction, source: "own", base_url: a.base_url, model: a.model, voice: a.direction === "out" ? a.voice : null });
      case "speech_service_off": return setVoice({ direction: a.direction, source: "off", base_url: null, model: null, voice: null });
      case "speech_test": await wait(700); return a.direction === "in" ? { direction: "in", model: voice.hearing.model, latency_ms: 640, heard: "Hello from Hearth.", audio_bytes: null } : { direction: "out", model: voice.speaking.model, latency_ms: 910, heard: null, audio_bytes: 18432 };
      case "settings": return settings;
      case "settings_set": if (a.turn_cap != null) settings.turn_cap = a.turn_cap; if (a.launch_at_login != null) settings.launch_at_login = a.launch_at_login; return settings;
      case "backup_now": await wait(400); return { path: `${a.dest_dir ?? settings.backup.suggested_dir}/hearth-backup-20261121-101500`, members: 3, megabytes: 2 };
      case "backup_schedule": settings.backup = { ...settings.backup, dest_dir: a.dest_dir ?? null, every_hours: a.dest_dir ? a.every_hours : 0 }; return settings.backup;
    }
    return fail("internal", `The mock does not know ${cmd}.`);
  }, { shouldMockEvents: true });

  setInterval(() => {
    const ana = members.find((m) => m.id === "m1");
    if (ana) ana.lane = ana.lane.state === "thinking" && ana.lane.secs > 8 ? { state: "idle", queued: 0, secs: 0, doing: "thinking" } : ana.lane.state === "idle" ? { state: "thinking", queued: 0, secs: 0, doing: "listening" } : { ...ana.lane, secs: ana.lane.secs + 3, doing: ana.lane.secs >= 3 ? "thinking" : ana.lane.doing };
    emit("snapshot", snap());
  }, 3000);
}
