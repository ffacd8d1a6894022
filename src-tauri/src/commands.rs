//! The window's commands. Each is thin: it takes its arguments, calls one engine function (most
//! often `Gateway::control`), and maps the answer to a DTO. The [`table`] at the bottom lists
//! them once, for the handler and for the generated TypeScript.

use std::sync::Arc;

use hearth_proto::control::{self as proto, CapChange, ControlReply, ControlRequest, ModelChange};
use tauri::{AppHandle, Runtime, State};
use tauri_plugin_autostart::ManagerExt as _;

use crate::engine::{self, Shell, unexpected};
use crate::ipc::*;
use crate::snapshot::{provider, role};
use crate::speech;

type Shared<'a> = State<'a, Arc<Shell>>;
type Reply<T> = Result<T, IpcError>;

fn invalid(message: impl Into<String>) -> IpcError {
    IpcError { code: ErrorCode::InvalidInput, message: message.into() }
}

/// Dollars typed by a person → micro-dollars, refusing what cannot be a limit or a price.
fn usd_to_micros(usd: f64, what: &str) -> Reply<u64> {
    if !usd.is_finite() || !(0.0..=1_000_000.0).contains(&usd) {
        return Err(invalid(format!("{what} must be an amount between $0 and $1,000,000")));
    }
    Ok((usd * 1_000_000.0).round() as u64)
}

fn cap_change(usd: Option<f64>, what: &str) -> Reply<CapChange> {
    Ok(match usd {
        Some(v) => CapChange::Set { micros: usd_to_micros(v, what)? },
        None => CapChange::Remove,
    })
}

fn proto_kind(kind: ProviderKind) -> proto::ProviderKind {
    match kind {
        ProviderKind::Openai => proto::ProviderKind::Openai,
        ProviderKind::Anthropic => proto::ProviderKind::Anthropic,
    }
}

fn proto_role(role: Role) -> proto::Role {
    match role {
        Role::Adult => proto::Role::Adult,
        Role::Teen => proto::Role::Teen,
        Role::Child => proto::Role::Child,
    }
}

#[tauri::command]
pub async fn app_info(shell: Shared<'_>) -> Reply<AppInfo> {
    Ok(shell.info().await)
}

#[tauri::command]
pub async fn finish_setup(shell: Shared<'_>) -> Reply<AppInfo> {
    shell.update_settings(|s| s.setup_complete = true)?;
    Ok(shell.info().await)
}

#[tauri::command]
pub async fn start_demo<R: Runtime>(app: AppHandle<R>, shell: Shared<'_>) -> Reply<AppInfo> {
    let info = shell.start_demo().await?;
    crate::pump::restart(&app, shell.inner().clone());
    Ok(info)
}

#[tauri::command]
pub async fn leave_demo<R: Runtime>(app: AppHandle<R>, shell: Shared<'_>) -> Reply<AppInfo> {
    let info = shell.leave_demo().await;
    crate::pump::restart(&app, shell.inner().clone());
    Ok(info)
}

#[tauri::command]
pub async fn retry_start<R: Runtime>(app: AppHandle<R>, shell: Shared<'_>) -> Reply<AppInfo> {
    let info = shell.start().await;
    crate::pump::restart(&app, shell.inner().clone());
    Ok(info)
}

#[tauri::command]
pub async fn snapshot(shell: Shared<'_>) -> Reply<Snapshot> {
    Ok(shell.snapshot().await)
}

#[tauri::command]
pub async fn provider_detect(shell: Shared<'_>) -> Reply<Vec<LocalProviderDto>> {
    match shell.control(ControlRequest::ProviderDetect).await? {
        ControlReply::LocalProviders { found } => Ok(found
            .into_iter()
            .map(|p| LocalProviderDto { name: p.name, base_url: p.base_url, models: p.models })
            .collect()),
        other => Err(unexpected(&other)),
    }
}

#[tauri::command]
pub async fn provider_test(shell: Shared<'_>, args: ProviderArgs) -> Reply<ProviderTestDto> {
    let request = ControlRequest::ProviderTest {
        kind: proto_kind(args.kind),
        base_url: args.base_url,
        model: args.model,
        api_key: args.api_key,
    };
    match shell.control(request).await? {
        ControlReply::ProviderTested(t) => Ok(ProviderTestDto {
            model: t.model,
            reply: t.reply,
            latency_ms: u32::try_from(t.latency_ms).unwrap_or(u32::MAX),
        }),
        other => Err(unexpected(&other)),
    }
}

#[tauri::command]
pub async fn provider_set(shell: Shared<'_>, args: ProviderArgs) -> Reply<ProviderDto> {
    let request = ControlRequest::ProviderSet {
        kind: proto_kind(args.kind),
        base_url: args.base_url,
        model: args.model,
        api_key: args.api_key,
    };
    match shell.control(request).await? {
        ControlReply::ProviderSet(p) => Ok(provider(&p)),
        other => Err(unexpected(&other)),
    }
}

#[tauri::command]
pub async fn household_set(shell: Shared<'_>, args: HouseholdArgs) -> Reply<()> {
    if let Some(timezone) = args.timezone.filter(|t| !t.trim().is_empty()) {
        shell.control(ControlRequest::HouseholdTimezone { timezone }).await?;
    }
    shell.control(ControlRequest::HouseholdCap { monthly: cap_change(args.monthly_cap_usd, "The monthly limit")? }).await?;
    Ok(())
}

#[tauri::command]
pub async fn bot_check(shell: Shared<'_>, args: TokenArgs) -> Reply<BotIdentityDto> {
    match shell.control(ControlRequest::BotCheck { bot_token: args.token }).await? {
        ControlReply::BotChecked(b) => Ok(BotIdentityDto { bot_username: b.bot_username, bot_name: b.bot_name }),
        other => Err(unexpected(&other)),
    }
}

#[tauri::command]
pub async fn member_add(shell: Shared<'_>, args: MemberAddArgs) -> Reply<PairingDto> {
    let request = ControlRequest::MemberAdd { name: args.name, bot_token: args.token, role: proto_role(args.role) };
    let m = match shell.control(request).await? {
        ControlReply::MemberAdded(m) => m,
        other => return Err(unexpected(&other)),
    };
    if args.admin == Some(true) {
        // The member exists now, so a failure here must not read as "not added" (adding again
        // would be refused as a duplicate): say what is left to do.
        shell.control(ControlRequest::MemberAdmin { member: m.id.clone(), admin: true }).await.map_err(|e| IpcError {
            code: ErrorCode::Internal,
            message: format!("{} was added, but could not be made the admin ({}): tick Admin on {}'s page.", m.name, e.message, m.name),
        })?;
    }
    Ok(pairing(m.id, m.name, m.bot_username, m.pair_code, m.pair_link, None))
}

#[tauri::command]
pub async fn member_pair(shell: Shared<'_>, args: MemberRef) -> Reply<PairingDto> {
    match shell.control(ControlRequest::MemberPair { member: args.member }).await? {
        ControlReply::PairCode(p) => {
            Ok(pairing(p.member_id, p.name, p.bot_username, p.pair_code, p.pair_link, Some(p.expires_at)))
        }
        other => Err(unexpected(&other)),
    }
}

fn pairing(member_id: String, name: String, bot_username: String, code: String, link: String, expires_at: Option<String>) -> PairingDto {
    PairingDto { qr_svg: crate::qr::svg(&link), member_id, name, bot_username, code, link, expires_at }
}

async fn members(shell: &Shell) -> Reply<Vec<MemberDetail>> {
    match shell.control(ControlRequest::MemberList).await? {
        ControlReply::Members { members } => Ok(members.into_iter().map(member_detail).collect()),
        other => Err(unexpected(&other)),
    }
}

fn member_detail(m: proto::MemberSummary) -> MemberDetail {
    MemberDetail {
        id: m.id,
        name: m.name,
        role: role(m.role),
        bot_username: m.bot_username,
        paired: m.paired,
        paused: m.paused,
        is_admin: m.is_admin,
        persona: m.persona,
        model: m.model,
        fallback_model: m.fallback_model,
        daily_cap_usd: m.daily_cap_usd,
        monthly_cap_usd: m.monthly_cap_usd,
        quiet_hours: m.quiet_hours.map(|q| q.to_string()),
        voice_replies: speech::voice_replies(m.voice_replies),
        streaming: m.streaming,
        created_at: m.created_at,
    }
}

async fn member(shell: &Shell, member: &str) -> Reply<MemberDetail> {
    members(shell)
        .await?
        .into_iter()
        .find(|m| m.id == member || m.name.eq_ignore_ascii_case(member))
        .ok_or_else(|| IpcError { code: ErrorCode::NotFound, message: format!("There is no member {member} any more.") })
}

#[tauri::command]
pub async fn member_list(shell: Shared<'_>) -> Reply<Vec<MemberDetail>> {
    members(&shell).await
}

#[tauri::command]
pub async fn member_update(shell: Shared<'_>, args: MemberUpdateArgs) -> Reply<MemberDetail> {
    let model = args.model.map(|m| match m.trim() {
        "" => ModelChange::Household,
        m => ModelChange::Set { model: m.to_owned() },
    });
    if args.role.is_some() || args.persona.is_some() || model.is_some() {
        let request =
            ControlRequest::MemberUpdate { member: args.member.clone(), role: args.role.map(proto_role), persona: args.persona, model };
        shell.control(request).await?;
    }
    if let Some(admin) = args.is_admin {
        shell.control(ControlRequest::MemberAdmin { member: args.member.clone(), admin }).await?;
    }
    if let Some(text) = args.quiet_hours {
        let quiet_hours = match text.trim() {
            "" => None,
            t => Some(t.parse::<proto::QuietHours>().map_err(|e| invalid(format!("Quiet hours: {e}")))?),
        };
        shell.control(ControlRequest::MemberQuietHours { member: args.member.clone(), quiet_hours }).await?;
    }
    member(&shell, &args.member).await
}

/// When the member's assistant answers in voice.
#[tauri::command]
pub async fn member_voice(shell: Shared<'_>, args: MemberVoiceArgs) -> Reply<MemberDetail> {
    let request = ControlRequest::MemberVoice {
        member: args.member.clone(),
        voice_replies: speech::proto_voice_replies(args.voice_replies),
    };
    shell.control(request).await?;
    member(&shell, &args.member).await
}

/// Whether the member sees replies appear in Telegram while they are written.
#[tauri::command]
pub async fn member_streaming(shell: Shared<'_>, args: MemberStreamingArgs) -> Reply<MemberDetail> {
    shell.control(ControlRequest::MemberStreaming { member: args.member.clone(), streaming: args.streaming }).await?;
    member(&shell, &args.member).await
}

#[tauri::command]
pub async fn member_caps(shell: Shared<'_>, args: MemberCapsArgs) -> Reply<MemberDetail> {
    let request = ControlRequest::MemberCap {
        member: args.member.clone(),
        daily: cap_change(args.daily_usd, "The daily limit")?,
        monthly: cap_change(args.monthly_usd, "The monthly limit")?,
    };
    shell.control(request).await?;
    member(&shell, &args.member).await
}

#[tauri::command]
pub async fn member_pause(shell: Shared<'_>, args: PauseArgs) -> Reply<()> {
    shell.control(ControlRequest::MemberPause { member: args.member, paused: args.paused, until: None }).await?;
    Ok(())
}

#[tauri::command]
pub async fn member_token(shell: Shared<'_>, args: MemberTokenArgs) -> Reply<BotIdentityDto> {
    shell.control(ControlRequest::MemberToken { member: args.member.clone(), bot_token: args.token }).await?;
    let m = member(&shell, &args.member).await?;
    Ok(BotIdentityDto { bot_username: m.bot_username, bot_name: m.name })
}

#[tauri::command]
pub async fn member_export(shell: Shared<'_>, args: MemberExportArgs) -> Reply<ExportDto> {
    let dest_dir = match args.dest_dir.filter(|d| !d.trim().is_empty()) {
        Some(d) => d,
        None => default_export_dir().ok_or_else(|| invalid("Choose a folder to save the export in."))?,
    };
    match shell.control(ControlRequest::MemberExport { member: args.member, dest_dir }).await? {
        ControlReply::Exported { path } => Ok(ExportDto { path }),
        other => Err(unexpected(&other)),
    }
}

/// The admin's Documents folder, else their home.
fn default_export_dir() -> Option<String> {
    let home = std::path::PathBuf::from(std::env::var_os("HOME")?);
    let documents = home.join("Documents");
    let dir = if documents.is_dir() { documents } else { home };
    Some(dir.display().to_string())
}

#[tauri::command]
pub async fn member_remove(shell: Shared<'_>, args: MemberRef) -> Reply<()> {
    shell.control(ControlRequest::MemberRemove { member: args.member }).await?;
    Ok(())
}

#[tauri::command]
pub async fn prices(shell: Shared<'_>) -> Reply<Vec<PriceDto>> {
    match shell.control(ControlRequest::PriceList).await? {
        ControlReply::Prices { prices } => Ok(prices
            .into_iter()
            .map(|p| PriceDto {
                model: p.model,
                input_usd_per_mtok: p.input_usd_per_mtok,
                output_usd_per_mtok: p.output_usd_per_mtok,
                cached_input_usd_per_mtok: p.cached_input_usd_per_mtok,
                source: p.source,
                usd_per_minute: p.usd_per_minute,
                usd_per_million_chars: p.usd_per_million_chars,
            })
            .collect()),
        other => Err(unexpected(&other)),
    }
}

#[tauri::command]
pub async fn price_set(shell: Shared<'_>, args: PriceArgs) -> Reply<Vec<PriceDto>> {
    let request = ControlRequest::PriceSet {
        model: args.model,
        input_micros_per_mtok: usd_to_micros(args.input_usd_per_mtok, "The input price")?,
        output_micros_per_mtok: usd_to_micros(args.output_usd_per_mtok, "The output price")?,
        cached_input_micros_per_mtok: args.cached_input_usd_per_mtok.map(|v| usd_to_micros(v, "The cached input price")).transpose()?,
        cache_write_micros_per_mtok: None,
    };
    shell.control(request).await?;
    prices(shell).await
}

/// A speech model's price: per minute of audio heard, or per million characters spoken.
#[tauri::command]
pub async fn speech_price_set(shell: Shared<'_>, args: SpeechPriceArgs) -> Reply<Vec<PriceDto>> {
    let request = match args.direction {
        SpeechDirection::In => ControlRequest::SpeechPriceSet {
            model: args.model,
            micros_per_minute: usd_to_micros(args.usd, "The price per minute")?,
        },
        SpeechDirection::Out => ControlRequest::VoicePriceSet {
            model: args.model,
            micros_per_mchar: usd_to_micros(args.usd, "The price per million characters")?,
        },
    };
    shell.control(request).await?;
    prices(shell).await
}

/// Both speech services in force: hearing voice notes and answering in voice.
#[tauri::command]
pub async fn voice_settings(shell: Shared<'_>) -> Reply<VoiceSettingsDto> {
    let hearing = match shell.control(ControlRequest::SpeechGet).await? {
        ControlReply::Speech(s) => speech::hearing(s),
        other => return Err(unexpected(&other)),
    };
    let speaking = match shell.control(ControlRequest::VoiceGet).await? {
        ControlReply::Voice(v) => speech::speaking(v),
        other => return Err(unexpected(&other)),
    };
    Ok(VoiceSettingsDto { hearing, speaking })
}

/// One direction's service in force after a change.
fn speech_service(reply: ControlReply) -> Reply<SpeechServiceDto> {
    match reply {
        ControlReply::Speech(s) => Ok(speech::hearing(s)),
        ControlReply::Voice(v) => Ok(speech::speaking(v)),
        other => Err(unexpected(&other)),
    }
}

/// Sets one direction's own service (the key is kept by the gateway, never sent back).
#[tauri::command]
pub async fn speech_service_set(shell: Shared<'_>, args: SpeechServiceArgs) -> Reply<SpeechServiceDto> {
    speech_service(shell.control(speech::set_request(args)).await?)
}

/// Turns one direction off for everyone.
#[tauri::command]
pub async fn speech_service_off(shell: Shared<'_>, args: SpeechDirectionArgs) -> Reply<SpeechServiceDto> {
    speech_service(shell.control(speech::off_request(args.direction)).await?)
}

/// Tries the service in force for one direction; stores nothing, charges no one.
#[tauri::command]
pub async fn speech_test(shell: Shared<'_>, args: SpeechDirectionArgs) -> Reply<SpeechTestDto> {
    match shell.control(ControlRequest::SpeechTest { direction: speech::direction(args.direction) }).await? {
        ControlReply::SpeechTested(t) => Ok(speech::test_result(t)),
        other => Err(unexpected(&other)),
    }
}

#[tauri::command]
pub async fn settings<R: Runtime>(app: AppHandle<R>, shell: Shared<'_>) -> Reply<SettingsDto> {
    settings_dto(&app, &shell).await
}

async fn settings_dto<R: Runtime>(app: &AppHandle<R>, shell: &Shell) -> Reply<SettingsDto> {
    let stored = shell.settings();
    let (available, detail) = shell.keep_awake_state();
    let status = shell.gateway().await.ok();
    let (timezone, provider_now) = match &status {
        Some(g) => {
            let tz = engine::usage(shell).await.map(|u| u.timezone).unwrap_or_default();
            let p = g.status().await.ok().and_then(|s| s.provider).map(|p| provider(&p));
            (tz, p)
        }
        None => (String::new(), None),
    };
    let backup = backup_status(shell, status.as_ref());
    Ok(SettingsDto {
        backup,
        data_dir: shell.options.data_dir.display().to_string(),
        launch_at_login: app.autolaunch().is_enabled().unwrap_or(false),
        keep_awake: KeepAwakeDto { enabled: stored.keep_awake, holding: shell.keep_awake_held(), available, detail },
        power_restart: crate::power::state(),
        turn_cap: stored.turn_cap,
        timezone,
        provider: provider_now,
        platform: Platform::current(),
        daemon: daemon_status(),
    })
}

/// The supervisor's LaunchDaemon as macOS sees it; `None` elsewhere.
fn daemon_status() -> Option<DaemonDto> {
    #[cfg(target_os = "macos")]
    return Some(hearth_isolation::macos_daemon::status().into());
    #[cfg(not(target_os = "macos"))]
    None
}

#[cfg(not(target_os = "macos"))]
fn no_daemon_here() -> IpcError {
    invalid(
        "Only the Mac app registers the Hearth supervisor. On Linux, members get their own accounts when Hearth runs as the hearth service (the hearth-server package) or under a `hearth supervisor` started as root.",
    )
}

/// Asks macOS to run the supervisor (SMAppService). It runs once the admin allows it in
/// System Settings → General → Login Items; the answer says whether that is still to do.
#[tauri::command]
pub async fn daemon_register() -> Reply<DaemonDto> {
    #[cfg(target_os = "macos")]
    return tauri::async_runtime::spawn_blocking(hearth_isolation::macos_daemon::register)
        .await
        .map_err(|e| IpcError { code: ErrorCode::Internal, message: e.to_string() })?
        .map(DaemonDto::from)
        .map_err(|e| IpcError {
            code: ErrorCode::Rejected,
            message: format!("macOS did not register the Hearth supervisor: {e}"),
        });
    #[cfg(not(target_os = "macos"))]
    Err(no_daemon_here())
}

/// Opens System Settings → General → Login Items, where the admin allows the supervisor.
#[tauri::command]
pub async fn daemon_open_settings() -> Reply<()> {
    #[cfg(target_os = "macos")]
    return {
        hearth_isolation::macos_daemon::open_login_items_settings();
        Ok(())
    };
    #[cfg(not(target_os = "macos"))]
    Err(no_daemon_here())
}

/// Stops the gateway and starts it again: how a newly allowed supervisor takes effect (the
/// isolation level is chosen at start). Running turns get the usual grace; what is still queued
/// is answered after the start.
#[tauri::command]
pub async fn restart<R: Runtime>(app: AppHandle<R>, shell: Shared<'_>) -> Reply<AppInfo> {
    shell.stop().await;
    retry_start(app, shell).await
}

#[tauri::command]
pub async fn settings_set<R: Runtime>(app: AppHandle<R>, shell: Shared<'_>, args: SettingsArgs) -> Reply<SettingsDto> {
    if let Some(on) = args.launch_at_login {
        let autolaunch = app.autolaunch();
        let done = if on { autolaunch.enable() } else { autolaunch.disable() };
        done.map_err(|e| IpcError {
            code: ErrorCode::Internal,
            message: format!("Could not {} launching at login: {e}", if on { "turn on" } else { "turn off" }),
        })?;
    }
    if let Some(cap) = args.turn_cap {
        if !(1..=10_000).contains(&cap) {
            return Err(invalid("The turn cap (conversations thinking at once) must be a number from 1 to 10000."));
        }
        shell.control(ControlRequest::TurnCap { cap }).await?;
        shell.update_settings(|s| s.turn_cap = cap)?;
    }
    if let Some(on) = args.keep_awake {
        shell.update_settings(|s| s.keep_awake = on)?;
        shell.apply_keep_awake(on);
    }
    settings_dto(&app, &shell).await
}

fn backup_status(shell: &Shell, gateway: Option<&hearth_gateway::Gateway>) -> BackupStatusDto {
    let scheduled = gateway.and_then(|g| g.scheduled_backups());
    let suggested = hearth_gateway::backup::default_dir(&shell.options.data_dir);
    let folder = scheduled.as_ref().map(|(d, _)| d.clone()).unwrap_or_else(|| suggested.clone());
    BackupStatusDto {
        dest_dir: scheduled.as_ref().map(|(d, _)| d.display().to_string()),
        every_hours: scheduled.map(|(_, h)| h).unwrap_or(0),
        last: hearth_gateway::backup::newest(&folder).map(|t| t.to_rfc3339()),
        suggested_dir: suggested.display().to_string(),
    }
}

#[tauri::command]
pub async fn backup_now(shell: Shared<'_>, args: BackupNowArgs) -> Reply<BackupDto> {
    let gateway = shell.gateway().await?;
    let dest_dir = match args.dest_dir.filter(|d| !d.trim().is_empty()) {
        Some(d) => d,
        None => match gateway.scheduled_backups() {
            Some((dir, _)) => dir.display().to_string(),
            None => hearth_gateway::backup::default_dir(&shell.options.data_dir).display().to_string(),
        },
    };
    match gateway.control(ControlRequest::BackupCreate { dest_dir, include_secrets: false }).await? {
        ControlReply::BackedUp(b) => Ok(BackupDto {
            path: b.path,
            members: b.members,
            megabytes: u32::try_from(b.bytes.div_ceil(1_000_000)).unwrap_or(u32::MAX),
        }),
        other => Err(unexpected(&other)),
    }
}

#[tauri::command]
pub async fn backup_schedule(shell: Shared<'_>, args: BackupScheduleArgs) -> Reply<BackupStatusDto> {
    let dest_dir = args.dest_dir.filter(|d| !d.trim().is_empty());
    shell.control(ControlRequest::BackupSchedule { dest_dir, every_hours: args.every_hours }).await?;
    let gateway = shell.gateway().await.ok();
    Ok(backup_status(&shell, gateway.as_ref()))
}

/// Quits Hearth once the admin confirmed it in the window (the tray's "Quit Hearth…"): running
/// turns get the usual grace, what is still queued is answered after the next start.
#[tauri::command]
pub async fn quit<R: Runtime>(app: AppHandle<R>, shell: Shared<'_>) -> Reply<()> {
    shell.stop().await;
    app.exit(0);
    Ok(())
}

/// Every command, once: `handler()` registers them, `commands()` describes them for the
/// generated TypeScript. The signatures here must match the functions above; the command tests
/// call each one through the real IPC path, which catches a mismatch.
macro_rules! table {
    ($($name:ident ( $($args:ty)? ) -> $ret:ty;)*) => {
        pub fn handler<R: Runtime>() -> impl Fn(tauri::ipc::Invoke<R>) -> bool + Send + Sync + 'static {
            tauri::generate_handler![$($name),*]
        }

        pub fn commands() -> Vec<crate::bindings::CommandSig> {
            vec![$(crate::bindings::CommandSig {
                name: stringify!($name),
                args: table!(@args $($args)?),
                ret: <$ret as ts_rs::TS>::name(),
            }),*]
        }
    };
    (@args) => { None };
    (@args $args:ty) => { Some(<$args as ts_rs::TS>::name()) };
}

table! {
    app_info() -> AppInfo;
    finish_setup() -> AppInfo;
    start_demo() -> AppInfo;
    leave_demo() -> AppInfo;
    retry_start() -> AppInfo;
    snapshot() -> Snapshot;
    provider_detect() -> Vec<LocalProviderDto>;
    provider_test(ProviderArgs) -> ProviderTestDto;
    provider_set(ProviderArgs) -> ProviderDto;
    household_set(HouseholdArgs) -> ();
    bot_check(TokenArgs) -> BotIdentityDto;
    member_add(MemberAddArgs) -> PairingDto;
    member_pair(MemberRef) -> PairingDto;
    member_list() -> Vec<MemberDetail>;
    member_update(MemberUpdateArgs) -> MemberDetail;
    member_caps(MemberCapsArgs) -> MemberDetail;
    member_voice(MemberVoiceArgs) -> MemberDetail;
    member_streaming(MemberStreamingArgs) -> MemberDetail;
    member_pause(PauseArgs) -> ();
    member_token(MemberTokenArgs) -> BotIdentityDto;
    member_export(MemberExportArgs) -> ExportDto;
    member_remove(MemberRef) -> ();
    prices() -> Vec<PriceDto>;
    price_set(PriceArgs) -> Vec<PriceDto>;
    speech_price_set(SpeechPriceArgs) -> Vec<PriceDto>;
    voice_settings() -> VoiceSettingsDto;
    speech_service_set(SpeechServiceArgs) -> SpeechServiceDto;
    speech_service_off(SpeechDirectionArgs) -> SpeechServiceDto;
    speech_test(SpeechDirectionArgs) -> SpeechTestDto;
    settings() -> SettingsDto;
    settings_set(SettingsArgs) -> SettingsDto;
    backup_now(BackupNowArgs) -> BackupDto;
    backup_schedule(BackupScheduleArgs) -> BackupStatusDto;
    daemon_register() -> DaemonDto;
    daemon_open_settings() -> ();
    restart() -> AppInfo;
    quit() -> ();
}
