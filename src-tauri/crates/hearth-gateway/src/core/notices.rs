//! What the gateway tells people about spend, and the admin's answers: a heads-up at 80 % of a
//! cap, a question to the admin (with +$1 / +$5 / "Leave it" buttons) when a cap refuses a call,
//! and what a button press does. Each notice goes out once per cap and period; the `notices` and
//! `approvals` tables remember across restarts.

use hearth_proto::control::GatewayEvent;

use super::{Core, Engine};
use crate::broker::spend::text as spend_text;
use crate::broker::spend::{CapKind, PeriodKind, format_usd};
use crate::broker::{self, SpendEvent};
use crate::store::{self, InboxRow, MemberRow};
use crate::telegram;

impl Core {
    /// Heads-ups at 80 %, and questions to the admin when a cap refuses a call.
    pub(super) fn on_spend(&mut self, event: SpendEvent) {
        match &event {
            SpendEvent::Crossing { member_id, crossing } if crossing.percent >= 100 => {
                self.cap_reached(member_id, crossing.kind, &crossing.period_key);
            }
            SpendEvent::CapHit { member_id, hit } => self.cap_reached(member_id, hit.kind, &hit.period_key),
            _ => {}
        }
        let engine = self.engine.clone();
        self.engine.tracker.spawn(async move {
            match event {
                SpendEvent::Crossing { member_id, crossing } => {
                    if crossing.percent != 80 {
                        return;
                    }
                    let (mid, kind, key) = (member_id.clone(), crossing.kind.as_str(), crossing.period_key.clone());
                    let new = engine
                        .store
                        .call(move |c| store::insert_notice(c, &mid, kind, &key, 80))
                        .await
                        .unwrap_or(false);
                    if !new {
                        return;
                    }
                    let text = engine.broker.spend(|s| {
                        let tz = s.budget.timezone();
                        let now = chrono::Utc::now();
                        let resets = match crossing.kind {
                            CapKind::MemberDaily => s.budget.standing(&member_id, now).daily.resets_at,
                            CapKind::MemberMonthly => s.budget.standing(&member_id, now).monthly.resets_at,
                            CapKind::HouseholdMonthly => s.budget.household_standing(now).resets_at,
                        };
                        spend_text::heads_up(crossing.kind, crossing.spent_micros, crossing.limit_micros, resets, tz)
                    });
                    if crossing.kind == CapKind::HouseholdMonthly {
                        for admin in engine.admins() {
                            engine.send_to_member(&admin.id, text.clone());
                        }
                    } else {
                        engine.send_to_member(&member_id, text);
                    }
                }
                SpendEvent::Settled { .. } => {}
                SpendEvent::CapHit { member_id, hit } => {
                    let (mid, kind, key) = (member_id.clone(), hit.kind.as_str(), hit.period_key.clone());
                    let opened = engine.store.call(move |c| store::open_approval(c, &mid, kind, &key)).await;
                    let Ok(Some(approval)) = opened else { return };
                    let name = engine.members.read(|r| r.name(&member_id)).unwrap_or_default();
                    let question = spend_text::admin_question(&name, hit.kind, hit.limit_micros);
                    for admin in engine.admins() {
                        let (Some(chat), Some(bot)) = (admin.chat_id, engine.bot_for(&admin.id)) else { continue };
                        let buttons = vec![
                            telegram::Button {
                                label: "+$1".into(),
                                data: spend_text::button_data(approval, 1_000_000),
                            },
                            telegram::Button {
                                label: "+$5".into(),
                                data: spend_text::button_data(approval, 5_000_000),
                            },
                            telegram::Button { label: "Leave it".into(), data: spend_text::button_data(approval, 0) },
                        ];
                        if let Err(e) = telegram::send_with_buttons(&bot, chat, &question, buttons).await {
                            tracing::warn!(admin = %admin.id, error = %e, "could not ask the admin");
                        }
                    }
                }
            }
        });
    }

    /// Tells subscribers that a member (or the household) reached a cap: once per cap and period,
    /// whether it was reached by a settled call or found by a refused one.
    fn cap_reached(&mut self, member_id: &str, kind: CapKind, period_key: &str) {
        let household = kind == CapKind::HouseholdMonthly;
        let scope = (!household).then(|| member_id.to_owned());
        if self.caps_reached.len() > 1024 {
            // Old periods; at worst one cap is reported a second time.
            self.caps_reached.clear();
        }
        if !self.caps_reached.insert((scope.clone(), kind, period_key.to_owned())) {
            return;
        }
        let name = if household {
            "The household".to_owned()
        } else {
            self.members.read(|r| r.name(member_id)).unwrap_or_default()
        };
        let period = match kind.period_kind() {
            PeriodKind::Day => "day",
            PeriodKind::Month => "month",
        };
        self.engine.emit(GatewayEvent::CapReached { member_id: scope, name, period: period.to_owned() });
    }
}

/// Raises a member's cap for one period by `extra` micro-USD — what the +$1 / +$5 buttons and
/// `/allow` (`phone.rs`) do: the broker's budget at once, the grant and its audit row stored
/// (`by`: who, e.g. `telegram:<user id>`), and the member told.
pub(super) async fn raise_cap(engine: &Engine, member_id: &str, kind: CapKind, period_key: &str, extra: u64, by: &str) {
    engine.broker.grant(member_id, kind, period_key, extra);
    let (mid, k, key, b) = (member_id.to_owned(), kind.as_str(), period_key.to_owned(), by.to_owned());
    let stored = engine
        .store
        .call(move |c| {
            store::insert_grant(c, &mid, k, &key, extra, &b)?;
            store::audit(c, &b, "cap_raised", Some(&mid), &format!("{k} {key} +{extra} micro-USD"))
        })
        .await;
    if let Err(e) = stored {
        tracing::error!(error = %e, "a cap raise could not be stored; it holds until restart");
    }
    engine.send_to_member(member_id, spend_text::member_raised(kind, extra));
}

/// An admin tapped +$1, +$5 or "Leave it" under a cap question: the grant (for that period only)
/// goes to the broker and the store, audited, and the question is closed.
pub(super) fn button(engine: &Engine, presser: &MemberRow, row: InboxRow, data: String) {
    let engine = engine.clone();
    let presser = presser.clone();
    engine.tracker.clone().spawn(async move {
        let bot = engine.bot_for(&presser.id);
        let callback = row.msg.callback_id.clone().unwrap_or_default();
        let answer = async |text: &str| {
            if let Some(bot) = &bot {
                telegram::answer_callback(bot, &callback, Some(text)).await;
            }
        };
        let parsed = spend_text::parse_button(&data);
        let Some((approval_id, extra)) = parsed.filter(|_| presser.is_admin) else {
            answer("Only an admin can answer this.").await;
            engine.finish_rows(vec![row.id], "done", "button_refused");
            return;
        };
        let resolution = if extra > 0 { format!("raised:{extra}") } else { "ignored".to_owned() };
        let resolved = engine.store.call(move |c| store::resolve_approval(c, approval_id, &resolution)).await;
        match resolved {
            Ok(Some(a)) if a.resolution.is_none() => {
                let kind = broker::parse_cap_kind(&a.kind).unwrap_or(CapKind::MemberDaily);
                let name = engine.members.read(|r| r.name(&a.member_id)).unwrap_or_default();
                let by = format!("telegram:{}", row.msg.from_id);
                if extra > 0 {
                    raise_cap(&engine, &a.member_id, kind, &a.period_key, extra, &by).await;
                    answer(&format!("Raised by {}", format_usd(extra))).await;
                } else {
                    let mid = a.member_id.clone();
                    let _ =
                        engine.store.call(move |c| store::audit(c, &by, "cap_raise_declined", Some(&mid), "")).await;
                    answer("Left as it is").await;
                }
                if let (Some(bot), Some(message_id)) = (&bot, row.msg.message_id) {
                    let text = spend_text::admin_answered(&name, kind, (extra > 0).then_some(extra));
                    telegram::close_question(bot, row.msg.chat_id, message_id as i32, &text).await;
                }
            }
            Ok(Some(_)) => answer("This was already answered.").await,
            Ok(None) => answer("That question is no longer open.").await,
            Err(e) => {
                tracing::error!(error = %e, "could not record the answer");
                answer("Something went wrong; please try again.").await;
            }
        }
        engine.finish_rows(vec![row.id], "done", "button");
    });
}
