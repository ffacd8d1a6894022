//! Spend control from the command line: `hearth price`, `hearth household`, `hearth usage` and
//! the spend parts of `hearth member` (`cap`, `admin`, `fallback`).
//!
//! Amounts are typed in USD and sent as integer micro-USD ([`parse_usd`], no floating point);
//! what the gateway reports in USD is shown back through [`format_usd`], so the CLI never prints
//! "$0.00" for a small spend. Input that can be checked here (an amount, a month, a time zone)
//! is, so a typo costs no round trip; the gateway checks everything again.

use std::io::Write as _;
use std::path::Path;

use hearth_gateway::spend::period::{self, PeriodKind};
use hearth_gateway::spend::{MICROS_PER_USD, format_usd, parse_usd};
use hearth_proto::control::{CapChange, CapsReport, ControlReply, ControlRequest, PriceRow, UsageReport, UsageTotals};
use serde_json::json;

use crate::admin::{ask, print_json, unexpected_reply};
use crate::args::{
    HouseholdCommand, MemberAdminArgs, MemberCapArgs, MemberFallbackArgs, PriceCommand, UsageArgs, UsageCommand,
};
use crate::failure::Failure;
use crate::table;

// ---------------------------------------------------------------------------------------------
// price

pub async fn price(data_dir: &Path, command: PriceCommand) -> Result<(), Failure> {
    match command {
        PriceCommand::Set(args) => {
            let model = args.model.trim().to_owned();
            // Every part is checked before anything is sent, so a typo changes nothing.
            let mut requests = Vec::new();
            if let (Some(input), Some(output)) = (&args.input_usd_per_mtok, &args.output_usd_per_mtok) {
                requests.push(ControlRequest::PriceSet {
                    model: model.clone(),
                    input_micros_per_mtok: per_mtok("--input-usd-per-mtok", input)?,
                    output_micros_per_mtok: per_mtok("--output-usd-per-mtok", output)?,
                    cached_input_micros_per_mtok: args
                        .cached_input_usd_per_mtok
                        .as_deref()
                        .map(|v| per_mtok("--cached-input-usd-per-mtok", v))
                        .transpose()?,
                    cache_write_micros_per_mtok: args
                        .cache_write_usd_per_mtok
                        .as_deref()
                        .map(|v| per_mtok("--cache-write-usd-per-mtok", v))
                        .transpose()?,
                });
            }
            if let Some(v) = &args.usd_per_minute {
                let micros_per_minute = parse_usd(v).map_err(|e| {
                    Failure::invalid_input(format!("--usd-per-minute: {e} (USD per minute of audio, e.g. 0.006)"))
                })?;
                requests.push(ControlRequest::SpeechPriceSet { model: model.clone(), micros_per_minute });
            }
            if let Some(v) = &args.usd_per_million_chars {
                let micros_per_mchar = parse_usd(v).map_err(|e| {
                    Failure::invalid_input(format!(
                        "--usd-per-million-chars: {e} (USD per million characters of text, e.g. 15)"
                    ))
                })?;
                requests.push(ControlRequest::VoicePriceSet { model: model.clone(), micros_per_mchar });
            }
            if args.no_vision || args.vision {
                requests.push(ControlRequest::ModelVision { model: model.clone(), vision: args.vision });
            }
            let mut last = None;
            for request in requests {
                match ask(data_dir, request).await? {
                    ControlReply::Prices { prices } => last = Some(prices),
                    other => return Err(unexpected_reply(&other)),
                }
            }
            let prices = last.unwrap_or_default();
            let row = row_for(&prices, &model).ok_or_else(|| {
                Failure::unexpected(format!(
                    "the gateway accepted the price but did not report it back for {model:?}; check `hearth price list`"
                ))
            })?;
            if args.json {
                print_json(row);
            } else {
                println!(
                    "Price set (USD per million tokens, per minute of audio, or per million characters spoken):\n"
                );
                print!("{}", price_table(std::slice::from_ref(row)));
            }
            Ok(())
        }
        PriceCommand::List(args) => match ask(data_dir, ControlRequest::PriceList).await? {
            ControlReply::Prices { prices } => {
                if args.json {
                    print_json(&json!({ "prices": prices }));
                } else if prices.is_empty() {
                    println!(
                        "No prices yet. Add one with `hearth price set MODEL --input-usd-per-mtok X --output-usd-per-mtok Y`."
                    );
                } else {
                    println!(
                        "Prices in USD per million tokens (speech recognition: per minute of audio; voice replies: per \
                         million characters):\n"
                    );
                    print!("{}", price_table(&prices));
                }
                Ok(())
            }
            other => Err(unexpected_reply(&other)),
        },
    }
}

/// A price per million tokens as typed, in micro-USD per million tokens ($X per Mtok is X × 10⁶).
fn per_mtok(flag: &str, value: &str) -> Result<u64, Failure> {
    parse_usd(value).map_err(|e| {
        Failure::invalid_input(format!("{flag}: {e} (USD per million tokens, as on the provider's pricing page)"))
    })
}

/// The row the gateway reported for the model just set (it may have normalised the name).
fn row_for<'a>(prices: &'a [PriceRow], model: &str) -> Option<&'a PriceRow> {
    let model = model.trim();
    prices.iter().find(|p| p.model == model).or_else(|| prices.iter().find(|p| p.model.eq_ignore_ascii_case(model))).or(
        match prices {
            [only] => Some(only),
            _ => None,
        },
    )
}

fn price_table(prices: &[PriceRow]) -> String {
    let rows: Vec<Vec<String>> = prices
        .iter()
        .map(|p| {
            // A speech model has no token prices: a dash, not "$0.00" (which would read as free).
            let speech_only = (p.usd_per_minute.is_some() || p.usd_per_million_chars.is_some())
                && p.input_usd_per_mtok == 0.0
                && p.output_usd_per_mtok == 0.0
                && p.cached_input_usd_per_mtok == 0.0;
            let token = |v: f64| if speech_only { "-".to_owned() } else { usd(v) };
            let model = if p.no_vision { format!("{} (no vision)", p.model) } else { p.model.clone() };
            vec![
                model,
                token(p.input_usd_per_mtok),
                token(p.output_usd_per_mtok),
                token(p.cached_input_usd_per_mtok),
                p.usd_per_minute.map_or_else(|| "-".to_owned(), usd),
                p.usd_per_million_chars.map_or_else(|| "-".to_owned(), usd),
                p.source.clone(),
            ]
        })
        .collect();
    table::render(&["MODEL", "INPUT", "OUTPUT", "CACHED INPUT", "PER MINUTE", "PER M CHARS", "SOURCE"], &rows)
}

// ---------------------------------------------------------------------------------------------
// member cap, admin, fallback

pub async fn member_cap(data_dir: &Path, args: MemberCapArgs) -> Result<(), Failure> {
    let request = ControlRequest::MemberCap {
        member: args.name,
        daily: cap_change("--daily-usd", args.daily_usd.as_deref())?,
        monthly: cap_change("--monthly-usd", args.monthly_usd.as_deref())?,
    };
    ask_caps(data_dir, request, args.json).await
}

/// Sends a cap change and prints the caps that result.
async fn ask_caps(data_dir: &Path, request: ControlRequest, json: bool) -> Result<(), Failure> {
    match ask(data_dir, request).await? {
        ControlReply::Caps(caps) => {
            if json {
                print_json(&caps);
            } else {
                print!("{}", describe_caps(&caps));
            }
            Ok(())
        }
        other => Err(unexpected_reply(&other)),
    }
}

pub async fn member_admin(data_dir: &Path, args: MemberAdminArgs) -> Result<(), Failure> {
    let admin = !args.off;
    match ask(data_dir, ControlRequest::MemberAdmin { member: args.name.clone(), admin }).await? {
        ControlReply::Done => {
            if args.json {
                print_json(&json!({ "member": args.name, "admin": admin }));
            } else if admin {
                println!(
                    "{} is now an admin: their bot will ask them when someone reaches a cap, and /family shows \
                     everyone's spending.",
                    args.name
                );
            } else {
                println!("{} is no longer an admin.", args.name);
            }
            Ok(())
        }
        other => Err(unexpected_reply(&other)),
    }
}

pub async fn member_fallback(data_dir: &Path, args: MemberFallbackArgs) -> Result<(), Failure> {
    let model = if args.off { None } else { args.model.map(|m| m.trim().to_owned()) };
    if model.as_deref() == Some("") {
        return Err(Failure::invalid_input(
            "name the fallback model, e.g. `hearth member fallback NAME gpt-4o-mini`, or pass --off",
        ));
    }
    match ask(data_dir, ControlRequest::MemberFallback { member: args.name.clone(), model: model.clone() }).await? {
        ControlReply::Done => {
            if args.json {
                print_json(&json!({ "member": args.name, "fallback": model }));
            } else {
                match &model {
                    Some(m) => println!(
                        "At a cap, {}'s assistant now switches to {m} instead of stopping (while {m} still fits the cap).",
                        args.name
                    ),
                    None => println!(
                        "{} has no fallback model: at a cap their assistant stops until the cap resets or an admin \
                         allows more.",
                        args.name
                    ),
                }
            }
            Ok(())
        }
        other => Err(unexpected_reply(&other)),
    }
}

/// `--daily-usd 1.50` sets, `none` (or `off`) removes, a flag left out keeps.
fn cap_change(flag: &str, value: Option<&str>) -> Result<CapChange, Failure> {
    let Some(value) = value.map(str::trim) else { return Ok(CapChange::Keep) };
    if value.eq_ignore_ascii_case("none") || value.eq_ignore_ascii_case("off") {
        return Ok(CapChange::Remove);
    }
    parse_usd(value)
        .map(|micros| CapChange::Set { micros })
        .map_err(|e| Failure::invalid_input(format!("{flag}: {e}, or `none` to remove the cap")))
}

/// "Rosa's caps: $1.00 a day, $5.00 a month." for a member; the household has a monthly cap only.
fn describe_caps(caps: &CapsReport) -> String {
    let cap = |c: Option<f64>, per: &str, kind: &str| {
        c.map_or_else(|| format!("no {kind} cap"), |u| format!("{} a {per}", usd(u)))
    };
    match &caps.member {
        Some(name) => format!(
            "{name}'s caps: {}, {}.\n",
            cap(caps.daily_usd, "day", "daily"),
            cap(caps.monthly_usd, "month", "monthly")
        ),
        None => match caps.monthly_usd {
            Some(u) => format!("Household cap: {} a month, for everyone together.\n", usd(u)),
            None => "No household cap: only members' own caps limit spending.\n".to_owned(),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// household

pub async fn household(data_dir: &Path, command: HouseholdCommand) -> Result<(), Failure> {
    match command {
        HouseholdCommand::Bot(args) => crate::household::bot(data_dir, args).await,
        HouseholdCommand::Groups(args) => crate::household::groups(data_dir, args.json).await,
        HouseholdCommand::Group(args) => crate::household::group(data_dir, args).await,
        HouseholdCommand::Cap(args) => {
            let monthly = cap_change("--monthly-usd", Some(&args.monthly_usd))?;
            ask_caps(data_dir, ControlRequest::HouseholdCap { monthly }, args.json).await
        }
        HouseholdCommand::Timezone(args) => {
            let zone = period::parse_timezone(&args.zone).map_err(Failure::invalid_input)?.name();
            match ask(data_dir, ControlRequest::HouseholdTimezone { timezone: zone.to_owned() }).await? {
                ControlReply::Done => {
                    if args.json {
                        print_json(&json!({ "timezone": zone }));
                    } else {
                        println!(
                            "Days and months for caps now count in {zone}: daily caps start over at midnight there."
                        );
                    }
                    Ok(())
                }
                other => Err(unexpected_reply(&other)),
            }
        }
        HouseholdCommand::IdleReset(args) => {
            let hours = args.hours;
            match ask(data_dir, ControlRequest::HouseholdIdleReset { hours }).await? {
                ControlReply::Done => {
                    if args.json {
                        print_json(&json!({ "reset_after_idle_hours": hours }));
                    } else if hours == 0 {
                        println!("Conversations go on however long a member was away.");
                    } else {
                        println!("A member who writes after more than {hours} hours away starts a fresh conversation.");
                    }
                    Ok(())
                }
                other => Err(unexpected_reply(&other)),
            }
        }
        HouseholdCommand::Heartbeat(args) => {
            let (url, every_minutes) = match args.url {
                Some(url) => (Some(url.trim().to_owned()), args.every_minutes),
                None => (None, 0),
            };
            let request = ControlRequest::HouseholdHeartbeat { url: url.clone(), every_minutes };
            match ask(data_dir, request).await? {
                ControlReply::Done => {
                    if args.json {
                        print_json(&json!({ "url": url, "every_minutes": url.as_ref().map(|_| every_minutes) }));
                    } else if url.is_some() {
                        println!(
                            "Hearth pings the URL every {every_minutes} minutes while all is well. Set the service to \
                             expect a ping every {every_minutes} minutes (with some grace), so it tells you when they stop."
                        );
                    } else {
                        println!("Heartbeat off: no more pings.");
                    }
                    Ok(())
                }
                other => Err(unexpected_reply(&other)),
            }
        }
        HouseholdCommand::DiskQuota(args) => {
            let mb = args.mb;
            match ask(data_dir, ControlRequest::HouseholdDiskQuota { mb }).await? {
                ControlReply::Done => {
                    if args.json {
                        print_json(&json!({ "disk_quota_mb": mb }));
                    } else if mb == 0 {
                        println!("Members' folders may take any amount of disk.");
                    } else {
                        println!(
                            "Each member's folder may take {mb} MB; past that their assistant takes no new messages \
                             until it is smaller, and you are told."
                        );
                    }
                    Ok(())
                }
                other => Err(unexpected_reply(&other)),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// usage

pub async fn usage(data_dir: &Path, args: UsageArgs) -> Result<(), Failure> {
    if let Some(UsageCommand::Export(export)) = args.command {
        let month = checked_month(&export.month)?;
        return match ask(data_dir, ControlRequest::UsageExport { month }).await? {
            ControlReply::Csv { text } => {
                // Exactly as received, so `> file.csv` is the gateway's CSV byte for byte.
                let mut out = std::io::stdout().lock();
                out.write_all(text.as_bytes())
                    .and_then(|()| out.flush())
                    .map_err(|e| Failure::unexpected(format!("could not write the CSV to stdout: {e}")))
            }
            other => Err(unexpected_reply(&other)),
        };
    }
    let month = args.month.as_deref().map(checked_month).transpose()?;
    match ask(data_dir, ControlRequest::Usage { month }).await? {
        ControlReply::Usage(report) => {
            if args.json {
                print_json(&report);
            } else {
                let current = period::parse_timezone(&report.timezone)
                    .map(|tz| period::period_at(PeriodKind::Month, tz, chrono::Utc::now()).key == report.month)
                    .unwrap_or(true);
                print!("{}", render_usage(&report, current));
            }
            Ok(())
        }
        other => Err(unexpected_reply(&other)),
    }
}

/// "2026-10", checked here so a typo is an input error (exit 4) without asking the gateway.
fn checked_month(month: &str) -> Result<String, Failure> {
    let (year, month) = period::parse_month(month).map_err(Failure::invalid_input)?;
    Ok(period::month_key(year, month))
}

/// The human usage screen. `current`: the report is for this month, so "today" means something.
pub fn render_usage(r: &UsageReport, current: bool) -> String {
    let mut out = format!("Spending in {} (days and months counted in {})\n\n", r.month, r.timezone);
    if r.members.is_empty() {
        out += "No members yet. Add one with `hearth member add NAME`.\n";
    } else {
        let tokens = |t: &hearth_proto::control::UsageTotals| {
            format!("{} / {} / {}", t.input_tokens, t.cached_input_tokens, t.output_tokens)
        };
        let cap = |c: Option<f64>| c.map_or_else(|| "-".to_owned(), usd);
        let mut rows: Vec<Vec<String>> = r
            .members
            .iter()
            .map(|m| {
                let mut row =
                    vec![m.name.clone(), m.totals.calls.to_string(), tokens(&m.totals), usd(m.totals.cost_usd)];
                if current {
                    row.push(usd(m.today_usd));
                }
                row.extend([cap(m.daily_cap_usd), cap(m.monthly_cap_usd)]);
                row
            })
            .collect();
        let mut total = vec!["Total".to_owned(), r.total.calls.to_string(), tokens(&r.total), usd(r.total.cost_usd)];
        if current {
            total.push(usd(r.members.iter().map(|m| m.today_usd).sum()));
        }
        rows.push(total);
        let mut header = vec!["MEMBER", "CALLS", "TOKENS IN / CACHED / OUT", "COST"];
        if current {
            header.push("TODAY");
        }
        header.extend(["DAILY CAP", "MONTHLY CAP"]);
        out += &table::render(&header, &rows);
    }
    if !r.members.is_empty() {
        out += &render_split(r, current);
    }
    out.push('\n');
    out += &match r.household_monthly_cap_usd {
        Some(cap) => {
            let left = micros(cap).saturating_sub(micros(r.total.cost_usd));
            format!("Household cap: {} a month, {} left.\n", usd(cap), format_usd(left))
        }
        None => "No household cap (set one with `hearth household cap --monthly-usd 30`).\n".to_owned(),
    };
    out
}

/// What the spend paid for: chat (with the images shown), speech (minutes of audio heard) and
/// voice replies (characters spoken),
/// per member and for the household, this month and — for the current month — today.
fn render_split(r: &UsageReport, current: bool) -> String {
    let split = |t: &UsageTotals| {
        vec![
            format!("{} ({})", usd(t.chat_cost_usd), t.chat_calls),
            t.images.to_string(),
            format!("{} ({})", usd(t.speech_cost_usd), minutes(t.audio_seconds)),
            format!("{} ({} chars)", usd(t.voice_cost_usd), t.voice_chars),
        ]
    };
    let mut rows: Vec<Vec<String>> = r
        .members
        .iter()
        .map(|m| {
            let mut row = vec![m.name.clone()];
            row.extend(split(&m.totals));
            if current {
                row.extend(split(&m.today));
            }
            row
        })
        .collect();
    let mut total = vec!["Total".to_owned()];
    total.extend(split(&r.total));
    if current {
        total.extend(split(&r.today_total));
    }
    rows.push(total);
    let mut header = vec!["MEMBER", "CHAT (CALLS)", "IMAGES", "SPEECH (AUDIO)", "VOICE (SPOKEN)"];
    if current {
        header.extend(["TODAY: CHAT", "IMAGES", "SPEECH", "VOICE"]);
    }
    format!("\nWhat it paid for:\n\n{}", table::render(&header, &rows))
}

/// Audio seconds as people read them: "0 min", "0.5 min", "12 min".
fn minutes(seconds: u64) -> String {
    let tenths = (seconds * 10).div_ceil(60);
    if tenths.is_multiple_of(10) {
        format!("{} min", tenths / 10)
    } else {
        format!("{}.{} min", tenths / 10, tenths % 10)
    }
}

// ---------------------------------------------------------------------------------------------

/// A USD amount from the gateway's report, in micro-USD (negative or not-a-number as zero).
fn micros(usd: f64) -> u64 {
    if usd.is_finite() && usd > 0.0 { (usd * MICROS_PER_USD as f64).round() as u64 } else { 0 }
}

/// A USD amount for people: "$0.05", "$0.0042", "$2.50".
fn usd(amount: f64) -> String {
    format_usd(micros(amount))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_proto::control::MemberUsage;

    #[test]
    fn cap_values() {
        assert_eq!(cap_change("--daily-usd", None), Ok(CapChange::Keep));
        assert_eq!(cap_change("--daily-usd", Some("None")), Ok(CapChange::Remove));
        assert_eq!(cap_change("--daily-usd", Some("off")), Ok(CapChange::Remove));
        assert_eq!(cap_change("--daily-usd", Some("$1.50")), Ok(CapChange::Set { micros: 1_500_000 }));
        assert_eq!(cap_change("--daily-usd", Some("0")), Ok(CapChange::Set { micros: 0 }));
        let bad = cap_change("--daily-usd", Some("abc")).unwrap_err();
        assert_eq!(bad.exit, crate::failure::EXIT_INVALID_INPUT);
        assert!(bad.message.contains("--daily-usd") && bad.message.contains("0.05"), "{}", bad.message);
    }

    #[test]
    fn prices_per_million_tokens() {
        assert_eq!(per_mtok("--input-usd-per-mtok", "0.15"), Ok(150_000));
        assert_eq!(per_mtok("--input-usd-per-mtok", "$3"), Ok(3_000_000));
        assert_eq!(per_mtok("--input-usd-per-mtok", "0.075"), Ok(75_000));
        assert!(per_mtok("--input-usd-per-mtok", "-1").is_err());
        assert_eq!(usd(0.075), "$0.075");
        assert_eq!(usd(2.5), "$2.50");
        assert_eq!(usd(f64::NAN), "$0.00");
    }

    #[test]
    fn months_are_checked_here() {
        assert_eq!(checked_month(" 2026-03 "), Ok("2026-03".to_owned()));
        for bad in ["2026-13", "2026-3", "March", ""] {
            assert_eq!(checked_month(bad).unwrap_err().exit, crate::failure::EXIT_INVALID_INPUT, "{bad}");
        }
    }

    #[test]
    fn usage_screen() {
        let totals = |calls: u64, cost_usd: f64| UsageTotals {
            calls,
            input_tokens: calls * 300,
            cached_input_tokens: calls * 100,
            output_tokens: calls * 40,
            cost_usd,
            chat_calls: calls.saturating_sub(2),
            chat_cost_usd: cost_usd * 0.75,
            images: calls / 4,
            speech_calls: calls.min(2),
            audio_seconds: calls * 7,
            speech_cost_usd: cost_usd * 0.25,
            voice_calls: calls.min(1),
            voice_chars: calls * 40,
            voice_cost_usd: 0.0,
        };
        let report = UsageReport {
            month: "2026-11".into(),
            timezone: "Europe/Berlin".into(),
            members: vec![
                MemberUsage {
                    id: "rosa-abcd".into(),
                    name: "Rosa".into(),
                    totals: totals(12, 0.0421),
                    today_usd: 0.0042,
                    daily_cap_usd: Some(1.0),
                    monthly_cap_usd: Some(5.0),
                    today: totals(3, 0.0042),
                    days: vec![],
                },
                MemberUsage {
                    id: "leo-efgh".into(),
                    name: "Leo".into(),
                    totals: totals(0, 0.0),
                    today_usd: 0.0,
                    daily_cap_usd: None,
                    monthly_cap_usd: None,
                    today: UsageTotals::default(),
                    days: vec![],
                },
            ],
            total: totals(12, 0.0421),
            household_monthly_cap_usd: Some(30.0),
            per_day: vec![("2026-11-01".into(), 0.0421)],
            today_total: totals(3, 0.0042),
        };
        insta::assert_snapshot!(render_usage(&report, true));
        let past = render_usage(&report, false);
        assert!(!past.contains("TODAY"), "{past}");
        assert_eq!(
            (minutes(0), minutes(30), minutes(84), minutes(600), minutes(61)),
            ("0 min".to_owned(), "0.5 min".to_owned(), "1.4 min".to_owned(), "10 min".to_owned(), "1.1 min".to_owned())
        );
    }

    #[test]
    fn speech_prices_show_per_minute() {
        let row = PriceRow {
            model: "whisper-1".into(),
            input_usd_per_mtok: 0.0,
            output_usd_per_mtok: 0.0,
            cached_input_usd_per_mtok: 0.0,
            cache_write_usd_per_mtok: 0.0,
            source: "admin".into(),
            usd_per_minute: Some(0.006),
            no_vision: false,
            usd_per_million_chars: None,
        };
        let blind = PriceRow {
            model: "deepseek-chat".into(),
            input_usd_per_mtok: 0.28,
            output_usd_per_mtok: 0.42,
            cached_input_usd_per_mtok: 0.028,
            cache_write_usd_per_mtok: 0.35,
            source: "default (as of 2025-10)".into(),
            usd_per_minute: None,
            no_vision: true,
            usd_per_million_chars: None,
        };
        let table = price_table(&[row, blind]);
        assert!(table.contains("PER MINUTE"), "{table}");
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[1].starts_with("whisper-1") && lines[1].contains("$0.006") && lines[1].contains(" - "),
            "{table}"
        );
        assert!(lines[2].starts_with("deepseek-chat (no vision)") && lines[2].contains("$0.28"), "{table}");
    }

    #[test]
    fn voice_prices_show_per_million_characters() {
        let tts = PriceRow {
            model: "tts-1".into(),
            input_usd_per_mtok: 0.0,
            output_usd_per_mtok: 0.0,
            cached_input_usd_per_mtok: 0.0,
            cache_write_usd_per_mtok: 0.0,
            source: "default (as of 2025-11)".into(),
            usd_per_minute: None,
            no_vision: false,
            usd_per_million_chars: Some(15.0),
        };
        let table = price_table(&[tts]);
        assert!(table.contains("PER M CHARS"), "{table}");
        let line = table.lines().nth(1).unwrap();
        assert!(line.starts_with("tts-1") && line.contains("$15.00") && line.contains(" - "), "{table}");
    }
}
