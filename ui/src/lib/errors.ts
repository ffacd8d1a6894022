/** Turns whatever a rejected promise carries into a sentence a person can read. */
export const FALLBACK_ERROR = "Something went wrong. Please try again.";

export function errorMessage(e: unknown): string {
  if (typeof e === "string") return e.trim() || FALLBACK_ERROR;
  if (e && typeof e === "object") {
    const m = (e as { message?: unknown }).message;
    if (typeof m === "string" && m.trim()) return m.trim();
  }
  return FALLBACK_ERROR;
}

/** The IpcError code, when there is one. */
export function errorCode(e: unknown): string | null {
  if (e && typeof e === "object") {
    const c = (e as { code?: unknown }).code;
    if (typeof c === "string") return c;
  }
  return null;
}
