//! `hearth provider`, `hearth member` and `hearth status`: requests to the running gateway over
//! its owner-only control socket (the gateway is the only writer of `gateway.sqlite`), printed
//! for a person or, with `--json`, for a script.

use std::path::Path;
use std::time::Duration;

use hearth_gateway::control;
use hearth_gateway::routing::pause;
use hearth_gateway::spend::{self, format_usd};
use hearth_proto::control::{
    AlertLevel, BotState, ControlReply, ControlRequest, IsolationLevel, LaneState, MemberStatus, MemberSummary, ModelChange,
    ProviderKind, QuietHours, Role, SpeechSource, SpeechSummary, StatusReport,
};
use serde_json::json;

use crate::args::{
    Kind, MemberCommand, MemberPickArgs, ProviderCommand, ProviderConnectionsArgs, ProviderSetArgs, ProviderSpeechArgs,
    RoleArg, StatusArgs,
};
use crate::failure::Failure;
use crate::secret;
use crate::table;

/// Longest we wait for the gateway to answer one request. Adding a member waits on Telegram's
/// `getMe`, which the gateway itself bounds at 20 s.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(90);

pub(crate) async fn ask(data_dir: &Path, request: ControlRequest) -> Result<ControlReply, Failure> {
    match tokio::time::timeout(ANSWER_TIMEOUT, control::request(data_dir, request)).await {
        Ok(reply) => reply.map_err(Failure::from),
        Err(_) => Err(Failure::unexpected(format!(
            "the gateway did not answer within {} seconds; check its log, or restart `hearth serve`",
            ANSWER_TIMEOUT.as_secs()
        ))),
    }
}

/// Fails with "not running" before the admin is asked to paste a secret for nothing.
pub(crate) async fn ensure_running(data_dir: &Path) -> Result<(), Failure> {
    ask(data_dir, ControlRequest::Status).await.map(drop)
}

pub(crate) fn unexpected_reply(reply: &ControlReply) -> Failure {
    Failure::unexpected(format!(
        "the gateway answered something this hearth command does not understand ({:?}); use the same Hearth version for both",
        std::mem::discriminant(reply)
    ))
}

pub(crate) fn print_json(value: &impl serde::Serialize) {
    // Serialising our own plain data types cannot fail.
    println!("{}", serde_json::to_string(value).unwrap_or_default());
}

// ---------------------------------------------------------------------------------------------
// provider

pub async fn provider(data_dir: &Path, command: ProviderCommand) -> Result<(), Failure> {
    let (args, test) = match command {
        ProviderCommand::Set(args) => (args, false),
        ProviderCommand::Test(args) => (args, true),
        ProviderCommand::Speech(args) => return provider_speech(data_dir, args).await,
        ProviderCommand::Voice(args) => return crate::voice::provider_voice(data_dir, args).await,
        ProviderCommand::TestSpeech(args) => return crate::voice::test_speech(data_dir, args).await,
        ProviderCommand::Show(args) => return provider_show(data_dir, args.json).await,
        ProviderCommand::Connections(args) => return provider_connections(data_dir, args).await,
    };
    ensure_running(data_dir).await?;
    let api_key = api_key(&args).await?;
    let kind = match args.kind {
        Kind::Openai => ProviderKind::Openai,
        Kind::Anthropic => ProviderKind::Anthropic,
    };
    if test {
        let request = ControlRequest::ProviderTest { kind, base_url: args.base_url, model: args.model, api_key };
        return match ask(data_dir, request).await? {
            ControlReply::ProviderTested(t) => {
                if args.json {
                    print_json(&t);
                } else {
                    println!("It works: {} answered in {} ms: {:?}", t.model, t.latency_ms, t.reply);
                    println!("Nothing was saved. To use it, run `hearth provider set` with the same options.");
                }
                Ok(())
            }
            other => Err(unexpected_reply(&other)),
        };
    }
    let request = ControlRequest::ProviderSet { kind, base_url: args.base_url, model: args.model, api_key };
    match ask(data_dir, request).await? {
        ControlReply::ProviderSet(summary) => {
            if args.json {
                print_json(&summary);
            } else {
                println!(
                    "Provider set: {} model {} at {}.\nThe key is kept by the gateway only; no member's assistant ever sees it.",
                    summary.kind.as_str(),
                    summary.model,
                    summary.base_url
                );
            }
            Ok(())
        }
        other => Err(unexpected_reply(&other)),
    }
}

/// `hearth provider speech`: a service of the household's own, or off.
async fn provider_speech(data_dir: &Path, args: ProviderSpeechArgs) -> Result<(), Failure> {
    ensure_running(data_dir).await?;
    let request = match (&args.base_url, &args.model) {
        (Some(base_url), Some(model)) if !args.off => {
            let api_key = service_key("speech", base_url, args.no_key, args.api_key_env.as_deref()).await?;
            ControlRequest::SpeechSet { base_url: base_url.clone(), model: model.clone(), api_key }
        }
        _ => ControlRequest::SpeechOff,
    };
    match ask(data_dir, request).await? {
        ControlReply::Speech(summary) => {
            if args.json {
                print_json(&summary);
            } else if args.off {
                println!("Speech recognition is off: voice messages get a kind note asking to type instead.");
            } else {
                println!("{}", describe_speech(&summary));
                println!("Its key is kept by the gateway only; no member's assistant ever sees it.");
            }
            Ok(())
        }
        other => Err(unexpected_reply(&other)),
    }
}

/// A speech or voice service's API key (`what`: "speech", "voice"): none with `no_key`, else from
/// the variable named by `env`, else from stdin; empty only for a service on this machine.
pub(crate) async fn service_key(
    what: &str,
    base_url: &str,
    no_key: bool,
    env: Option<&str>,
) -> Result<String, Failure> {
    let api_key = if no_key {
        String::new()
    } else if let Some(var) = env {
        secret::from_env(var)?
    } else {
        secret::from_stdin(&format!("Paste the {what} service's API key and press Enter (it will not be shown):"))
            .await?
    };
    if api_key.is_empty() && !no_key && !is_local(base_url) {
        return Err(Failure::invalid_input(format!(
            "no API key given. Paste the key from the {what} service's dashboard when asked, or use --api-key-env \
             VAR; if the service needs no key, pass --no-key"
        )));
    }
    Ok(api_key)
}

/// `hearth provider show`: the chat provider, the speech service and the voice replies in use.
/// `hearth provider connections N`.
async fn provider_connections(data_dir: &Path, args: ProviderConnectionsArgs) -> Result<(), Failure> {
    let max = args.max;
    match ask(data_dir, ControlRequest::ProviderConnections { max }).await? {
        ControlReply::Done => {
            if args.json {
                print_json(&json!({ "max_connections": max }));
            } else {
                println!(
                    "At most {max} answers are written at once across the household; \
                     a member's next one waits in line until one finishes."
                );
            }
            Ok(())
        }
        other => Err(unexpected_reply(&other)),
    }
}

async fn provider_show(data_dir: &Path, json: bool) -> Result<(), Failure> {
    let provider = match ask(data_dir, ControlRequest::Status).await? {
        ControlReply::Status(status) => status.provider,
        other => return Err(unexpected_reply(&other)),
    };
    let speech = match ask(data_dir, ControlRequest::SpeechGet).await? {
        ControlReply::Speech(summary) => summary,
        other => return Err(unexpected_reply(&other)),
    };
    let voice = match ask(data_dir, ControlRequest::VoiceGet).await? {
        ControlReply::Voice(summary) => summary,
        other => return Err(unexpected_reply(&other)),
    };
    if json {
        print_json(&json!({ "provider": provider, "speech": speech, "voice": voice }));
    } else {
        match &provider {
            Some(p) => println!("Provider: {} model {} at {}", p.kind.as_str(), p.model, p.base_url),
            None => println!("Provider: not set — run `hearth provider set` so the assistants can answer"),
        }
        println!("{}", describe_speech(&speech));
        println!("{}", crate::voice::describe_voice(&voice));
    }
    Ok(())
}

/// One line on the speech service, as the admin reads it.
pub(crate) fn describe_speech(s: &SpeechSummary) -> String {
    let at = || format!("{} at {}", s.model.as_deref().unwrap_or("?"), s.base_url.as_deref().unwrap_or("?"));
    match s.source {
        SpeechSource::Own => format!("Speech recognition: {}.", at()),
        SpeechSource::ChatProvider => format!("Speech recognition: {} (the provider's own service).", at()),
        SpeechSource::Off => {
            "Speech recognition: off (`hearth provider speech --base-url URL --model NAME` turns it on).".to_owned()
        }
        SpeechSource::None => "Speech recognition: none — voice messages can't be understood; set one with \
                               `hearth provider speech --base-url URL --model NAME`."
            .to_owned(),
    }
}

/// The API key as `provider set` and `provider test` take it: none, from a named variable, or
/// from stdin; never from argv.
async fn api_key(args: &ProviderSetArgs) -> Result<String, Failure> {
    let api_key = if args.no_key {
        String::new()
    } else if let Some(var) = &args.api_key_env {
        secret::from_env(var)?
    } else {
        secret::from_stdin("Paste the API key and press Enter (it will not be shown):").await?
    };
    if api_key.is_empty() && !args.no_key && !is_local(&args.base_url) {
        return Err(Failure::invalid_input(
            "no API key given. Paste the key from your provider's dashboard when asked, or use --api-key-env VAR; \
             if this provider needs no key, pass --no-key",
        ));
    }
    Ok(api_key)
}

/// Whether a base URL points at this machine (a local model server that needs no key).
fn is_local(base_url: &str) -> bool {
    let rest = base_url.trim().split_once("://").map_or(base_url.trim(), |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    let host = host.to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost") || host.starts_with("127.") || host == "::1"
}

// ---------------------------------------------------------------------------------------------
// member

pub async fn member(data_dir: &Path, command: MemberCommand) -> Result<(), Failure> {
    match command {
        MemberCommand::Add(args) => {
            // Check what can be checked here before asking for the token.
            control::validate_name(&args.name)?;
            ensure_running(data_dir).await?;
            let bot_token = secret::from_stdin(&format!(
                "Paste {}'s bot token from @BotFather and press Enter (it will not be shown):",
                args.name.trim()
            ))
            .await?;
            if bot_token.is_empty() {
                return Err(Failure::invalid_input(
                    "no bot token given. In Telegram, message @BotFather, send /newbot, then paste the token it gives you \
                     (or pipe it in: `hearth member add NAME < token.txt`)",
                ));
            }
            let request = ControlRequest::MemberAdd { name: args.name, bot_token, role: role(args.role) };
            match ask(data_dir, request).await? {
                ControlReply::MemberAdded(added) => {
                    if args.json {
                        print_json(&json!({
                            "id": added.id,
                            "name": added.name,
                            "bot_username": added.bot_username,
                            "pair_code": added.pair_code,
                            "pair_link": added.pair_link,
                        }));
                    } else {
                        println!("Added {} with the bot @{}.\n", added.name, added.bot_username);
                        print_pairing_steps(
                            &added.name,
                            &added.bot_username,
                            &added.pair_code,
                            &added.pair_link,
                            "within the next hour",
                        );
                    }
                    Ok(())
                }
                other => Err(unexpected_reply(&other)),
            }
        }
        MemberCommand::List(args) => match ask(data_dir, ControlRequest::MemberList).await? {
            ControlReply::Members { members } => {
                if args.json {
                    print_json(&json!({ "members": members }));
                } else if members.is_empty() {
                    println!(
                        "No members yet. Create a bot for someone with @BotFather in Telegram, then run `hearth member add NAME`."
                    );
                } else {
                    let rows: Vec<Vec<String>> = members
                        .iter()
                        .map(|m| {
                            vec![
                                m.name.clone(),
                                format!("@{}", m.bot_username),
                                m.role.as_str().into(),
                                if m.paired { "yes".into() } else { "no".into() },
                                if m.paused { "paused".into() } else { "-".into() },
                                m.model.clone().unwrap_or_else(|| "household".into()),
                                m.voice_replies.as_str().replace('_', "-"),
                                m.created_at.chars().take(10).collect(),
                                m.id.clone(),
                            ]
                        })
                        .collect();
                    let headers = ["NAME", "BOT", "ROLE", "PAIRED", "PAUSED", "MODEL", "VOICE REPLIES", "ADDED", "ID"];
                    print!("{}", table::render(&headers, &rows));
                }
                Ok(())
            }
            other => Err(unexpected_reply(&other)),
        },
        MemberCommand::Remove(args) => {
            match ask(data_dir, ControlRequest::MemberRemove { member: args.name.clone() }).await? {
                ControlReply::Done => {
                    if args.json {
                        print_json(&json!({ "removed": args.name }));
                    } else {
                        println!(
                            "Removed {}: their bot no longer answers, and its token and the pairing are forgotten.\n\
                         Their conversations are kept in {}.",
                            args.name,
                            data_dir.join("archive").display()
                        );
                    }
                    Ok(())
                }
                other => Err(unexpected_reply(&other)),
            }
        }
        MemberCommand::Pause(args) => {
            let how_long = args.how_long();
            member_pause(data_dir, args.who, true, &how_long).await
        }
        MemberCommand::Resume(args) => member_pause(data_dir, args, false, "").await,
        MemberCommand::Token(args) => {
            ensure_running(data_dir).await?;
            let bot_token = secret::from_stdin(&format!(
                "Paste the new bot token for {} from @BotFather and press Enter (it will not be shown):",
                args.name.trim()
            ))
            .await?;
            if bot_token.is_empty() {
                return Err(Failure::invalid_input(
                    "no bot token given. In @BotFather send /token (or /revoke for a fresh one), pick the bot, \
                     and paste the token it gives you (or pipe it in: `hearth member token NAME < token.txt`)",
                ));
            }
            match ask(data_dir, ControlRequest::MemberToken { member: args.name, bot_token }).await? {
                ControlReply::Member(m) => {
                    if args.json {
                        print_json(&m);
                    } else {
                        println!(
                            "{}'s assistant now uses the bot @{}. Their Telegram account stays paired: \
                             if the bot is new, they just write to @{}.",
                            m.name, m.bot_username, m.bot_username
                        );
                    }
                    Ok(())
                }
                other => Err(unexpected_reply(&other)),
            }
        }
        MemberCommand::Set(args) => {
            let model = match (args.model, args.household_model) {
                (Some(model), _) => Some(ModelChange::Set { model }),
                (None, true) => Some(ModelChange::Household),
                (None, false) => None,
            };
            let quiet = match args.quiet_hours.as_deref().map(str::trim) {
                None => None,
                Some(q) if q.eq_ignore_ascii_case("off") || q.eq_ignore_ascii_case("none") => Some(None),
                Some(q) => Some(Some(q.parse::<QuietHours>().map_err(Failure::invalid_input)?)),
            };
            let (member, persona, role_arg) = (args.name, args.persona, args.role.map(role));
            let mut reply = None;
            let streaming = args.streaming.map(|s| s == crate::args::OnOff::On);
            let alerts = args.alerts.map(alert_level);
            let others = quiet.is_some() || args.voice_replies.is_some() || streaming.is_some() || alerts.is_some();
            if role_arg.is_some() || persona.is_some() || model.is_some() || !others {
                let request = ControlRequest::MemberUpdate { member: member.clone(), role: role_arg, persona, model };
                reply = Some(ask(data_dir, request).await?);
            }
            if let Some(quiet_hours) = quiet {
                reply = Some(
                    ask(data_dir, ControlRequest::MemberQuietHours { member: member.clone(), quiet_hours }).await?,
                );
            }
            if let Some(voice) = args.voice_replies {
                let voice_replies = crate::voice::voice_replies(voice);
                reply = Some(ask(data_dir, ControlRequest::MemberVoice { member: member.clone(), voice_replies }).await?);
            }
            if let Some(streaming) = streaming {
                reply = Some(ask(data_dir, ControlRequest::MemberStreaming { member: member.clone(), streaming }).await?);
            }
            if let Some(alerts) = alerts {
                reply = Some(ask(data_dir, ControlRequest::MemberAlerts { member, alerts }).await?);
            }
            match reply.expect("one request was sent") {
                ControlReply::Member(m) => {
                    if args.json {
                        print_json(&m);
                    } else {
                        print!("{}", describe_member(&m));
                    }
                    Ok(())
                }
                other => Err(unexpected_reply(&other)),
            }
        }
        MemberCommand::Export(args) => {
            let dir = std::path::absolute(&args.dir)
                .map_err(|e| Failure::invalid_input(format!("{} is not a usable folder: {e}", args.dir.display())))?;
            let Some(dest_dir) = dir.to_str().map(str::to_owned) else {
                return Err(Failure::invalid_input(format!(
                    "{} is not valid text; choose a folder whose name is",
                    dir.display()
                )));
            };
            match ask(data_dir, ControlRequest::MemberExport { member: args.name.clone(), dest_dir }).await? {
                ControlReply::Exported { path } => {
                    if args.json {
                        print_json(&json!({ "path": path }));
                    } else {
                        println!("Exported {}'s data to {path}", args.name);
                        println!("It is private to them: keep it where only the right people can read it.");
                    }
                    Ok(())
                }
                other => Err(unexpected_reply(&other)),
            }
        }
        MemberCommand::Cap(args) => crate::spend::member_cap(data_dir, args).await,
        MemberCommand::Admin(args) => crate::spend::member_admin(data_dir, args).await,
        MemberCommand::Fallback(args) => crate::spend::member_fallback(data_dir, args).await,
        MemberCommand::Pair(args) => match ask(data_dir, ControlRequest::MemberPair { member: args.name }).await? {
            ControlReply::PairCode(code) => {
                if args.json {
                    print_json(&code);
                } else {
                    let until = chrono::DateTime::parse_from_rfc3339(&code.expires_at)
                        .map(|t| format!("until {}", t.format("%H:%M")))
                        .unwrap_or_else(|_| "for an hour".into());
                    print_pairing_steps(&code.name, &code.bot_username, &code.pair_code, &code.pair_link, &until);
                    println!(
                        "\nWhichever Telegram account sends this code becomes {}'s, so share it only with them.",
                        code.name
                    );
                }
                Ok(())
            }
            other => Err(unexpected_reply(&other)),
        },
    }
}

fn alert_level(a: crate::args::AlertsArg) -> AlertLevel {
    match a {
        crate::args::AlertsArg::All => AlertLevel::All,
        crate::args::AlertsArg::Important => AlertLevel::Important,
        crate::args::AlertsArg::Off => AlertLevel::Off,
    }
}

fn role(r: RoleArg) -> Role {
    match r {
        RoleArg::Adult => Role::Adult,
        RoleArg::Teen => Role::Teen,
        RoleArg::Child => Role::Child,
    }
}

/// When a pause from the command line ends, read like `/pause` in Telegram
/// (`routing::pause::pause_end`) in the household's zone, which the gateway tells: the end as
/// RFC 3339 and as the admin reads it ("15:30", "07:00 tomorrow"). `None`: until resumed.
async fn pause_end(data_dir: &Path, how_long: &str) -> Result<Option<(String, String)>, Failure> {
    if how_long.is_empty() {
        return Ok(None);
    }
    let zone = match ask(data_dir, ControlRequest::Usage { month: None }).await? {
        ControlReply::Usage(report) => report.timezone,
        other => return Err(unexpected_reply(&other)),
    };
    let tz = spend::period::parse_timezone(&zone).map_err(Failure::unexpected)?;
    let now = chrono::Utc::now();
    let until = pause::pause_end(how_long, now, tz).map_err(Failure::invalid_input)?;
    Ok(until.map(|u| (u.to_rfc3339(), pause::until_text(u, now, tz))))
}

async fn member_pause(data_dir: &Path, args: MemberPickArgs, paused: bool, how_long: &str) -> Result<(), Failure> {
    let member = if args.all { None } else { args.name.clone() };
    let end = if paused { pause_end(data_dir, how_long).await? } else { None };
    let until = end.as_ref().map(|(at, _)| at.clone());
    match ask(data_dir, ControlRequest::MemberPause { member: member.clone(), paused, until: until.clone() }).await? {
        ControlReply::Done => {
            if args.json {
                if paused {
                    print_json(&json!({ "member": member, "paused": paused, "until": until }));
                } else {
                    print_json(&json!({ "member": member, "paused": paused }));
                }
            } else {
                let who = member.as_deref().unwrap_or("every member");
                match (paused, end) {
                    (true, Some((_, shown))) => println!(
                        "Paused {who} until {shown}: their messages get a short note instead of an answer, and reach \
                         no AI model. Their assistant comes back by itself then."
                    ),
                    (true, None) => println!(
                        "Paused {who}: their messages get a short note instead of an answer, and reach no AI model.\n\
                         `hearth member resume {}` turns it back on.",
                        member.as_deref().unwrap_or("--all")
                    ),
                    (false, _) => println!("Resumed {who}: their assistant answers again."),
                }
            }
            Ok(())
        }
        other => Err(unexpected_reply(&other)),
    }
}

/// A member's settings, for `hearth member set`.
fn describe_member(m: &MemberSummary) -> String {
    let mut out = format!("{} (@{}): role {}", m.name, m.bot_username, m.role.as_str());
    match &m.model {
        Some(model) => out += &format!(", model {model}"),
        None => out += ", the household's model",
    }
    if m.paused {
        out += ", paused";
    }
    if let Some(q) = m.quiet_hours {
        out += &format!(", quiet hours {q}");
    }
    out += &format!(", {}", crate::voice::describe_voice_replies(m.voice_replies));
    if !m.streaming {
        out += ", replies shown only when finished";
    }
    match (m.is_admin, m.alerts) {
        (true, AlertLevel::Important) => out += ", alerts: only important ones",
        (true, AlertLevel::Off) => out += ", no alerts",
        _ => {}
    }
    out += ".\n";
    if m.persona.is_empty() {
        out += "No persona notes.\n";
    } else {
        out += &format!("Persona notes:\n{}\n", m.persona);
    }
    out
}

fn print_pairing_steps(name: &str, bot: &str, code: &str, link: &str, valid: &str) {
    println!("To pair {name}'s Telegram account (the code works once, {valid}):");
    println!("  • on {name}'s phone, open  {link}");
    println!("  • or in Telegram, send  /start {code}  to @{bot}");
}

// ---------------------------------------------------------------------------------------------
// status

pub async fn status(data_dir: &Path, args: StatusArgs) -> Result<(), Failure> {
    match ask(data_dir, ControlRequest::Status).await? {
        ControlReply::Status(report) => {
            if args.json {
                print_json(&report);
            } else {
                print!("{}", render_status(&report));
            }
            Ok(())
        }
        other => Err(unexpected_reply(&other)),
    }
}

/// The human status screen.
pub fn render_status(r: &StatusReport) -> String {
    let mut out = format!("Hearth {} serving {} · up {}\n", r.version, r.data_dir, duration(r.uptime_secs));
    match &r.provider {
        Some(p) => out += &format!("Provider: {} model {} at {}\n", p.kind.as_str(), p.model, p.base_url),
        None => out += "Provider: not set — run `hearth provider set` so the assistants can answer\n",
    }
    if let Some(speech) = &r.speech {
        out += &format!("{}\n", describe_speech(speech));
    }
    if let Some(voice) = &r.voice {
        out += &format!("{}\n", crate::voice::describe_voice(voice));
    }
    if let Some(h) = &r.household_bot {
        out += &format!(
            "Household bot: @{} ({}) · started by {} admin(s)\n",
            h.bot_username,
            bot_state(&h.bot),
            h.admin_chats
        );
    }
    out += &format!(
        "Answering now: {} of {} at most · worker processes: {} · isolation: {}\n",
        r.turns_in_flight,
        r.turn_cap,
        r.worker_processes,
        r.isolation.as_str()
    );
    if let Some(c) = r.provider_connections {
        out += &format!("Provider calls open: {} of {} at most\n", c.open, c.max);
    }
    if r.isolation == IsolationLevel::Process {
        out += "⚠ Isolation \"process\" is the weaker development level: every member's worker runs as this same OS\n  \
                user, so members' data is separated by directory permissions only.\n";
    }
    out.push('\n');
    if r.members.is_empty() {
        out += "No members yet. Add one with `hearth member add NAME`.\n";
        return out;
    }
    let rows: Vec<Vec<String>> = r
        .members
        .iter()
        .map(|m| {
            vec![
                m.name.clone(),
                format!("@{}", m.bot_username),
                bot_state(&m.bot),
                if m.paired { "yes".into() } else { "no".into() },
                if m.paused { format!("paused{}", running_suffix(&m.lane)) } else { lane_state(&m.lane) },
                m.worker_pid.map_or("-".into(), |pid| format!("pid {pid}")),
                m.isolation.as_str().into(),
                m.today.calls.to_string(),
                format!("{} / {}", m.today.input_tokens, m.today.output_tokens),
                format_usd(m.today.cost_micros),
                disk(m.disk),
            ]
        })
        .collect();
    out += &table::render(
        &[
            "MEMBER",
            "BOT",
            "CONNECTION",
            "PAIRED",
            "LANE",
            "WORKER",
            "ISOLATION",
            "CALLS TODAY",
            "TOKENS IN / OUT",
            "TODAY $",
            "DISK",
        ],
        &rows,
    );
    let notes = member_notes(&r.members, r.isolation);
    for note in &notes {
        out += &format!("\n{note}");
    }
    if !notes.is_empty() {
        out.push('\n');
    }
    out
}

/// What the admin should do about a member, if anything.
fn member_notes(members: &[MemberStatus], household: IsolationLevel) -> Vec<String> {
    let mut notes = Vec::new();
    for m in members {
        // The household-wide warning above covers everyone when the whole gateway is at "process".
        if m.isolation == IsolationLevel::Process && household != IsolationLevel::Process {
            notes.push(format!(
                "⚠ {}'s worker runs at isolation \"process\", as the gateway's own OS user: `hearth doctor` says why and what to do.",
                m.name
            ));
        }
        match &m.bot {
            BotState::TokenRevoked => notes.push(format!(
                "{}: Telegram rejects the bot token (revoked or mistyped). In @BotFather send /token for @{}, \
                 then `hearth member token {}`.",
                m.name, m.bot_username, m.name
            )),
            BotState::UsedElsewhere => notes.push(format!(
                "{}: another program is using @{}'s token. Stop it (or /revoke the token in @BotFather, \
                 then `hearth member token {}`).",
                m.name, m.bot_username, m.name
            )),
            _ => {}
        }
        if m.paused {
            notes.push(format!(
                "{} is paused: their messages get a short note instead of an answer. \
                 `hearth member resume {}` turns it back on.",
                m.name, m.name
            ));
        }
        if !m.paired {
            notes.push(format!("{} is not paired yet: `hearth member pair {}` gives a code.", m.name, m.name));
        }
        if let Some(q) = m.quiet_hours {
            notes.push(format!("{}'s assistant rests {q} (quiet hours; reminders still come).", m.name));
        }
        if let Some(d) = m.disk.filter(|d| d.over()) {
            notes.push(format!(
                "⚠ {}'s folder takes {}, over the household's disk quota: their assistant takes no new messages until \
                 it is smaller. Free space there, or raise the quota with `hearth household disk-quota MB`.",
                m.name,
                disk(Some(d))
            ));
        }
    }
    notes
}

/// A member's folder against the disk quota: "12 MB / 1024 MB", or "-" before it is measured.
fn disk(d: Option<hearth_proto::control::DiskUsage>) -> String {
    let mb = |b: u64| b.div_ceil(1 << 20);
    match d {
        None => "-".into(),
        Some(d) => match d.quota_bytes {
            Some(q) => format!("{} MB / {} MB", mb(d.bytes), mb(q)),
            None => format!("{} MB", mb(d.bytes)),
        },
    }
}

pub fn bot_state(b: &BotState) -> String {
    match b {
        BotState::Starting => "starting".into(),
        BotState::Polling => "ok".into(),
        BotState::TokenRevoked => "token rejected".into(),
        BotState::UsedElsewhere => "used elsewhere".into(),
        BotState::RateLimited { retry_after_secs } => format!("slowed down {retry_after_secs}s"),
        BotState::Unreachable { error } => format!("unreachable: {}", table::excerpt(error, 30)),
    }
}

/// ", running for 3s" while a turn started before a pause finishes; otherwise nothing.
fn running_suffix(l: &LaneState) -> String {
    match l {
        LaneState::Running { secs, .. } => format!(", running for {secs}s"),
        _ => String::new(),
    }
}

pub fn lane_state(l: &LaneState) -> String {
    match l {
        LaneState::Idle => "idle".into(),
        LaneState::Queued { messages } => format!("queued {messages}"),
        LaneState::Running { secs, queued: 0, doing } if !doing.is_thinking() => format!("{} for {secs}s", doing.as_str()),
        LaneState::Running { secs, queued: 0, .. } => format!("running for {secs}s"),
        LaneState::Running { secs, queued, .. } => format!("running for {secs}s, {queued} waiting"),
    }
}

fn duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_proto::control::{DayUsage, DiskUsage, ProviderConnections, ProviderSummary};

    #[test]
    fn local_urls_are_recognised() {
        for url in [
            "http://localhost:11434/v1",
            "http://127.0.0.1:1234/v1",
            "http://[::1]:8080",
            "http://LOCALHOST/v1",
            "http://user@localhost",
        ] {
            assert!(is_local(url), "{url}");
        }
        for url in [
            "https://api.openai.com/v1",
            "http://localhost.evil.com/v1",
            "http://10.0.0.2:11434",
            "http://example.com/127.0.0.1",
        ] {
            assert!(!is_local(url), "{url}");
        }
    }

    #[test]
    fn status_screen() {
        let member = |name: &str, bot, paired, lane, calls| MemberStatus {
            id: format!("{}-abcd", name.to_lowercase()),
            name: name.into(),
            bot_username: format!("{}_family_bot", name.to_lowercase()),
            bot,
            paired,
            lane,
            worker_pid: (calls > 0).then_some(4100 + calls as u32),
            isolation: IsolationLevel::Process,
            today: DayUsage { calls, input_tokens: calls * 300, output_tokens: calls * 40, cost_micros: calls * 350 },
            role: Role::Adult,
            paused: false,
            paused_until: None,
            last_activity: None,
            quiet_hours: None,
            disk: (calls > 0).then_some(DiskUsage { bytes: calls << 20, quota_bytes: Some(1 << 30) }),
        };
        let report = StatusReport {
            version: "0.1.0".into(),
            data_dir: "/var/lib/hearth".into(),
            uptime_secs: 3725,
            provider: Some(ProviderSummary {
                kind: ProviderKind::Openai,
                base_url: "https://api.openai.com/v1".into(),
                model: "gpt-4o-mini".into(),
            }),
            members: vec![
                member("Rosa", BotState::Polling, true, LaneState::Running { secs: 3, queued: 1, doing: Default::default() }, 12),
                member("Leo", BotState::Polling, true, LaneState::Queued { messages: 2 }, 4),
                member("Sam", BotState::TokenRevoked, false, LaneState::Idle, 0),
            ],
            turns_in_flight: 1,
            turn_cap: 8,
            worker_processes: 2,
            isolation: IsolationLevel::Process,
            speech: None,
            voice: None,
            provider_connections: Some(ProviderConnections { open: 1, max: 256 }),
            household_bot: None,
        };
        insta::assert_snapshot!(render_status(&report));

        // At a stronger level there is no household warning, but a member whose worker still
        // runs at "process" is pointed out.
        let mut report = report;
        report.isolation = IsolationLevel::AccountSandbox;
        report.members[0].isolation = IsolationLevel::AccountSandbox;
        report.members[2].isolation = IsolationLevel::AccountSandbox;
        let text = render_status(&report);
        assert!(!text.contains("weaker development level"), "{text}");
        assert!(text.contains("isolation: account + sandbox"), "{text}");
        let rosa = text.lines().find(|l| l.starts_with("Rosa ")).unwrap();
        assert!(rosa.contains("account + sandbox"), "{rosa}");
        let notes: Vec<_> = text.lines().filter(|l| l.contains("isolation \"process\"")).collect();
        assert!(matches!(notes.as_slice(), [n] if n.contains("Leo") && n.contains("hearth doctor")), "{text}");

        // A paused member says so in the lane column and in a note.
        report.members[1].paused = true;
        report.members[0].paused = true;
        let text = render_status(&report);
        let leo = text.lines().find(|l| l.starts_with("Leo ")).unwrap();
        assert!(leo.contains(" paused ") && !leo.contains("queued"), "{leo}");
        let rosa = text.lines().find(|l| l.starts_with("Rosa ")).unwrap();
        assert!(rosa.contains(" paused, running for 3s "), "a turn started before the pause finishes: {rosa}");
        assert!(text.contains("Leo is paused") && text.contains("`hearth member resume Leo`"), "{text}");

        // A folder over the disk quota says so, with what to do.
        report.members[1].disk = Some(DiskUsage { bytes: 2 << 30, quota_bytes: Some(1 << 30) });
        let text = render_status(&report);
        let leo = text.lines().find(|l| l.starts_with("Leo ")).unwrap();
        assert!(leo.contains("2048 MB / 1024 MB"), "{leo}");
        assert!(text.contains("Leo's folder takes 2048 MB / 1024 MB, over the household's disk quota"), "{text}");
    }

    #[test]
    fn member_settings_read_plainly() {
        let mut m = MemberSummary {
            id: "mia-abcd".into(),
            name: "Mia".into(),
            bot_username: "mia_family_bot".into(),
            paired: true,
            created_at: "2026-01-01T00:00:00+00:00".into(),
            role: Role::Child,
            paused: false,
            paused_until: None,
            persona: "Mia is 8.\nShe loves horses.".into(),
            model: None,
            fallback_model: None,
            is_admin: false,
            daily_cap_usd: None,
            monthly_cap_usd: None,
            quiet_hours: None,
            voice_replies: Default::default(),
            streaming: true,
            alerts: Default::default(),
        };
        assert_eq!(
            describe_member(&m),
            "Mia (@mia_family_bot): role child, the household's model, answers voice messages in voice.\nPersona notes:\n\
             Mia is 8.\nShe loves horses.\n"
        );
        m.model = Some("gpt-4o-mini".into());
        m.paused = true;
        m.persona.clear();
        m.voice_replies = hearth_proto::control::VoiceReplies::Never;
        assert_eq!(
            describe_member(&m),
            "Mia (@mia_family_bot): role child, model gpt-4o-mini, paused, always answers in text.\nNo persona notes.\n"
        );
    }
}
