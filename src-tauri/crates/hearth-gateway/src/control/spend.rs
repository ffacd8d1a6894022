//! The admin API for spend: prices, caps, admins, fallbacks, the household's zone, reports.
//! Every change is stored and audited, then applied: to the broker's spend state through its
//! setters, and to the roster in the core loop.

use std::collections::BTreeMap;

use chrono::{DateTime, Days, NaiveDate, Utc};
use chrono_tz::Tz;
use hearth_proto::control::{
    CapChange, CapsReport, ControlError, ControlReply, DayActivity, ErrorCode, MemberUsage, PriceRow, UsageReport,
    UsageTotals,
};

use super::{find, internal, stopping};
use crate::broker::speech::{self, SETTING_AUDIO_PRICE_PREFIX, SETTING_NO_VISION_PREFIX};
use crate::broker::spend::price::MAX_MICROS_PER_MINUTE;
use crate::broker::spend::{self, AudioPrice, PeriodKind, Price, PriceSource, VoicePrice, format_usd};
use crate::broker::{SETTING_HOUSEHOLD_CAP, SETTING_TIMEZONE};
use crate::core::{Change, Engine, MemberUpdate, Roster};
use crate::store::{self, MemberRow};

fn usd(micros: u64) -> f64 {
    micros as f64 / spend::MICROS_PER_USD as f64
}

/// Prices above this are surely a typo (USD 10,000 per million tokens).
const MAX_PRICE_MICROS: u64 = 10_000 * spend::MICROS_PER_USD;

fn apply(change: CapChange, current: Option<u64>) -> Option<u64> {
    match change {
        CapChange::Keep => current,
        CapChange::Remove => None,
        CapChange::Set { micros } => Some(micros),
    }
}

pub(super) fn missing_price_error(model: &str) -> ControlError {
    ControlError::new(
        ErrorCode::InvalidInput,
        format!(
            "the model {model} has no price, so a spending limit could not be kept. Set its price first: \
             hearth price set {model} --input-usd-per-mtok X --output-usd-per-mtok Y"
        ),
    )
}

/// Refuses a change that would give a capped member a model without a price.
pub(super) fn check_priced(e: &Engine, model: Option<&str>) -> Result<(), ControlError> {
    let model = match model {
        Some(m) => m.to_owned(),
        None => match e.broker.provider_summary() {
            Some(p) => p.model,
            None => return Ok(()), // no provider yet: checked again when one is set
        },
    };
    match e.broker.price_of(&model) {
        Some(_) => Ok(()),
        None => Err(missing_price_error(&model)),
    }
}

/// Refuses a cap while voice notes would go to a speech model without a per-minute price: the
/// cap could not be kept for them.
pub(super) fn check_speech_priced(e: &Engine) -> Result<(), ControlError> {
    match e.broker.speech_service().0 {
        Some(s) if e.broker.audio_price_of(&s.base_url, &s.model).is_none() => Err(ControlError::new(
            ErrorCode::InvalidInput,
            format!(
                "the speech model {m} has no price, so a spending limit could not be kept for voice messages. Set \
                 its price first: hearth price set {m} --usd-per-minute X (or turn speech off: hearth provider \
                 speech --off)",
                m = s.model
            ),
        )),
        _ => Ok(()),
    }
}

pub(super) fn any_caps(e: &Engine) -> bool {
    e.broker.spend(|s| s.budget.household_cap().is_some()) || e.members.read(Roster::any_member_caps)
}

/// Sets a model's token prices (`cached_input` already defaulted to the input price).
pub(super) async fn price_set(e: &Engine, mut price: store::StoredPrice) -> Result<ControlReply, ControlError> {
    let model = price.model.trim().to_owned();
    if model.is_empty() || model.chars().any(char::is_control) {
        return Err(ControlError::new(ErrorCode::InvalidInput, "name the model, e.g. gpt-4o-mini"));
    }
    price.model = model.clone();
    let (input, output, cached) = (price.input, price.output, price.cached_input);
    let write = price.cache_write.unwrap_or(0);
    if [input, output, cached, write].iter().any(|p| *p > MAX_PRICE_MICROS) {
        return Err(ControlError::new(
            ErrorCode::InvalidInput,
            "that price is over $10,000 per million tokens; prices are in USD per million tokens, e.g. 0.15",
        ));
    }
    let m = model.clone();
    let admin = e
        .store
        .call(move |c| {
            store::set_price(c, &price, store::now_unix())?;
            let write = price.cache_write.map_or_else(|| "default".to_owned(), |w| w.to_string());
            store::audit(
                c,
                "admin",
                "price_set",
                None,
                &format!("{m} in {input} out {output} cached {cached} cache write {write} micro-USD/Mtok"),
            )?;
            store::list_prices(c)
        })
        .await
        .map_err(internal)?;
    e.broker.set_admin_prices(&admin);
    Ok(ControlReply::Prices { prices: rows_for(e, &model) })
}

/// A model name as the admin typed it, checked.
pub(super) fn model_name(model: &str, example: &str) -> Result<String, ControlError> {
    let model = model.trim();
    if model.is_empty() || model.chars().any(char::is_control) || model.len() > 200 {
        return Err(ControlError::new(ErrorCode::InvalidInput, format!("name the model, e.g. {example}")));
    }
    Ok(model.to_owned())
}

/// Sets a speech model's price per minute of audio (stored among the settings, one per model).
pub(super) async fn speech_price_set(
    e: &Engine,
    model: String,
    micros_per_minute: u64,
) -> Result<ControlReply, ControlError> {
    let model = model_name(&model, "whisper-1")?;
    if micros_per_minute > MAX_MICROS_PER_MINUTE {
        return Err(ControlError::new(
            ErrorCode::InvalidInput,
            "that price is over $10 per minute of audio; speech recognition costs about $0.006 a minute",
        ));
    }
    let stored = SettingPrice {
        prefix: SETTING_AUDIO_PRICE_PREFIX,
        read: speech::stored_audio_prices,
        action: "speech_price_set",
        unit: "micro-USD/minute",
    };
    let admin = stored.set(e, &model, micros_per_minute).await?;
    e.broker.set_admin_audio_prices(&admin);
    Ok(ControlReply::Prices { prices: rows_for(e, &model) })
}

/// The admin's prices under one settings prefix: (model, micro-USD).
type StoredPrices = Result<Vec<(String, u64)>, store::StoreError>;

/// A per-quantity price the admin sets that is kept among the settings as `<prefix><model>` →
/// integer micro-USD (per audio minute, per million characters).
pub(super) struct SettingPrice {
    pub(super) prefix: &'static str,
    /// Every stored price under `prefix`.
    pub(super) read: fn(&rusqlite::Connection) -> StoredPrices,
    /// The audit row's action.
    pub(super) action: &'static str,
    /// The audit row's unit.
    pub(super) unit: &'static str,
}

impl SettingPrice {
    /// Stores `micros` for `model` — one entry per model whatever its spelling: a later price
    /// replaces an earlier one — with its audit row; returns every stored price.
    pub(super) async fn set(self, e: &Engine, model: &str, micros: u64) -> Result<Vec<(String, u64)>, ControlError> {
        let m = model.to_owned();
        e.store
            .call(move |c| {
                for (stored, _) in (self.read)(c)? {
                    if spend::price::same_model(&stored, &m) {
                        store::delete_setting(c, &format!("{}{stored}", self.prefix))?;
                    }
                }
                store::set_setting(c, &format!("{}{m}", self.prefix), &micros.to_string())?;
                store::audit(c, "admin", self.action, None, &format!("{m} {micros} {}", self.unit))?;
                (self.read)(c)
            })
            .await
            .map_err(internal)
    }
}

/// Marks a model as unable (or able) to see images.
pub(super) async fn model_vision(e: &Engine, model: String, vision: bool) -> Result<ControlReply, ControlError> {
    let model = model_name(&model, "gpt-3.5-turbo")?;
    let m = model.clone();
    let marked = e
        .store
        .call(move |c| {
            for stored in speech::stored_no_vision(c)? {
                if spend::price::same_model(&stored, &m) {
                    store::delete_setting(c, &format!("{SETTING_NO_VISION_PREFIX}{stored}"))?;
                }
            }
            if !vision {
                store::set_setting(c, &format!("{SETTING_NO_VISION_PREFIX}{m}"), "1")?;
            }
            store::audit(
                c,
                "admin",
                "model_vision",
                None,
                &format!("{m} {}", if vision { "sees" } else { "no vision" }),
            )?;
            speech::stored_no_vision(c)
        })
        .await
        .map_err(internal)?;
    e.broker.set_no_vision(marked);
    Ok(ControlReply::Prices { prices: rows_for(e, &model) })
}

/// The rate card's lines for one model, as `price list` shows them (for the reply to a change).
pub(super) fn rows_for(e: &Engine, model: &str) -> Vec<PriceRow> {
    let ControlReply::Prices { prices } = price_list(e) else { return Vec::new() };
    let found: Vec<PriceRow> = prices.into_iter().filter(|p| spend::price::same_model(&p.model, model)).collect();
    if found.is_empty() {
        // A vision mark on a model with no price yet: still say what was set.
        let no_vision = e.broker.spend(|s| !s.sees_images(model));
        return vec![PriceRow {
            model: model.to_owned(),
            input_usd_per_mtok: 0.0,
            output_usd_per_mtok: 0.0,
            cached_input_usd_per_mtok: 0.0,
            cache_write_usd_per_mtok: 0.0,
            source: "none (no price)".to_owned(),
            usd_per_minute: None,
            no_vision,
            usd_per_million_chars: None,
        }];
    }
    found
}

/// Every model's price — token prices, then per-minute prices of speech models, then
/// per-character prices of text-to-speech models — each model
/// once (the admin's entry if there is one), with its vision mark.
pub(super) fn price_list(e: &Engine) -> ControlReply {
    let prices = e.broker.spend(|s| {
        let mut seen = std::collections::HashSet::new();
        let mut rows: Vec<PriceRow> = s
            .rate_card
            .iter()
            .filter(|e| seen.insert(e.model.to_lowercase()))
            .map(|e| PriceRow { no_vision: !s.sees_images(&e.model), ..price_row(&e.model, &e.price, &e.source) })
            .collect();
        for e in &s.audio_rate_card {
            if seen.insert(e.model.to_lowercase()) {
                rows.push(audio_price_row(&e.model, &e.price, &e.source));
            } else if let Some(row) =
                rows.iter_mut().find(|r| r.model.eq_ignore_ascii_case(&e.model) && r.usd_per_minute.is_none())
            {
                // A model with token prices and a per-minute price: one line with both.
                row.usd_per_minute = Some(usd(e.price.micros_per_minute));
            }
        }
        for e in &s.voice_rate_card {
            if seen.insert(e.model.to_lowercase()) {
                rows.push(voice_price_row(&e.model, &e.price, &e.source));
            } else if let Some(row) =
                rows.iter_mut().find(|r| r.model.eq_ignore_ascii_case(&e.model) && r.usd_per_million_chars.is_none())
            {
                row.usd_per_million_chars = Some(usd(e.price.micros_per_mchar));
            }
        }
        // A model marked as blind that has no price yet is still listed, so the mark can be seen.
        for m in &s.no_vision {
            if seen.insert(m.to_lowercase()) {
                rows.push(PriceRow {
                    model: m.clone(),
                    input_usd_per_mtok: 0.0,
                    output_usd_per_mtok: 0.0,
                    cached_input_usd_per_mtok: 0.0,
                    cache_write_usd_per_mtok: 0.0,
                    source: "none (no price)".to_owned(),
                    usd_per_minute: None,
                    no_vision: true,
                    usd_per_million_chars: None,
                });
            }
        }
        rows
    });
    ControlReply::Prices { prices }
}

pub(super) async fn member_cap(
    e: &Engine,
    key: &str,
    daily: CapChange,
    monthly: CapChange,
) -> Result<ControlReply, ControlError> {
    let m = find(e, key).await?;
    let (daily, monthly) = (apply(daily, m.cap_daily_micros), apply(monthly, m.cap_monthly_micros));
    if daily.is_some() || monthly.is_some() {
        // The model the member's calls use: their own, else the household's.
        check_priced(e, m.model.as_deref())?;
        check_speech_priced(e)?;
    }
    let (id, name) = (m.id.clone(), m.name.clone());
    e.store
        .call(move |c| {
            store::set_member_caps(c, &id, daily, monthly)?;
            let show = |v: Option<u64>| v.map(format_usd).unwrap_or_else(|| "none".into());
            store::audit(
                c,
                "admin",
                "member_cap",
                Some(&id),
                &format!("{name}: daily {} monthly {}", show(daily), show(monthly)),
            )
        })
        .await
        .map_err(internal)?;
    e.broker.set_member_caps(&m.id, daily, monthly);
    e.change(Change::Member { member_id: m.id.clone(), update: MemberUpdate::Caps { daily, monthly } })
        .await
        .map_err(stopping)?;
    Ok(ControlReply::Caps(CapsReport {
        member: Some(m.name),
        daily_usd: daily.map(usd),
        monthly_usd: monthly.map(usd),
    }))
}

pub(super) async fn member_admin(e: &Engine, key: &str, admin: bool) -> Result<ControlReply, ControlError> {
    let m = find(e, key).await?;
    let id = m.id.clone();
    e.store
        .call(move |c| {
            store::set_member_admin(c, &id, admin)?;
            store::audit(c, "admin", if admin { "admin_granted" } else { "admin_revoked" }, Some(&id), "")
        })
        .await
        .map_err(internal)?;
    // The loop also re-checks whether a paired admin can be asked about caps.
    e.change(Change::Member { member_id: m.id.clone(), update: MemberUpdate::Admin(admin) }).await.map_err(stopping)?;
    Ok(ControlReply::Done)
}

pub(super) async fn member_fallback(
    e: &Engine,
    key: &str,
    model: Option<String>,
) -> Result<ControlReply, ControlError> {
    let m = find(e, key).await?;
    let model = model.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    if let Some(f) = &model {
        check_priced(e, Some(f))?;
    }
    let (id, f) = (m.id.clone(), model.clone());
    e.store
        .call(move |c| {
            store::set_member_fallback(c, &id, f.as_deref())?;
            store::audit(c, "admin", "member_fallback", Some(&id), f.as_deref().unwrap_or("none"))
        })
        .await
        .map_err(internal)?;
    e.broker.set_fallback(&m.id, model.clone());
    e.change(Change::Member { member_id: m.id.clone(), update: MemberUpdate::Fallback(model) })
        .await
        .map_err(stopping)?;
    Ok(ControlReply::Done)
}

pub(super) async fn household_cap(e: &Engine, monthly: CapChange) -> Result<ControlReply, ControlError> {
    let current = e.broker.spend(|s| s.budget.household_cap());
    let monthly = apply(monthly, current);
    if monthly.is_some() {
        // A household cap caps everyone: every model in use needs a price.
        check_priced(e, None)?;
        check_speech_priced(e)?;
        let own: Vec<String> = e.members.read(Roster::own_models);
        for model in own {
            check_priced(e, Some(&model))?;
        }
    }
    e.store
        .call(move |c| {
            match monthly {
                Some(v) => store::set_setting(c, SETTING_HOUSEHOLD_CAP, &v.to_string())?,
                None => {
                    c.execute("DELETE FROM settings WHERE key = ?1", [SETTING_HOUSEHOLD_CAP])?;
                }
            }
            store::audit(c, "admin", "household_cap", None, &monthly.map(format_usd).unwrap_or_else(|| "none".into()))
        })
        .await
        .map_err(internal)?;
    e.broker.set_household_cap(monthly);
    Ok(ControlReply::Caps(CapsReport { member: None, daily_usd: None, monthly_usd: monthly.map(usd) }))
}

pub(super) async fn household_timezone(e: &Engine, name: &str) -> Result<ControlReply, ControlError> {
    let tz = spend::period::parse_timezone(name).map_err(|e| ControlError::new(ErrorCode::InvalidInput, e))?;
    let canonical = tz.name().to_owned();
    let n = canonical.clone();
    e.store
        .call(move |c| {
            store::set_setting(c, SETTING_TIMEZONE, &n)?;
            store::audit(c, "admin", "household_timezone", None, &n)
        })
        .await
        .map_err(internal)?;
    e.broker.set_timezone(tz);
    Ok(ControlReply::Done)
}

pub(super) async fn usage(e: &Engine, month: Option<String>) -> Result<ControlReply, ControlError> {
    let now = Utc::now();
    let (tz, this_month, today) = e.broker.spend(|s| {
        let tz = s.budget.timezone();
        (
            tz,
            spend::period::period_at(PeriodKind::Month, tz, now).key,
            spend::period::period_at(PeriodKind::Day, tz, now).key,
        )
    });
    let month = match month {
        Some(m) => {
            let (y, mo) =
                spend::period::parse_month(m.trim()).map_err(|e| ControlError::new(ErrorCode::InvalidInput, e))?;
            spend::period::month_key(y, mo)
        }
        None => this_month.clone(),
    };
    let current = month == this_month;
    let (from, to) = activity_window(&month, current.then(|| now.with_timezone(&tz).date_naive()));
    let key = month.clone();
    let (totals, today_totals, per_day, rows, spent, times) = e
        .store
        .call(move |c| {
            let today_totals = if current { store::split_totals(c, &today, true)? } else { Vec::new() };
            // Local days are at most a day and a bit off UTC: read a margin, keep the window's days.
            let (t0, t1) = (from.and_time(Default::default()).and_utc().timestamp(), to.and_time(Default::default()).and_utc().timestamp());
            Ok((
                store::split_totals(c, &key, false)?,
                today_totals,
                store::month_per_day(c, &key)?,
                store::list_members(c)?,
                store::member_per_day(c, &spend::period::day_key(from), &spend::period::day_key(to))?,
                store::message_times(c, t0 - 2 * 86_400, t1 + 3 * 86_400)?,
            ))
        })
        .await
        .map_err(internal)?;
    let mut days = member_days(&spent, &times, tz, from, to);
    let mut members: Vec<MemberUsage> = Vec::new();
    let mut total = UsageTotals::default();
    let mut today_total = UsageTotals::default();
    let of = |list: &[(String, store::SplitTotals)], id: &str| {
        list.iter().find(|t| t.0 == id).map(|t| usage_totals(&t.1)).unwrap_or_default()
    };
    let mut push = |id: &str, name: String, row: Option<&MemberRow>| {
        let t = of(&totals, id);
        let day = of(&today_totals, id);
        add_totals(&mut total, &t);
        add_totals(&mut today_total, &day);
        let today = if current { e.broker.spend(|s| s.budget.standing(id, now).daily.spent_micros) } else { 0 };
        members.push(MemberUsage {
            id: id.to_owned(),
            name,
            totals: t,
            today_usd: usd(today),
            daily_cap_usd: row.and_then(|r| r.cap_daily_micros).map(usd),
            monthly_cap_usd: row.and_then(|r| r.cap_monthly_micros).map(usd),
            today: day,
            days: days.remove(id).unwrap_or_default(),
        });
    };
    for r in &rows {
        push(&r.id, r.name.clone(), Some(r));
    }
    // Spend by members since removed still counts towards the month.
    for t in &totals {
        if !rows.iter().any(|r| r.id == t.0) {
            push(&t.0, format!("{} (removed)", t.0), None);
        }
    }
    let household_monthly_cap_usd = e.broker.spend(|s| s.budget.household_cap()).map(usd);
    Ok(ControlReply::Usage(UsageReport {
        month,
        timezone: tz.name().to_owned(),
        members,
        total,
        household_monthly_cap_usd,
        per_day: per_day.into_iter().map(|(d, m)| (d, usd(m))).collect(),
        today_total,
    }))
}

/// The days the members' activity covers: the report's month, and for the current month (when
/// `today` is given) also the 30 days before today, so "the last 30 days" never stops at the 1st.
fn activity_window(month: &str, today: Option<NaiveDate>) -> (NaiveDate, NaiveDate) {
    let (y, m) = spend::period::parse_month(month).unwrap_or((1970, 1));
    let first = NaiveDate::from_ymd_opt(y, m, 1).unwrap_or_default();
    let last = first.checked_add_months(chrono::Months::new(1)).and_then(|d| d.pred_opt()).unwrap_or(first);
    match today.and_then(|t| t.checked_sub_days(Days::new(30))) {
        Some(back) if back < first => (back, last),
        _ => (first, last),
    }
}

/// Spend and message counts per member and local day over `[from, to]`, days with neither left
/// out. `spent` is `(member, day_key, micros)`; `times` are `(member, received_at)` in unix
/// seconds, counted on the household's calendar.
fn member_days(
    spent: &[(String, String, u64)],
    times: &[(String, i64)],
    tz: Tz,
    from: NaiveDate,
    to: NaiveDate,
) -> BTreeMap<String, Vec<DayActivity>> {
    type Days = BTreeMap<String, BTreeMap<String, DayActivity>>;
    fn day<'a>(by: &'a mut Days, member: &str, date: String) -> &'a mut DayActivity {
        by.entry(member.to_owned())
            .or_default()
            .entry(date.clone())
            .or_insert_with(|| DayActivity { date, ..Default::default() })
    }
    let mut by = Days::new();
    for (member, key, micros) in spent {
        day(&mut by, member, key.clone()).usd += usd(*micros);
    }
    for (member, at) in times {
        let Some(local) = DateTime::<Utc>::from_timestamp(*at, 0).map(|t| t.with_timezone(&tz).date_naive()) else {
            continue;
        };
        if (from..=to).contains(&local) {
            day(&mut by, member, spend::period::day_key(local)).messages += 1;
        }
    }
    by.into_iter().map(|(m, d)| (m, d.into_values().collect())).collect()
}

/// A period's totals as the report shows them, in USD.
fn usage_totals(t: &store::SplitTotals) -> UsageTotals {
    UsageTotals {
        calls: t.calls,
        input_tokens: t.input_tokens,
        cached_input_tokens: t.cached_input_tokens,
        output_tokens: t.output_tokens,
        cost_usd: usd(t.cost_micros),
        chat_calls: t.chat_calls,
        chat_cost_usd: usd(t.chat_cost_micros),
        images: t.images,
        speech_calls: t.speech_calls,
        audio_seconds: t.audio_seconds,
        speech_cost_usd: usd(t.speech_cost_micros),
        voice_calls: t.voice_calls,
        voice_chars: t.voice_chars,
        voice_cost_usd: usd(t.voice_cost_micros),
    }
}

fn add_totals(sum: &mut UsageTotals, t: &UsageTotals) {
    sum.calls += t.calls;
    sum.input_tokens += t.input_tokens;
    sum.cached_input_tokens += t.cached_input_tokens;
    sum.output_tokens += t.output_tokens;
    sum.cost_usd += t.cost_usd;
    sum.chat_calls += t.chat_calls;
    sum.chat_cost_usd += t.chat_cost_usd;
    sum.images += t.images;
    sum.speech_calls += t.speech_calls;
    sum.audio_seconds += t.audio_seconds;
    sum.speech_cost_usd += t.speech_cost_usd;
    sum.voice_calls += t.voice_calls;
    sum.voice_chars += t.voice_chars;
    sum.voice_cost_usd += t.voice_cost_usd;
}

pub(super) async fn usage_export(e: &Engine, month: &str) -> Result<ControlReply, ControlError> {
    let (y, mo) =
        spend::period::parse_month(month.trim()).map_err(|e| ControlError::new(ErrorCode::InvalidInput, e))?;
    let key = spend::period::month_key(y, mo);
    let rows = e.store.call(move |c| store::month_rows(c, &key)).await.map_err(internal)?;
    Ok(ControlReply::Csv { text: ledger_csv(&rows) })
}

fn source_text(source: &PriceSource) -> String {
    match source {
        PriceSource::Admin => "admin".to_owned(),
        PriceSource::Default { as_of } => format!("default (as of {as_of})"),
    }
}

fn price_row(model: &str, p: &Price, source: &PriceSource) -> PriceRow {
    let (input, output, cached, cache_write) = p.usd();
    PriceRow {
        model: model.to_owned(),
        input_usd_per_mtok: input,
        output_usd_per_mtok: output,
        cached_input_usd_per_mtok: cached,
        cache_write_usd_per_mtok: cache_write,
        source: source_text(source),
        usd_per_minute: None,
        no_vision: false,
        usd_per_million_chars: None,
    }
}

fn audio_price_row(model: &str, p: &AudioPrice, source: &PriceSource) -> PriceRow {
    PriceRow {
        model: model.to_owned(),
        input_usd_per_mtok: 0.0,
        output_usd_per_mtok: 0.0,
        cached_input_usd_per_mtok: 0.0,
        cache_write_usd_per_mtok: 0.0,
        source: source_text(source),
        usd_per_minute: Some(usd(p.micros_per_minute)),
        no_vision: false,
        usd_per_million_chars: None,
    }
}

fn voice_price_row(model: &str, p: &VoicePrice, source: &PriceSource) -> PriceRow {
    PriceRow {
        usd_per_minute: None,
        usd_per_million_chars: Some(usd(p.micros_per_mchar)),
        ..audio_price_row(model, &AudioPrice::ZERO, source)
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
}

/// The month's ledger as CSV (RFC 4180), one row per call, cost in USD.
pub(crate) fn ledger_csv(rows: &[store::LedgerExportRow]) -> String {
    let mut out = String::from(
        "id,time_utc,day,member_id,member,chat_id,provider,model,input_tokens,cached_input_tokens,output_tokens,cost_usd,latency_ms,attempts,outcome,kind,audio_seconds,images,characters\r\n",
    );
    for r in rows {
        let time = chrono::DateTime::from_timestamp(r.created_at, 0).map(|t| t.to_rfc3339()).unwrap_or_default();
        let fields = [
            r.id.to_string(),
            time,
            r.day_key.clone(),
            r.member_id.clone(),
            r.member_name.clone().unwrap_or_default(),
            r.chat_id.map(|c| c.to_string()).unwrap_or_default(),
            r.provider.clone(),
            r.model.clone(),
            r.input_tokens.to_string(),
            r.cached_input_tokens.to_string(),
            r.output_tokens.to_string(),
            format!("{:.6}", usd(r.cost_micros)),
            r.latency_ms.map(|l| l.to_string()).unwrap_or_default(),
            r.attempts.to_string(),
            r.outcome.clone(),
            r.kind.clone(),
            r.audio_seconds.to_string(),
            r.images.to_string(),
            r.characters.to_string(),
        ];
        out.push_str(&fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_activity_window_reaches_30_days_back_only_for_the_current_month() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        assert_eq!(activity_window("2026-03", None), (d(2026, 3, 1), d(2026, 3, 31)));
        assert_eq!(activity_window("2026-02", None), (d(2026, 2, 1), d(2026, 2, 28)));
        assert_eq!(activity_window("2026-12", Some(d(2026, 12, 8))), (d(2026, 11, 8), d(2026, 12, 31)));
        // Late in a long month the month itself already holds the last 30 days.
        assert_eq!(activity_window("2026-12", Some(d(2026, 12, 31))), (d(2026, 12, 1), d(2026, 12, 31)));
    }

    #[test]
    fn member_days_count_spend_and_messages_on_the_household_calendar() {
        let tz: Tz = "America/New_York".parse().unwrap();
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        let spent = vec![
            ("ana".to_owned(), "2026-12-01".to_owned(), 250_000),
            ("ana".to_owned(), "2026-12-03".to_owned(), 10_000),
            ("bo".to_owned(), "2026-12-03".to_owned(), 500_000),
        ];
        // 2026-12-02 03:00 UTC is still the 1st in New York; the other is the 3rd at noon.
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().timestamp();
        let times = vec![
            ("ana".to_owned(), at("2026-12-02T03:00:00Z")),
            ("ana".to_owned(), at("2026-12-03T17:00:00Z")),
            ("ana".to_owned(), at("2026-12-03T17:05:00Z")),
            ("bo".to_owned(), at("2026-11-30T12:00:00Z")), // before the window: not counted
        ];
        let days = member_days(&spent, &times, tz, d(2026, 12, 1), d(2026, 12, 31));
        let day = |date: &str, usd, messages| DayActivity { date: date.into(), usd, messages };
        assert_eq!(days["ana"], vec![day("2026-12-01", 0.25, 1), day("2026-12-03", 0.01, 2)]);
        assert_eq!(days["bo"], vec![day("2026-12-03", 0.5, 0)]);
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let row = store::LedgerExportRow {
            id: 1,
            created_at: 0,
            day_key: "2026-11-21".into(),
            member_id: "ana-x".into(),
            member_name: Some("Ana \"the\" Great, Jr".into()),
            chat_id: Some(5),
            provider: "openai".into(),
            model: "gpt-4o-mini".into(),
            input_tokens: 10,
            cached_input_tokens: 2,
            output_tokens: 3,
            cost_micros: 1234,
            latency_ms: Some(800),
            attempts: 1,
            outcome: "ok".into(),
            kind: "chat".into(),
            audio_seconds: 0,
            images: 1,
            characters: 0,
        };
        let csv = ledger_csv(&[row]);
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert!(lines[0].starts_with("id,time_utc,day,member_id,member,"));
        assert_eq!(
            lines[1],
            "1,1970-01-01T00:00:00+00:00,2026-11-21,ana-x,\"Ana \"\"the\"\" Great, Jr\",5,openai,gpt-4o-mini,10,2,3,0.001234,800,1,ok,chat,0,1,0"
        );
    }
}
