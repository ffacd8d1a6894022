//! The admin API for members beyond adding and removing them: checking a bot token before it
//! is used, role, persona and model, pausing, replacing a bot token, exporting a member's data,
//! and the household's turn cap. Every change is stored, applied at once, audited and announced
//! to subscribers as [`GatewayEvent::Changed`].

use std::path::Path;

use hearth_proto::control::{
    BotIdentity, ControlError, ControlReply, ErrorCode, GatewayEvent, MemberSummary, ModelChange, Role,
};

use crate::control::{internal, summary, token_error};
use crate::gateway::{Event, Gateway};
use crate::secrets;
use crate::store::{self, MemberRow};
use crate::telegram;

/// Longest persona notes, in characters: a few paragraphs, not a document.
pub const MAX_PERSONA_CHARS: usize = 2000;
/// Longest model name accepted.
const MAX_MODEL_CHARS: usize = 200;

/// Persona notes as stored: trimmed, line ends made `\n`, no other control characters.
pub(crate) fn checked_persona(persona: &str) -> Result<String, ControlError> {
    let persona = persona.replace("\r\n", "\n").trim().to_owned();
    let chars = persona.chars().count();
    if chars > MAX_PERSONA_CHARS {
        return Err(ControlError::new(
            ErrorCode::InvalidInput,
            format!(
                "the persona notes are {chars} characters long; keep them to {MAX_PERSONA_CHARS} \
                 (a few short paragraphs)"
            ),
        ));
    }
    if persona.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(ControlError::new(
            ErrorCode::InvalidInput,
            "the persona notes contain control characters; type them again",
        ));
    }
    Ok(persona)
}

fn checked_model(model: &str) -> Result<String, ControlError> {
    let model = model.trim();
    if model.is_empty() || model.chars().count() > MAX_MODEL_CHARS || model.chars().any(char::is_control) {
        return Err(ControlError::new(
            ErrorCode::InvalidInput,
            "name the model as the provider spells it, e.g. gpt-4o-mini, or choose the household's model",
        ));
    }
    Ok(model.to_owned())
}

impl Gateway {
    /// Checks a pasted token with Telegram; stores nothing.
    pub(crate) async fn bot_check(&self, token: &str) -> Result<BotIdentity, ControlError> {
        let me = telegram::validate_token(&self.inner.http, &self.inner.api_url, token).await.map_err(token_error)?;
        let bot_id = me.user.id.0 as i64;
        if let Some(owner) = self.bot_owner(bot_id, None).await? {
            return Err(owner);
        }
        Ok(BotIdentity { bot_username: me.username().to_owned(), bot_name: me.user.first_name.clone() })
    }

    /// A `Conflict` naming the member who already has this bot, unless it is `except`.
    async fn bot_owner(&self, bot_id: i64, except: Option<&str>) -> Result<Option<ControlError>, ControlError> {
        let owner = self.inner.store.call(move |c| store::member_id_for_bot(c, bot_id)).await.map_err(internal)?;
        let Some(owner) = owner.filter(|o| Some(o.as_str()) != except) else { return Ok(None) };
        let name = self.inner.members.lock().unwrap().get(&owner).map(|m| m.name.clone()).unwrap_or(owner);
        Ok(Some(ControlError::new(
            ErrorCode::Conflict,
            format!(
                "this bot already belongs to {name}; each member needs a bot of their own (in @BotFather: /newbot)"
            ),
        )))
    }

    pub(crate) async fn member_update(
        &self,
        key: &str,
        role: Option<Role>,
        persona: Option<String>,
        model: Option<ModelChange>,
    ) -> Result<MemberSummary, ControlError> {
        if role.is_none() && persona.is_none() && model.is_none() {
            return Err(ControlError::new(
                ErrorCode::InvalidInput,
                "nothing to change: give a role, persona notes or a model",
            ));
        }
        let m = self.find(key).await?;
        let persona = persona.as_deref().map(checked_persona).transpose()?;
        let model: Option<Option<String>> = match model {
            None => None,
            Some(ModelChange::Household) => Some(None),
            Some(ModelChange::Set { model }) => Some(Some(checked_model(&model)?)),
        };
        if let Some(Some(model)) = &model {
            let capped = m.cap_daily_micros.is_some() || m.cap_monthly_micros.is_some();
            if capped || self.inner.broker.with_spend(|s| s.budget.household_cap().is_some()) {
                self.check_priced(Some(model))?;
            }
        }
        let (id, name, p, md) = (m.id.clone(), m.name.clone(), persona.clone(), model.clone());
        let row = self
            .inner
            .store
            .call(move |c| {
                store::update_member_settings(c, &id, role, p.as_deref(), md.as_ref().map(|m| m.as_deref()))?;
                if let Some(role) = role {
                    store::audit(c, "admin", "member_role", Some(&id), &format!("{name}: {}", role.as_str()))?;
                }
                if let Some(p) = &p {
                    store::audit(
                        c,
                        "admin",
                        "member_persona",
                        Some(&id),
                        &format!("{name}: {} characters", p.chars().count()),
                    )?;
                }
                if let Some(md) = &md {
                    store::audit(
                        c,
                        "admin",
                        "member_model",
                        Some(&id),
                        &format!("{name}: {}", md.as_deref().unwrap_or("household")),
                    )?;
                }
                store::find_member(c, &id)
            })
            .await
            .map_err(internal)?
            .ok_or_else(|| ControlError::new(ErrorCode::NotFound, format!("{} was removed meanwhile", m.name)))?;
        self.update_member(&m.id, |r| {
            r.role = row.role;
            r.persona = row.persona.clone();
            r.model = row.model.clone();
        });
        if model.is_some() {
            self.inner.broker.with_spend(|s| match &row.model {
                Some(model) => {
                    s.models.insert(row.id.clone(), model.clone());
                }
                None => {
                    s.models.remove(&row.id);
                }
            });
        }
        // A new role brings its defaults where the old role's still stand (`roles.rs`).
        let row = match role {
            Some(role) if role != m.role => self.apply_role_preset(row, Some(m.role)).await?,
            _ => row,
        };
        self.emit(GatewayEvent::Changed);
        Ok(summary(row))
    }

    /// Pauses or resumes one member, or everyone (`None`).
    pub(crate) async fn member_pause(&self, key: Option<&str>, paused: bool) -> Result<ControlReply, ControlError> {
        let targets: Vec<MemberRow> = match key {
            Some(k) => vec![self.find(k).await?],
            None => self.inner.store.call(|c| store::list_members(c)).await.map_err(internal)?,
        };
        let ids: Vec<(String, String)> = targets.iter().map(|m| (m.id.clone(), m.name.clone())).collect();
        self.inner
            .store
            .call(move |c| {
                let tx = c.transaction()?;
                for (id, name) in &ids {
                    store::set_member_paused(&tx, id, paused)?;
                    store::audit(
                        &tx,
                        "admin",
                        if paused { "member_paused" } else { "member_resumed" },
                        Some(id),
                        name,
                    )?;
                }
                tx.commit()?;
                Ok(())
            })
            .await
            .map_err(internal)?;
        for m in &targets {
            self.update_member(&m.id, |r| r.paused = paused);
            if paused {
                // Whatever already waits in their lane is dropped in the core loop, with one note.
                let _ = self.inner.events.send(Event::MemberPaused { member_id: m.id.clone() });
            } else {
                self.inner.paused_notes.lock().unwrap().remove(&m.id);
            }
            tracing::info!(member = %m.id, paused, "member paused or resumed");
        }
        self.emit(GatewayEvent::Changed);
        Ok(ControlReply::Done)
    }

    /// Gives a member a new bot token: checked first (nothing changes if it fails), then the old
    /// poll loop stops, the token and bot are stored, and polling starts again. The pairing stays.
    pub(crate) async fn member_token(&self, key: &str, token: &str) -> Result<MemberSummary, ControlError> {
        let m = self.find(key).await?;
        let token = token.trim().to_owned();
        let me = telegram::validate_token(&self.inner.http, &self.inner.api_url, &token).await.map_err(token_error)?;
        let bot_id = me.user.id.0 as i64;
        if let Some(owner) = self.bot_owner(bot_id, Some(&m.id)).await? {
            return Err(owner);
        }
        let username = me.username().to_owned();
        let secret = secrets::bot_token_key(&m.id);
        let old_token = self.inner.secrets.get(&secret);
        // Stop the old poll loop (dropping its handle cancels it) before anything else polls.
        self.inner.bots.lock().unwrap().remove(&m.id);
        self.inner.secrets.set(&secret, &token).map_err(|e| {
            self.start_bot(&m);
            internal(e)
        })?;
        let (id, u) = (m.id.clone(), username.clone());
        let detail = format!("{}: @{} → @{username}", m.name, m.bot_username);
        let stored = self
            .inner
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
                    let _ = self.inner.secrets.set(&secret, &old);
                }
                self.start_bot(&m);
                return Err(match other {
                    Err(e) => internal(e),
                    _ => ControlError::new(ErrorCode::NotFound, format!("{} was removed meanwhile", m.name)),
                });
            }
        };
        self.update_member(&m.id, |r| {
            r.bot_id = row.bot_id;
            r.bot_username = row.bot_username.clone();
            r.next_offset = row.next_offset;
        });
        self.start_bot(&row);
        tracing::info!(member = %m.id, bot = %username, "bot token replaced");
        self.emit(GatewayEvent::Changed);
        Ok(summary(row))
    }

    /// Writes a copy of the member's data into a new folder inside `dest_dir`.
    pub(crate) async fn member_export(&self, key: &str, dest_dir: &str) -> Result<ControlReply, ControlError> {
        let m = self.find(key).await?;
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
        let (data, id, name) = (self.inner.dir.root().to_owned(), m.id.clone(), m.name.clone());
        // As root, the member's folder is read by a reader running as their account: the worker
        // binary (`hearth`) is that reader too.
        let exe = crate::tree::ReaderExe::Path(self.inner.config.worker_exe.clone());
        let done = tokio::task::spawn_blocking(move || {
            crate::export::export_member(&data, &id, &dest, &name, &chrono::Local::now(), &exe)
        })
        .await
        .map_err(internal)?;
        let done = match done {
            Ok(done) => done,
            Err(crate::export::ExportError::Nothing) => {
                return Err(ControlError::new(
                    ErrorCode::NotFound,
                    format!("{} has nothing to export yet: their assistant has not stored anything", m.name),
                ));
            }
            Err(e @ crate::export::ExportError::Read { .. }) if self.inner.workers.supervisor().is_some() => {
                return Err(ControlError::new(
                    ErrorCode::Internal,
                    format!(
                        "{e}. {}'s files belong to their own OS account, which this gateway cannot read; run the \
                         export as root, or copy members/{} from the data directory as root",
                        m.name, m.id
                    ),
                ));
            }
            Err(e) => return Err(ControlError::new(ErrorCode::Internal, format!("{e}; nothing else was changed"))),
        };
        if !done.skipped.is_empty() {
            tracing::warn!(member = %m.id, skipped = ?done.skipped, "left links and special files out of the export");
        }
        let path = done.path.display().to_string();
        let (id, detail) = (m.id.clone(), format!("{}: {} files to {path}", m.name, done.files));
        self.inner
            .store
            .call(move |c| store::audit(c, "admin", "member_exported", Some(&id), &detail))
            .await
            .map_err(internal)?;
        Ok(ControlReply::Exported { path })
    }

    /// Changes how many turns may run at once, from now on.
    pub(crate) async fn turn_cap(&self, cap: u32) -> Result<ControlReply, ControlError> {
        if !(1..=10_000).contains(&cap) {
            return Err(ControlError::new(
                ErrorCode::InvalidInput,
                format!("{cap} answers at once is out of range; choose from 1 to 10000"),
            ));
        }
        self.inner
            .store
            .call(move |c| store::audit(c, "admin", "turn_cap", None, &cap.to_string()))
            .await
            .map_err(internal)?;
        let _ = self.inner.events.send(Event::TurnCap { cap: cap as usize });
        Ok(ControlReply::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persona_notes_are_checked() {
        assert_eq!(checked_persona("  Likes chess.\r\nSpeaks German.  ").unwrap(), "Likes chess.\nSpeaks German.");
        assert_eq!(checked_persona("").unwrap(), "");
        let long = checked_persona(&"é".repeat(MAX_PERSONA_CHARS + 1)).unwrap_err();
        assert_eq!(long.code, ErrorCode::InvalidInput);
        assert!(long.message.contains("2001 characters") && long.message.contains("2000"), "{}", long.message);
        assert!(checked_persona(&"é".repeat(MAX_PERSONA_CHARS)).is_ok());
        assert!(checked_persona("a\u{1b}[31mb").is_err());
        assert!(checked_model(" gpt-4o-mini ").is_ok());
        assert!(checked_model("  ").is_err());
        assert!(checked_model("a\nb").is_err());
    }
}
