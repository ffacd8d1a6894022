//! Generates `ui/src/lib/ipc.gen.ts` — the IPC types and one typed function per command — from
//! the DTOs in `ipc` and the command table. The test below fails when the committed file is
//! stale; `HEARTH_UPDATE_BINDINGS=1 cargo test -p hearth-app bindings` rewrites it.

use ts_rs::TS;

use crate::ipc::*;

/// One command as TypeScript sees it.
pub struct CommandSig {
    pub name: &'static str,
    /// The TypeScript name of the `args` type, when the command takes arguments.
    pub args: Option<String>,
    pub ret: String,
}

/// Where the generated file lives, relative to this crate.
pub const PATH: &str = "../ui/src/lib/ipc.gen.ts";

pub fn typescript() -> String {
    let decls = [
        IpcError::decl(),
        ErrorCode::decl(),
        Phase::decl(),
        AppInfo::decl(),
        Role::decl(),
        ProviderKind::decl(),
        Health::decl(),
        Snapshot::decl(),
        Problem::decl(),
        Fix::decl(),
        ProviderDto::decl(),
        MemberCard::decl(),
        MemberStatus::decl(),
        MemberDay::decl(),
        Tone::decl(),
        BotHealthState::decl(),
        BotHealth::decl(),
        LaneState::decl(),
        Lane::decl(),
        TurnActivity::decl(),
        HouseholdSpend::decl(),
        SpendSplit::decl(),
        DaySpend::decl(),
        HostLoad::decl(),
        Notice::decl(),
        NoticeKind::decl(),
        Navigate::decl(),
        View::decl(),
        ProviderArgs::decl(),
        ProviderTestDto::decl(),
        LocalProviderDto::decl(),
        HouseholdArgs::decl(),
        TokenArgs::decl(),
        BotIdentityDto::decl(),
        MemberAddArgs::decl(),
        MemberRef::decl(),
        PairingDto::decl(),
        MemberDetail::decl(),
        VoiceReplies::decl(),
        MemberVoiceArgs::decl(),
        MemberStreamingArgs::decl(),
        MemberUpdateArgs::decl(),
        MemberCapsArgs::decl(),
        PauseArgs::decl(),
        MemberTokenArgs::decl(),
        MemberExportArgs::decl(),
        ExportDto::decl(),
        PriceDto::decl(),
        PriceArgs::decl(),
        SpeechPriceArgs::decl(),
        SpeechDirection::decl(),
        SpeechSource::decl(),
        SpeechServiceDto::decl(),
        VoiceSettingsDto::decl(),
        SpeechServiceArgs::decl(),
        SpeechDirectionArgs::decl(),
        SpeechTestDto::decl(),
        SettingsDto::decl(),
        KeepAwakeDto::decl(),
        PowerRestartDto::decl(),
        BackupStatusDto::decl(),
        BackupNowArgs::decl(),
        BackupScheduleArgs::decl(),
        BackupDto::decl(),
        Platform::decl(),
        DaemonDto::decl(),
        DaemonState::decl(),
        SettingsArgs::decl(),
    ];
    let mut out = String::from(
        "// Generated from src-tauri/src/ipc.rs and the command table in src-tauri/src/commands.rs.\n\
         // Do not edit: run `HEARTH_UPDATE_BINDINGS=1 cargo test -p hearth-app bindings`.\n\n\
         import { invoke } from \"@tauri-apps/api/core\";\n\n",
    );
    for decl in decls {
        out.push_str("export ");
        out.push_str(&decl);
        out.push_str("\n\n");
    }
    out.push_str("/** Every command of the app, typed. A rejection carries an `IpcError`. */\nexport const api = {\n");
    for c in crate::commands::commands() {
        let ret = if c.ret == "null" { "null".to_owned() } else { c.ret.clone() };
        match &c.args {
            Some(args) => out.push_str(&format!(
                "  {}: (args: {args}) => invoke<{ret}>(\"{}\", {{ args }}),\n",
                camel(c.name),
                c.name
            )),
            None => out.push_str(&format!("  {}: () => invoke<{ret}>(\"{}\"),\n", camel(c.name), c.name)),
        }
    }
    out.push_str("} as const;\n\n");
    out.push_str(&format!(
        "/** Events the app emits: `{}` carries a `Snapshot`, `{}` a `Notice`, `{}` a `Navigate` (a tray row was \
         clicked), `{}` nothing (Quit was chosen in the tray: ask first). */\nexport const EVENTS = {{ snapshot: \"{}\", \
         notice: \"{}\", navigate: \"{}\", quit: \"{}\" }} as const;\n",
        crate::pump::EVENT_SNAPSHOT,
        crate::pump::EVENT_NOTICE,
        crate::pump::EVENT_NAVIGATE,
        crate::pump::EVENT_QUIT,
        crate::pump::EVENT_SNAPSHOT,
        crate::pump::EVENT_NOTICE,
        crate::pump::EVENT_NAVIGATE,
        crate::pump::EVENT_QUIT
    ));
    out
}

fn camel(snake: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn bindings_are_fresh() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(super::PATH);
        let want = super::typescript();
        if std::env::var_os("HEARTH_UPDATE_BINDINGS").is_some() {
            std::fs::write(&path, &want).unwrap();
            return;
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "{} is stale: run `HEARTH_UPDATE_BINDINGS=1 cargo test -p hearth-app bindings` and commit the result",
            path.display()
        );
    }

    #[test]
    fn command_names_become_camel_case() {
        assert_eq!(super::camel("member_add"), "memberAdd");
        assert_eq!(super::camel("app_info"), "appInfo");
    }
}
