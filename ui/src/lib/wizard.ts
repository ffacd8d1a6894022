import type { MemberCard, ProviderArgs, SettingsDto } from "./ipc.gen";

/** The wizard's screens in order; Welcome is not counted as a step. */
export const STEPS = ["welcome", "provider", "budget", "member", "pairing", "always_on", "done"] as const;
export type Step = (typeof STEPS)[number];

export const STEP_TITLES: Record<Step, string> = {
  welcome: "Welcome",
  provider: "AI provider",
  budget: "Budget",
  member: "First member",
  pairing: "Connect Telegram",
  always_on: "Always on",
  done: "Say hi",
};

/** "Step 2 of 5" for the budget screen; null on Welcome. */
export function stepLabel(step: Step): string | null {
  const i = STEPS.indexOf(step);
  return i <= 0 ? null : `Step ${i} of ${STEPS.length - 1}`;
}

export type ProviderChoice = "openai" | "anthropic" | "local";

export const PROVIDER_DEFAULTS: Record<"openai" | "anthropic", { base_url: string; model: string }> = {
  openai: { base_url: "https://api.openai.com/v1", model: "gpt-4o-mini" },
  anthropic: { base_url: "https://api.anthropic.com", model: "claude-sonnet-4-5" },
};

/** The arguments the provider form sends, from what the person chose and typed. */
export function providerArgs(choice: ProviderChoice, base_url: string, model: string, api_key: string): ProviderArgs {
  return {
    kind: choice === "anthropic" ? "anthropic" : "openai",
    base_url: base_url.trim(),
    model: model.trim(),
    api_key: api_key.trim(),
  };
}

export function sameProvider(a: ProviderArgs | null, b: ProviderArgs): boolean {
  return !!a && a.kind === b.kind && a.base_url === b.base_url && a.model === b.model && a.api_key === b.api_key;
}

/** Whether "Test connection" can run: a URL and a model; a key unless the model is local. */
export function canTestProvider(choice: ProviderChoice, args: ProviderArgs): boolean {
  if (!args.base_url || !args.model) return false;
  return choice === "local" || args.api_key.length > 0;
}

/** Continue is allowed only after a successful test of exactly the current values. */
export function canContinueProvider(lastOk: ProviderArgs | null, current: ProviderArgs): boolean {
  return sameProvider(lastOk, current);
}

/** The household cap to send: null for "no limit", undefined when the input is not valid. */
export function budgetValue(noCap: boolean, capText: string, parse: (s: string) => number | null): number | null | undefined {
  if (noCap) return null;
  const n = parse(capText);
  return n != null && n > 0 ? n : undefined;
}

/** "Add <name>" is allowed with a name and something shaped like a token. */
export function canAddMember(name: string, token: string, looksLikeToken: (s: string) => boolean): boolean {
  return name.trim().length > 0 && looksLikeToken(token);
}

/** "Is this you?" starts ticked for the first member only: the first person set up is the admin. */
export function askAdminDefault(membersAdded: number): boolean {
  return membersAdded === 0;
}

/**
 * Where the member's first exchange stands, from their card and how many model calls they had
 * today when the step opened: waiting for a message, being answered, or answered.
 */
export type FirstAnswer = "waiting" | "answering" | "answered";
export function firstAnswer(card: MemberCard | undefined, baselineCalls: number): FirstAnswer {
  if (!card) return "waiting";
  if (card.lane.state === "thinking" || card.lane.state === "queued") return "answering";
  return card.today_calls > baselineCalls ? "answered" : "waiting";
}

/** One always-on setting as the wizard shows it: ✓ only for what the machine says is so. */
export type AlwaysOnRow = { id: "login" | "awake" | "power"; title: string; on: boolean | null; detail: string; command: string | null };

export function alwaysOnRows(s: SettingsDto): AlwaysOnRow[] {
  return [
    {
      id: "login",
      title: "Start Hearth when you log in",
      on: s.launch_at_login,
      detail: s.launch_at_login ? "Hearth opens by itself after a restart." : "Off: after a restart Hearth stays closed until someone opens it.",
      command: null,
    },
    {
      id: "awake",
      title: "Keep this computer awake",
      on: s.keep_awake.holding,
      detail: s.keep_awake.detail,
      command: null,
    },
    {
      id: "power",
      title: "Turn on again after a power cut",
      on: s.power_restart.on,
      detail: s.power_restart.detail,
      command: s.power_restart.command,
    },
  ];
}

/** The Done screen's promises: only what is set. */
export function donePromises(s: SettingsDto | null): string[] {
  if (!s) return [];
  const out: string[] = [];
  out.push(
    s.launch_at_login
      ? "Hearth opens by itself when you log in to this computer."
      : "Hearth does not open by itself after a restart: turn on “Start Hearth when this computer starts” in Settings.",
  );
  out.push(
    s.keep_awake.holding
      ? "This computer stays awake while Hearth runs."
      : "This computer may still go to sleep, and the assistants stop answering while it sleeps.",
  );
  if (s.power_restart.on === true) out.push("After a power cut, this computer turns itself on again.");
  else if (s.power_restart.on === false) out.push("After a power cut, someone has to turn this computer on again.");
  return out;
}
