import type { DaemonDto, Platform } from "./ipc.gen";

/** One thing a machine that serves the family day and night needs, with its command if any. */
export type ApplianceStep = {
  id: string;
  title: string;
  /** One or two plain sentences: why, and what happens. */
  text: string;
  /** A shell command to copy into Terminal, when there is one. */
  command?: string;
  /** Shows the state of "Start Hearth when this computer starts" instead of a command. */
  loginToggle?: boolean;
  /** Shows where the supervisor stands with macOS, and the button for the next step. */
  daemon?: boolean;
};

export type ApplianceGuide = { heading: string; intro: string; steps: ApplianceStep[] };

const loginStep: ApplianceStep = {
  id: "login",
  title: "Start Hearth when you log in",
  text: "The app runs the assistants, so it has to open by itself after a restart.",
  loginToggle: true,
};

/** The steps for a closet box on this platform, in the order to do them. */
export function applianceGuide(platform: Platform): ApplianceGuide {
  if (platform === "macos") {
    return {
      heading: "This Mac as an appliance",
      intro: "A few one-time settings let this Mac answer the family day and night and come back by itself after a power cut. Paste each command into Terminal; it asks for your password.",
      steps: [
        {
          id: "autorestart",
          title: "Restart automatically after a power failure",
          text: "When the power comes back, the Mac turns itself on instead of waiting for someone to press the button.",
          command: "sudo pmset -a autorestart 1",
        },
        {
          id: "sleep",
          title: "Never sleep",
          text: "A sleeping Mac cannot answer messages; the display may still turn off.",
          command: "sudo pmset -a sleep 0 disksleep 0",
        },
        {
          id: "filevault",
          title: "Automatic login or FileVault",
          text: "With FileVault on, the Mac waits at the disk password after a power cut and Hearth stays off until someone types it. Automatic login, which lets Hearth start by itself, is unavailable with FileVault, so choose between a disk that is safe if the Mac is stolen and a Hearth that comes back alone (System Settings → Users & Groups → Automatically log in as).",
          command: "fdesetup status",
        },
        loginStep,
        {
          id: "supervisor",
          title: "Allow the Hearth supervisor",
          text: "It creates an account for each family member so their conversations stay apart, and macOS runs it only once you allow it: in System Settings → General → Login Items, turn on Hearth under “Allow in the Background”.",
          daemon: true,
        },
      ],
    };
  }
  if (platform === "linux") {
    return {
      heading: "This machine as an appliance",
      intro: "A few one-time settings let this machine answer the family day and night and come back by itself after a power cut. Run each command in a terminal.",
      steps: [
        {
          id: "services",
          title: "Start Hearth at boot (headless package)",
          text: "With the hearth-server package instead of this app, systemd starts the gateway and its supervisor at boot, before anyone logs in.",
          command: "sudo systemctl enable --now hearth-supervisor hearth",
        },
        {
          id: "sleep",
          title: "Never sleep",
          text: "A sleeping machine cannot answer messages; this stops every kind of suspend.",
          command: "sudo systemctl mask sleep.target suspend.target hibernate.target hybrid-sleep.target",
        },
        {
          id: "autorestart",
          title: "Restart automatically after a power failure",
          text: "Set “Restore on AC power loss” (or “After power failure: Power on”) in the machine's firmware settings, reached by a key such as F2 or Del while it starts.",
        },
        loginStep,
      ],
    };
  }
  return {
    heading: "This machine as an appliance",
    intro: "For Hearth to answer day and night, this machine must stay awake, turn itself on after a power cut and open Hearth by itself.",
    steps: [loginStep],
  };
}

/** What the supervisor step can offer: register it, open System Settings, look again, restart. */
export type SupervisorAction = "register" | "open_settings" | "check" | "restart";

/**
 * The supervisor step's line and buttons, from where macOS says the daemon stands and the
 * isolation level the running household has ("" when nothing serves).
 */
export function supervisorView(daemon: DaemonDto | null, level: string): { ok: boolean; text: string; actions: SupervisorAction[] } {
  if (!daemon) return { ok: false, text: "", actions: [] };
  switch (daemon.state) {
    case "not_registered":
      return { ok: false, text: "Not set up yet: register it, then allow it in System Settings.", actions: ["register"] };
    case "requires_approval":
      return { ok: false, text: daemon.text, actions: ["open_settings", "check"] };
    case "not_found":
      return { ok: false, text: daemon.text, actions: [] };
    case "enabled":
      if (level === "process")
        return { ok: false, text: "Allowed. Restart Hearth so each member gets an account of their own; messages that arrive meanwhile wait and are answered.", actions: ["restart"] };
      return { ok: true, text: level ? `Allowed: each member has an account of their own (${level}).` : "Allowed.", actions: [] };
  }
  return { ok: false, text: daemon.text, actions: [] };
}

/** Puts `text` on the clipboard; false when there is no clipboard or it refused. */
export async function copyText(text: string, clipboard: Pick<Clipboard, "writeText"> | undefined = globalThis.navigator?.clipboard): Promise<boolean> {
  if (!clipboard) return false;
  try {
    await clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}
