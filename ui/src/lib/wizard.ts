import type { ProviderArgs } from "./ipc.gen";

/** The wizard's screens in order; Welcome is not counted as a step. */
export const STEPS = ["welcome", "provider", "budget", "member", "pairing", "done"] as const;
export type Step = (typeof STEPS)[number];

export const STEP_TITLES: Record<Step, string> = {
  welcome: "Welcome",
  provider: "AI provider",
  budget: "Budget",
  member: "First member",
  pairing: "Connect Telegram",
  done: "Done",
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
