import { errorMessage } from "./errors";

/** A button-driven action: `busy` while it runs (buttons disable), `error` in words when it fails. */
export class Action {
  busy = $state(false);
  error = $state("");

  async run(f: () => Promise<void>): Promise<void> {
    this.busy = true;
    this.error = "";
    try {
      await f();
    } catch (e) {
      this.error = errorMessage(e);
    } finally {
      this.busy = false;
    }
  }
}
