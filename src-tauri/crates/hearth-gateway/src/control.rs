//! The admin API. [`Gateway::control`] is the one entry point: the Tauri shell calls it
//! in-process, the CLI reaches it over `run/control.sock` — a socket only the gateway's own user
//! (or root) may open, checked again on every connection with the kernel-reported peer uid.
//!
//! The gateway is the only writer of `gateway.sqlite`; every admin change goes through here and
//! leaves an audit row.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use hearth_proto::control::{
    ControlEnvelope, ControlError, ControlReply, ControlRequest, ErrorCode, GatewayEvent, MemberAdded, MemberSummary,
    PairCode, ProviderKind, ProviderSummary, Role,
};
use hearth_proto::frame::{self, FrameError};
use hearth_proto::PROTOCOL_VERSION;
use tokio::net::{UnixListener, UnixStream};

use crate::gateway::{Event, Gateway, SETTING_PROVIDER_KIND, SETTING_PROVIDER_MODEL, SETTING_PROVIDER_URL};
use crate::pairing;
use crate::secrets;
use crate::store::{self, MemberRow};
use crate::telegram::{self, TokenError};

pub(crate) fn internal(e: impl std::fmt::Display) -> ControlError {
    ControlError::new(ErrorCode::Internal, e.to_string())
}

impl Gateway {
    /// Handles one admin request.
    pub async fn control(&self, request: ControlRequest) -> Result<ControlReply, ControlError> {
        tracing::debug!(?request, "admin request");
        match request {
            ControlRequest::ProviderSet { kind, base_url, model, api_key } => self.provider_set(kind, base_url, model, api_key).await,
            ControlRequest::ProviderTest { kind, base_url, model, api_key } => {
                self.provider_test(kind, base_url, model, api_key).await.map(ControlReply::ProviderTested)
            }
            ControlRequest::ProviderDetect => Ok(ControlReply::LocalProviders { found: self.provider_detect().await }),
            ControlRequest::BotCheck { bot_token } => self.bot_check(&bot_token).await.map(ControlReply::BotChecked),
            ControlRequest::MemberAdd { name, bot_token, role } => {
                self.member_add(name, bot_token, role).await.map(ControlReply::MemberAdded)
            }
            ControlRequest::MemberUpdate { member, role, persona, model } => {
                self.member_update(&member, role, persona, model).await.map(ControlReply::Member)
            }
            ControlRequest::MemberPause { member, paused } => self.member_pause(member.as_deref(), paused).await,
            ControlRequest::MemberToken { member, bot_token } => {
                self.member_token(&member, &bot_token).await.map(ControlReply::Member)
            }
            ControlRequest::MemberExport { member, dest_dir } => self.member_export(&member, &dest_dir).await,
            ControlRequest::TurnCap { cap } => self.turn_cap(cap).await,
            ControlRequest::MemberList => self.member_list().await,
            ControlRequest::MemberRemove { member } => self.member_remove(&member).await,
            ControlRequest::MemberPair { member } => self.member_pair(&member).await.map(ControlReply::PairCode),
            ControlRequest::Status => self.status().await.map(ControlReply::Status).map_err(internal),
            ControlRequest::PriceSet { model, input_micros_per_mtok, output_micros_per_mtok, cached_input_micros_per_mtok } => {
                self.price_set(model, input_micros_per_mtok, output_micros_per_mtok, cached_input_micros_per_mtok).await
            }
            ControlRequest::PriceList => Ok(self.price_list()),
            ControlRequest::MemberCap { member, daily, monthly } => self.member_cap(&member, daily, monthly).await,
            ControlRequest::MemberAdmin { member, admin } => self.member_admin(&member, admin).await,
            ControlRequest::MemberFallback { member, model } => self.member_fallback(&member, model).await,
            ControlRequest::MemberQuietHours { member, quiet_hours } => {
                self.member_quiet_hours(&member, quiet_hours).await.map(ControlReply::Member)
            }
            ControlRequest::HouseholdIdleReset { hours } => self.household_idle_reset(hours).await,
            ControlRequest::HouseholdDiskQuota { mb } => self.household_disk_quota(mb).await,
            ControlRequest::HouseholdCap { monthly } => self.household_cap(monthly).await,
            ControlRequest::HouseholdTimezone { timezone } => self.household_timezone(&timezone).await,
            ControlRequest::Usage { month } => self.usage(month).await,
            ControlRequest::UsageExport { month } => self.usage_export(&month).await,
            ControlRequest::Doctor => {
                let gw = self.clone();
                tokio::task::spawn_blocking(move || gw.doctor()).await.map(ControlReply::Doctor).map_err(internal)
            }
            ControlRequest::BackupCreate { dest_dir, include_secrets } => self.backup_create(&dest_dir, include_secrets).await,
            ControlRequest::BackupSchedule { dest_dir, every_hours } => self.backup_schedule(dest_dir, every_hours).await,
        }
    }

    async fn provider_set(&self, kind: ProviderKind, base_url: String, model: String, api_key: String) -> Result<ControlReply, ControlError> {
        let (base_url, model, api_key) = crate::control_provider::checked_settings(&base_url, &model, &api_key)?;
        if self.any_caps() {
            let priced = self.inner.broker.with_spend(|s| crate::broker::price_for(&s.rate_card, &base_url, &model).is_some());
            if !priced {
                return Err(self.missing_price_error(&model));
            }
        }
        self.inner.secrets.set(secrets::PROVIDER_KEY, &api_key).map_err(internal)?;
        let (u, m) = (base_url.clone(), model.clone());
        self.inner
            .store
            .call(move |c| {
                store::set_setting(c, SETTING_PROVIDER_KIND, kind.as_str())?;
                store::set_setting(c, SETTING_PROVIDER_URL, &u)?;
                store::set_setting(c, SETTING_PROVIDER_MODEL, &m)?;
                store::audit(c, "admin", "provider_set", None, &format!("{} {u} {m}", kind.as_str()))
            })
            .await
            .map_err(internal)?;
        self.inner
            .broker
            .set_provider(Some(crate::broker::provider_from(kind, base_url.clone(), model.clone(), api_key)));
        Ok(ControlReply::ProviderSet(ProviderSummary { kind, base_url, model }))
    }

    async fn member_add(&self, name: String, bot_token: String, role: Role) -> Result<MemberAdded, ControlError> {
        let name = validate_name(&name)?;
        let token = bot_token.trim().to_owned();
        let n = name.clone();
        if self.inner.store.call(move |c| store::name_taken(c, &n)).await.map_err(internal)? {
            return Err(ControlError::new(ErrorCode::Conflict, format!("there is already a member called {name}")));
        }
        let me = telegram::validate_token(&self.inner.http, &self.inner.api_url, &token).await.map_err(token_error)?;
        let bot_id = me.user.id.0 as i64;
        if let Some(owner) = self.inner.store.call(move |c| store::member_id_for_bot(c, bot_id)).await.map_err(internal)? {
            return Err(ControlError::new(
                ErrorCode::Conflict,
                format!("this bot already belongs to member {owner}; each member needs a bot of their own (BotFather: /newbot)"),
            ));
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
            model: None,
            quiet_hours: None,
        };
        // The owner is set when their first worker starts (at account level, to their account).
        // With the supervisor, `members/` is root's: the supervisor makes the directory then.
        if self.inner.workers.supervisor().is_none() {
            hearth_isolation::dirs::prepare_member_dir(self.inner.dir.root(), &row.id, None).map_err(internal)?;
        }
        // The token is saved first: if the database write then fails, the orphan secret is
        // removed again and nothing refers to it.
        let key = secrets::bot_token_key(&row.id);
        self.inner.secrets.set(&key, &token).map_err(internal)?;
        let code = pairing::new_code();
        let (r, c2) = (row.clone(), code.clone());
        let stored = self
            .inner
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
            Err(e) => {
                let _ = self.inner.secrets.remove(&key);
                return Err(internal(e));
            }
        }
        self.inner.members.lock().unwrap().insert(row.id.clone(), row.clone());
        // The role's defaults (caps, a child's quiet hours); a failure here leaves them off.
        let row = match self.apply_role_preset(row.clone(), None).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(member = %row.id, error = %e.message, "the role's defaults could not be applied");
                row
            }
        };
        self.start_bot(&row);
        self.emit(GatewayEvent::Changed);
        tracing::info!(member = %row.id, bot = %row.bot_username, "member added");
        Ok(MemberAdded {
            pair_link: pairing::deep_link(&row.bot_username, &code),
            id: row.id,
            name: row.name,
            bot_username: row.bot_username,
            pair_code: code,
        })
    }

    async fn member_list(&self) -> Result<ControlReply, ControlError> {
        let rows = self.inner.store.call(|c| store::list_members(c)).await.map_err(internal)?;
        Ok(ControlReply::Members { members: rows.into_iter().map(summary).collect() })
    }

    pub(crate) async fn find(&self, key: &str) -> Result<MemberRow, ControlError> {
        let k = key.trim().to_owned();
        self.inner
            .store
            .call(move |c| store::find_member(c, &k))
            .await
            .map_err(internal)?
            .ok_or_else(|| ControlError::new(ErrorCode::NotFound, format!("no member called {key:?}; `hearth member list` shows who there is")))
    }

    async fn member_remove(&self, key: &str) -> Result<ControlReply, ControlError> {
        let m = self.find(key).await?;
        self.inner.bots.lock().unwrap().remove(&m.id);
        self.inner.workers.stop_and_wait(&m.id, std::time::Duration::from_secs(5)).await;
        let id = m.id.clone();
        let name = m.name.clone();
        self.inner
            .store
            .call(move |c| {
                store::delete_member(c, &id)?;
                store::audit(c, "admin", "member_removed", Some(&id), &name)
            })
            .await
            .map_err(internal)?;
        self.inner.members.lock().unwrap().remove(&m.id);
        self.inner.broker.with_spend(|s| {
            s.budget.set_member_caps(&m.id, None, None);
            s.fallbacks.remove(&m.id);
            s.models.remove(&m.id);
        });
        self.refresh_admin_available();
        let _ = self.inner.events.send(Event::MemberRemoved { member_id: m.id.clone() });
        self.inner.last_activity.lock().unwrap().remove(&m.id);
        self.inner.secrets.remove(&secrets::bot_token_key(&m.id)).map_err(internal)?;
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        if let Some(supervisor) = self.inner.workers.supervisor() {
            // The supervisor archives the directory (handing it to this user) and then deletes the
            // account, in that order, so a later account that reuses the uid finds nothing.
            let data_dir = std::fs::canonicalize(self.inner.dir.root()).unwrap_or_else(|_| self.inner.dir.root().to_owned());
            let removed = async {
                hearth_isolation::SupervisorClient::connect(supervisor).await?.remove(&m.id, &data_dir, &stamp).await
            }
            .await;
            match removed {
                Ok(r) => tracing::info!(member = %m.id, archive = ?r.archived_to, account_removed = r.account_removed, "member removed"),
                Err(e) => tracing::error!(member = %m.id, error = %e, "member removed, but the supervisor could not archive their directory or delete their account"),
            }
            return Ok(ControlReply::Done);
        }
        match hearth_isolation::dirs::archive_member_dir(self.inner.dir.root(), &m.id, &stamp) {
            Ok(Some(to)) => tracing::info!(member = %m.id, archive = %to.display(), "member removed; data archived"),
            Ok(None) => tracing::info!(member = %m.id, "member removed"),
            Err(e) => tracing::error!(member = %m.id, error = %e, "member removed but their directory could not be archived"),
        }
        // The account goes last, after its files are archived and owned by the gateway, so a
        // later account that reuses the uid finds nothing.
        if hearth_isolation::accounts::can_manage_accounts() {
            let id = m.id.clone();
            match tokio::task::spawn_blocking(move || hearth_isolation::accounts::remove_account(&id)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(member = %m.id, error = %e, "the member's OS account could not be removed"),
                Err(e) => tracing::error!(member = %m.id, error = %e, "removing the member's OS account failed"),
            }
        }
        Ok(ControlReply::Done)
    }

    async fn member_pair(&self, key: &str) -> Result<PairCode, ControlError> {
        let m = self.find(key).await?;
        let code = pairing::new_code();
        let (id, c2) = (m.id.clone(), code.clone());
        let now = store::now_unix();
        self.inner
            .store
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
}

/// What the admin sees of a member.
pub(crate) fn summary(m: MemberRow) -> MemberSummary {
    let usd = |micros: u64| micros as f64 / crate::spend::MICROS_PER_USD as f64;
    MemberSummary {
        paired: m.telegram_user_id.is_some(),
        created_at: rfc3339(m.created_at),
        role: m.role,
        paused: m.paused,
        persona: m.persona,
        model: m.model,
        fallback_model: m.fallback_model,
        is_admin: m.is_admin,
        daily_cap_usd: m.cap_daily_micros.map(usd),
        monthly_cap_usd: m.cap_monthly_micros.map(usd),
        quiet_hours: m.quiet_hours,
        id: m.id,
        name: m.name,
        bot_username: m.bot_username,
    }
}

/// A token `getMe` refused or could not check, as the admin reads it.
pub(crate) fn token_error(e: TokenError) -> ControlError {
    let code = match e {
        TokenError::Malformed => ErrorCode::InvalidInput,
        TokenError::Rejected => ErrorCode::Rejected,
        TokenError::Unreachable(_) => ErrorCode::Unreachable,
    };
    ControlError::new(code, e.to_string())
}

pub(crate) fn rfc3339(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.with_timezone(&chrono::Local).to_rfc3339())
        .unwrap_or_default()
}

/// A member's display name: 1–40 characters, no control characters, trimmed.
pub fn validate_name(name: &str) -> Result<String, ControlError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ControlError::new(ErrorCode::InvalidInput, "give the member a name, e.g. `hearth member add Ana`"));
    }
    if name.chars().count() > 40 {
        return Err(ControlError::new(ErrorCode::InvalidInput, "that name is over 40 characters; use something shorter"));
    }
    if name.chars().any(char::is_control) {
        return Err(ControlError::new(ErrorCode::InvalidInput, "the name contains control characters"));
    }
    Ok(name.to_owned())
}

/// A readable, unique, path-safe id: the name's ASCII letters and digits, a dash, and four
/// random characters (so a later member with the same name never inherits an old path).
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

// ---------------------------------------------------------------------------------------------
// The socket

/// Binds `run/control.sock` (directory 0700 and checked like the data folder, socket 0600) and
/// serves it until shutdown.
pub(crate) async fn serve_socket(gateway: Gateway) -> anyhow::Result<()> {
    let dir = &gateway.inner.dir;
    crate::data_dir::prepare_subdir(dir.root(), "run", 0o700)?;
    let path = dir.control_socket();
    // We hold the data directory's lock, so a socket file here is a leftover of a crash.
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    let cancel = gateway.inner.cancel.clone();
    let tracker = gateway.inner.tracker.clone();
    tracker.spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = cancel.cancelled() => return,
                a = listener.accept() => a,
            };
            match accepted {
                Ok((stream, _)) => {
                    let gw = gateway.clone();
                    gateway.inner.tracker.spawn(async move { serve_connection(gw, stream).await });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "control socket accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            }
        }
    });
    Ok(())
}

async fn serve_connection(gateway: Gateway, mut stream: UnixStream) {
    let me = nix::unistd::geteuid().as_raw();
    match stream.peer_cred() {
        Ok(cred) if cred.uid() == me || cred.uid() == 0 => {}
        Ok(cred) => {
            tracing::warn!(uid = cred.uid(), "control connection from another user refused");
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not identify a control connection; refused");
            return;
        }
    }
    let cancel = gateway.inner.cancel.clone();
    loop {
        let envelope = tokio::select! {
            _ = cancel.cancelled() => return,
            r = frame::read_frame::<_, ControlEnvelope>(&mut stream) => r,
        };
        let reply: Result<ControlReply, ControlError> = match envelope {
            Ok(env) if env.version != PROTOCOL_VERSION => Err(ControlError::new(
                ErrorCode::VersionMismatch,
                format!("this hearth command speaks version {} but the running gateway speaks {PROTOCOL_VERSION}; use the same Hearth version for both", env.version),
            )),
            Ok(env) => gateway.control(env.request).await,
            Err(FrameError::Closed) => return,
            Err(e) => Err(ControlError::new(ErrorCode::InvalidInput, format!("unreadable request: {e}"))),
        };
        if frame::write_frame(&mut stream, &reply).await.is_err() {
            return;
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("Hearth is not running for {0}. Start it with `hearth serve` (or open the Hearth app), then try again")]
    NotRunning(String),
    /// The socket, its folder or the process behind it belongs to someone the command must not
    /// trust with what it was about to send. Nothing was sent.
    #[error("{0}")]
    Refused(String),
    #[error("could not talk to the running gateway: {0}")]
    Io(String),
    #[error("{0}")]
    Control(#[from] ControlError),
}

/// Sends one request to the gateway serving `data_dir` — only after checking who serves it
/// ([`check_server`]): a request may carry an API key or a bot token.
pub async fn request(data_dir: &Path, request: ControlRequest) -> Result<ControlReply, ClientError> {
    let path = crate::paths::DataDir::new(data_dir).control_socket();
    let mut stream = match UnixStream::connect(&path).await {
        Ok(s) => s,
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) => {
            return Err(ClientError::NotRunning(data_dir.display().to_string()));
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(ClientError::Io(format!(
                "permission denied on {}; run the command as the user Hearth runs as",
                path.display()
            )));
        }
        Err(e) => return Err(ClientError::Io(e.to_string())),
    };
    let peer = stream
        .peer_cred()
        .map_err(|e| ClientError::Io(format!("could not tell who serves {}: {e}", path.display())))?;
    check_server(data_dir, peer.uid(), nix::unistd::geteuid().as_raw())?;
    frame::write_frame(&mut stream, &ControlEnvelope { version: PROTOCOL_VERSION, request })
        .await
        .map_err(|e| ClientError::Io(e.to_string()))?;
    let reply: Result<ControlReply, ControlError> = frame::read_frame(&mut stream).await.map_err(|e| match e {
        FrameError::Closed => ClientError::Io("the gateway closed the connection (is it shutting down?)".into()),
        e => ClientError::Io(e.to_string()),
    })?;
    Ok(reply?)
}

/// Whom a command run as `me` may send to: a gateway running as itself or as root — and, run as
/// root (`sudo hearth …`), the gateway of the user who owns the data folder, since root may talk
/// to anyone's gateway. The kernel says who `server` is (SO_PEERCRED / getpeereid); the data
/// folder, `run/` and the socket must belong to that same user (or root), be no link, and `run/`
/// writable by nobody else. Anything else is refused before a byte is sent: someone may have
/// put a listener of their own where the gateway's socket should be, to catch a key.
pub(crate) fn check_server(data_dir: &Path, server: u32, me: u32) -> Result<(), ClientError> {
    use std::os::unix::fs::MetadataExt;
    let dir = crate::paths::DataDir::new(data_dir);
    let who = |uid: u32| match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => format!("uid {uid} ({})", u.name),
        _ => format!("uid {uid}"),
    };
    let refuse = |what: String| {
        Err(ClientError::Refused(format!(
            "{what}. Nothing was sent: someone else may be listening in Hearth's place. Check {} (`ls -la {}`), and \
             run this command as the user Hearth runs as",
            dir.run_dir().display(),
            dir.run_dir().display()
        )))
    };
    let meta = |p: &Path| {
        std::fs::symlink_metadata(p).map_err(|e| ClientError::Io(format!("could not check {}: {e}", p.display())))
    };
    // The folder's own owner, through a link to it if the command was given one.
    let owner = std::fs::metadata(data_dir)
        .map_err(|e| ClientError::Io(format!("could not check {}: {e}", data_dir.display())))?
        .uid();
    let trusted = |uid: u32| uid == me || uid == 0 || (me == 0 && uid == owner);
    if !trusted(server) {
        return refuse(format!(
            "the control socket {} is served by {}, not by you ({}){}",
            dir.control_socket().display(),
            who(server),
            who(me),
            if me == 0 { format!(", root or the data folder's owner ({})", who(owner)) } else { " or root".into() }
        ));
    }
    for (path, dir_only) in [(dir.run_dir(), true), (dir.control_socket(), false)] {
        let m = meta(&path)?;
        if m.file_type().is_symlink() {
            return refuse(format!("{} is a symbolic link", path.display()));
        }
        if m.uid() != server && m.uid() != 0 {
            return refuse(format!(
                "{} belongs to {}, but the gateway behind it runs as {}",
                path.display(),
                who(m.uid()),
                who(server)
            ));
        }
        if dir_only && (!m.is_dir() || m.mode() & 0o022 != 0) {
            return refuse(format!(
                "{} is not a folder only its owner may change (mode {:04o})",
                path.display(),
                m.mode() & 0o7777
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ourselves_root_or_as_root_the_folders_owner_may_serve_us() {
        use std::os::unix::fs::PermissionsExt;
        let data = tempfile::tempdir().unwrap();
        let dir = crate::paths::DataDir::new(data.path());
        std::fs::create_dir(dir.run_dir()).unwrap();
        std::fs::set_permissions(dir.run_dir(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let _listener = std::os::unix::net::UnixListener::bind(dir.control_socket()).unwrap();
        let owner = nix::unistd::geteuid().as_raw();
        // The folder's owner serves; the command runs as the owner, or as root.
        check_server(data.path(), owner, owner).unwrap();
        check_server(data.path(), owner, 0).unwrap();
        // Someone else serves.
        let err = check_server(data.path(), 4242, owner).unwrap_err().to_string();
        assert!(err.contains("served by uid 4242") && err.contains("Nothing was sent"), "{err}");
        if owner != 0 {
            // Root's gateway may serve anyone; nobody but the owner's may serve root.
            check_server(data.path(), 0, owner).unwrap();
            assert!(check_server(data.path(), 4242, 0).is_err());
        }
        // `run/` loosened: refused even for the right uid.
        std::fs::set_permissions(dir.run_dir(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = check_server(data.path(), owner, owner).unwrap_err().to_string();
        assert!(err.contains("not a folder only its owner may change (mode 0777)"), "{err}");
    }

    #[test]
    fn member_ids_are_path_safe_and_unique() {
        for name in ["Ana", "Jean-Luc Picard", "Ömer", "李雷", "../../etc", "  "] {
            let id = new_member_id(name);
            assert!(hearth_isolation::dirs::is_safe_member_id(&id), "{name:?} -> {id}");
        }
        assert_ne!(new_member_id("Ana"), new_member_id("Ana"));
        assert!(new_member_id("Ana").starts_with("ana-"));
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(validate_name("  Ana ").unwrap(), "Ana");
        assert!(validate_name("").is_err());
        assert!(validate_name("a\u{7}b").is_err());
        assert!(validate_name(&"x".repeat(41)).is_err());
        assert!(validate_name("Grandma Rosa 👵").is_ok());
    }
}
