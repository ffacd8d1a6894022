//! Who is in the household: adding and removing members, pairing codes, checking and replacing
//! a member's bot token, and exporting a member's data. Every change is stored and audited,
//! then applied in the core loop ([`Change`]) and announced to subscribers.

use std::path::Path;

use hearth_proto::control::{
    BotIdentity, ControlError, ControlReply, ErrorCode, GatewayEvent, MemberAdded, MemberSummary, PairCode, Role,
};

use super::{find, internal, rfc3339, stopping, summary, token_error, validate_name};
use crate::core::{Change, Engine, MemberUpdate};
use crate::routing::pairing;
use crate::secrets;
use crate::store::{self, MemberRow};
use crate::telegram;

pub(super) async fn add(e: &Engine, name: String, bot_token: String, role: Role) -> Result<MemberAdded, ControlError> {
    let name = validate_name(&name)?;
    let token = bot_token.trim().to_owned();
    let n = name.clone();
    if e.store.call(move |c| store::name_taken(c, &n)).await.map_err(internal)? {
        return Err(ControlError::new(ErrorCode::Conflict, format!("there is already a member called {name}")));
    }
    let me = telegram::validate_token(&e.http, &e.api_url, &token).await.map_err(token_error)?;
    let bot_id = me.user.id.0 as i64;
    if let Some(owner) = e.store.call(move |c| store::member_id_for_bot(c, bot_id)).await.map_err(internal)? {
        return Err(ControlError::new(
            ErrorCode::Conflict,
            format!(
                "this bot already belongs to member {owner}; each member needs a bot of their own (BotFather: /newbot)"
            ),
        ));
    }
    if let Some(household) = household_conflict(e, bot_id).await? {
        return Err(household);
    }
    let mut row = MemberRow {
        seq: 0,
        id: new_member_id(&name),
        name: name.clone(),
        persona: String::new(),
        telegram_user_id: None,
        chat_id: None,
        created_at: store::now_unix(),
        bot_id,
        bot_username: me.username().to_owned(),
        next_offset: 0,
        is_admin: false,
        cap_daily_micros: None,
        cap_monthly_micros: None,
        fallback_model: None,
        role,
        paused: false,
        paused_until: None,
        model: None,
        quiet_hours: None,
        voice_replies: Default::default(),
        streaming: true,
        alerts: Default::default(),
    };
    // The owner is set when their first worker starts (at account level, to their account).
    // With the supervisor, `members/` is root's: the supervisor makes the directory then.
    if e.workers.supervisor().is_none() {
        hearth_isolation::dirs::prepare_member_dir(e.dir.root(), &row.id, None).map_err(internal)?;
    }
    // The token is saved first: if the database write then fails, the orphan secret is
    // removed again and nothing refers to it.
    let key = secrets::bot_token_key(&row.id);
    e.secrets.set(&key, &token).map_err(internal)?;
    let code = pairing::new_code();
    let (r, c2) = (row.clone(), code.clone());
    let stored = e
        .store
        .call(move |c| {
            let seq = store::insert_member(c, &r)?;
            store::insert_pairing(c, &r.id, &c2, store::now_unix(), pairing::CODE_TTL_SECS)?;
            let detail = format!("{} with @{} ({})", r.name, r.bot_username, r.role.as_str());
            store::audit(c, "admin", "member_added", Some(&r.id), &detail)?;
            Ok(seq)
        })
        .await;
    match stored {
        Ok(seq) => row.seq = seq,
        Err(err) => {
            let _ = e.secrets.remove(&key);
            return Err(internal(err));
        }
    }
    // The role's defaults (caps, a child's quiet hours); a failure here leaves them off.
    let row = match super::assistant::apply_role_preset(e, row.clone(), None).await {
        Ok(r) => r,
        Err(err) => {
            tracing::error!(member = %row.id, error = %err.message, "the role's defaults could not be applied");
            row
        }
    };
    // Into the roster, and the bot polls: in that order, in the core loop.
    e.change(Change::Added(row.clone())).await.map_err(stopping)?;
    e.emit(GatewayEvent::Changed);
    tracing::info!(member = %row.id, bot = %row.bot_username, "member added");
    Ok(MemberAdded {
        pair_link: pairing::deep_link(&row.bot_username, &code),
        id: row.id,
        name: row.name,
        bot_username: row.bot_username,
        pair_code: code,
    })
}

pub(super) async fn list(e: &Engine) -> Result<ControlReply, ControlError> {
    let rows = e.store.call(|c| store::list_members(c)).await.map_err(internal)?;
    Ok(ControlReply::Members { members: rows.into_iter().map(summary).collect() })
}

pub(super) async fn remove(e: &Engine, key: &str) -> Result<ControlReply, ControlError> {
    let m = find(e, key).await?;
    e.change(Change::StopBot { member_id: m.id.clone() }).await.map_err(stopping)?;
    e.workers.stop_and_wait(&m.id, std::time::Duration::from_secs(5)).await;
    let id = m.id.clone();
    let name = m.name.clone();
    e.store
        .call(move |c| {
            store::delete_member(c, &id)?;
            store::audit(c, "admin", "member_removed", Some(&id), &name)
        })
        .await
        .map_err(internal)?;
    e.broker.forget_member(&m.id);
    e.change(Change::Removed { member_id: m.id.clone() }).await.map_err(stopping)?;
    e.secrets.remove(&secrets::bot_token_key(&m.id)).map_err(internal)?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    if let Some(supervisor) = e.workers.supervisor() {
        // The supervisor archives the directory (handing it to this user) and then deletes the
        // account, in that order, so a later account that reuses the uid finds nothing.
        let data_dir = std::fs::canonicalize(e.dir.root()).unwrap_or_else(|_| e.dir.root().to_owned());
        let removed = async {
            hearth_isolation::SupervisorClient::connect(supervisor).await?.remove(&m.id, &data_dir, &stamp).await
        }
        .await;
        match removed {
            Ok(r) => {
                tracing::info!(member = %m.id, archive = ?r.archived_to, account_removed = r.account_removed, "member removed")
            }
            Err(err) => {
                tracing::error!(member = %m.id, error = %err, "member removed, but the supervisor could not archive their directory or delete their account")
            }
        }
        return Ok(ControlReply::Done);
    }
    match hearth_isolation::dirs::archive_member_dir(e.dir.root(), &m.id, &stamp) {
        Ok(Some(to)) => tracing::info!(member = %m.id, archive = %to.display(), "member removed; data archived"),
        Ok(None) => tracing::info!(member = %m.id, "member removed"),
        Err(err) => {
            tracing::error!(member = %m.id, error = %err, "member removed but their directory could not be archived")
        }
    }
    // The account goes last, after its files are archived and owned by the gateway, so a
    // later account that reuses the uid finds nothing.
    if hearth_isolation::accounts::can_manage_accounts() {
        let id = m.id.clone();
        match tokio::task::spawn_blocking(move || hearth_isolation::accounts::remove_account(&id)).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::error!(member = %m.id, error = %err, "the member's OS account could not be removed")
            }
            Err(err) => tracing::error!(member = %m.id, error = %err, "removing the member's OS account failed"),
        }
    }
    Ok(ControlReply::Done)
}

pub(super) async fn pair(e: &Engine, key: &str) -> Result<PairCode, ControlError> {
    let m = find(e, key).await?;
    let code = pairing::new_code();
    let (id, c2) = (m.id.clone(), code.clone());
    let now = store::now_unix();
    e.store
        .call(move |c| {
            store::insert_pairing(c, &id, &c2, now, pairing::CODE_TTL_SECS)?;
            store::audit(c, "admin", "pair_code_issued", Some(&id), "")
        })
        .await
        .map_err(internal)?;
    Ok(PairCode {
        pair_link: pairing::deep_link(&m.bot_username, &code),
        member_id: m.id,
        name: m.name,
        bot_username: m.bot_username,
        pair_code: code,
        expires_at: rfc3339(now + pairing::CODE_TTL_SECS),
    })
}

/// Checks a pasted token with Telegram; stores nothing.
pub(super) async fn bot_check(e: &Engine, token: &str) -> Result<BotIdentity, ControlError> {
    let me = telegram::validate_token(&e.http, &e.api_url, token).await.map_err(token_error)?;
    let bot_id = me.user.id.0 as i64;
    if let Some(owner) = bot_owner(e, bot_id, None).await? {
        return Err(owner);
    }
    Ok(BotIdentity { bot_username: me.username().to_owned(), bot_name: me.user.first_name.clone() })
}

/// A `Conflict` naming the member who already has this bot, unless it is `except`.
async fn bot_owner(e: &Engine, bot_id: i64, except: Option<&str>) -> Result<Option<ControlError>, ControlError> {
    if let Some(household) = household_conflict(e, bot_id).await? {
        return Ok(Some(household));
    }
    let owner = e.store.call(move |c| store::member_id_for_bot(c, bot_id)).await.map_err(internal)?;
    let Some(owner) = owner.filter(|o| Some(o.as_str()) != except) else { return Ok(None) };
    let name = e.members.read(|r| r.name(&owner)).unwrap_or(owner);
    Ok(Some(ControlError::new(
        ErrorCode::Conflict,
        format!("this bot already belongs to {name}; each member needs a bot of their own (in @BotFather: /newbot)"),
    )))
}

/// Gives a member a new bot token: checked first (nothing changes if it fails), then the old
/// poll loop stops, the token and bot are stored, and polling starts again. The pairing stays.
pub(super) async fn replace_token(e: &Engine, key: &str, token: &str) -> Result<MemberSummary, ControlError> {
    let m = find(e, key).await?;
    let token = token.trim().to_owned();
    let me = telegram::validate_token(&e.http, &e.api_url, &token).await.map_err(token_error)?;
    let bot_id = me.user.id.0 as i64;
    if let Some(owner) = bot_owner(e, bot_id, Some(&m.id)).await? {
        return Err(owner);
    }
    let username = me.username().to_owned();
    let secret = secrets::bot_token_key(&m.id);
    let old_token = e.secrets.get(&secret);
    // Stop the old poll loop before anything else polls.
    e.change(Change::StopBot { member_id: m.id.clone() }).await.map_err(stopping)?;
    let restart = || e.change(Change::StartBot { member_id: m.id.clone() });
    if let Err(err) = e.secrets.set(&secret, &token) {
        let _ = restart().await;
        return Err(internal(err));
    }
    let (id, u) = (m.id.clone(), username.clone());
    let detail = format!("{}: @{} → @{username}", m.name, m.bot_username);
    let stored = e
        .store
        .call(move |c| {
            store::replace_bot(c, &id, bot_id, &u)?;
            store::audit(c, "admin", "bot_token_replaced", Some(&id), &detail)?;
            store::find_member(c, &id)
        })
        .await;
    let row = match stored {
        Ok(Some(row)) => row,
        other => {
            // Put things back as they were.
            if let Some(old) = old_token {
                let _ = e.secrets.set(&secret, &old);
            }
            let _ = restart().await;
            return Err(match other {
                Err(err) => internal(err),
                _ => ControlError::new(ErrorCode::NotFound, format!("{} was removed meanwhile", m.name)),
            });
        }
    };
    let update =
        MemberUpdate::Bot { bot_id: row.bot_id, bot_username: row.bot_username.clone(), next_offset: row.next_offset };
    e.change(Change::Member { member_id: m.id.clone(), update }).await.map_err(stopping)?;
    restart().await.map_err(stopping)?;
    tracing::info!(member = %m.id, bot = %username, "bot token replaced");
    e.emit(GatewayEvent::Changed);
    Ok(summary(row))
}

/// Writes a copy of the member's data into a new folder inside `dest_dir`.
pub(super) async fn export(e: &Engine, key: &str, dest_dir: &str) -> Result<ControlReply, ControlError> {
    let m = find(e, key).await?;
    let dest = Path::new(dest_dir.trim()).to_owned();
    if !dest.is_absolute() {
        return Err(ControlError::new(
            ErrorCode::InvalidInput,
            format!("{dest_dir:?} is not a full path; choose a folder such as /home/you/Documents"),
        ));
    }
    if !dest.is_dir() {
        return Err(ControlError::new(
            ErrorCode::InvalidInput,
            format!("there is no folder {}; create it first or choose another", dest.display()),
        ));
    }
    let (data, id, name) = (e.dir.root().to_owned(), m.id.clone(), m.name.clone());
    // As root, the member's folder is read by a reader running as their account: the worker
    // binary (`hearth`) is that reader too.
    let exe = crate::household::tree::ReaderExe::Path(e.config.worker_exe.clone());
    let done = tokio::task::spawn_blocking(move || {
        crate::household::export::export_member(&data, &id, &dest, &name, &chrono::Local::now(), &exe)
    })
    .await
    .map_err(internal)?;
    let done = match done {
        Ok(done) => done,
        Err(crate::household::export::ExportError::Nothing) => {
            return Err(ControlError::new(
                ErrorCode::NotFound,
                format!("{} has nothing to export yet: their assistant has not stored anything", m.name),
            ));
        }
        Err(err @ crate::household::export::ExportError::Read { .. }) if e.workers.supervisor().is_some() => {
            return Err(ControlError::new(
                ErrorCode::Internal,
                format!(
                    "{err}. {}'s files belong to their own OS account, which this gateway cannot read; run the \
                     export as root, or copy members/{} from the data directory as root",
                    m.name, m.id
                ),
            ));
        }
        Err(err) => return Err(ControlError::new(ErrorCode::Internal, format!("{err}; nothing else was changed"))),
    };
    if !done.skipped.is_empty() {
        tracing::warn!(member = %m.id, skipped = ?done.skipped, "left links and special files out of the export");
    }
    let path = done.path.display().to_string();
    let (id, detail) = (m.id.clone(), format!("{}: {} files to {path}", m.name, done.files));
    e.store.call(move |c| store::audit(c, "admin", "member_exported", Some(&id), &detail)).await.map_err(internal)?;
    Ok(ControlReply::Exported { path })
}

/// A readable, unique, path-safe id: the name's ASCII letters and digits, a dash, and four
/// random characters (so a later member with the same name never inherits an old path).
/// A member's bot may not be the household bot: one poller per token, and the household bot
/// is no one's private assistant.
async fn household_conflict(e: &Engine, bot_id: i64) -> Result<Option<ControlError>, ControlError> {
    let household = e.store.call(|c| store::household_bot(c)).await.map_err(internal)?;
    Ok(household.filter(|h| h.bot_id == bot_id).map(|_| {
        ControlError::new(
            ErrorCode::Conflict,
            "this is the household bot; each member needs a bot of their own (in @BotFather: /newbot)",
        )
    }))
}

fn new_member_id(name: &str) -> String {
    let mut slug: String = name
        .chars()
        .filter_map(|c| {
            let c = c.to_ascii_lowercase();
            (c.is_ascii_lowercase() || c.is_ascii_digit()).then_some(c)
        })
        .take(16)
        .collect();
    if slug.is_empty() {
        slug.push('m');
    }
    let alphabet = b"abcdefghjkmnpqrstuvwxyz23456789";
    let suffix: String = (0..4).map(|_| alphabet[rand::random_range(0..alphabet.len())] as char).collect();
    format!("{slug}-{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_ids_are_path_safe_and_unique() {
        for name in ["Ana", "Jean-Luc Picard", "Ömer", "李雷", "../../etc", "  "] {
            let id = new_member_id(name);
            assert!(hearth_isolation::dirs::is_safe_member_id(&id), "{name:?} -> {id}");
        }
        assert_ne!(new_member_id("Ana"), new_member_id("Ana"));
        assert!(new_member_id("Ana").starts_with("ana-"));
    }
}
