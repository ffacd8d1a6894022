//! What the admins hear about the household's health: each admin's alert setting
//! (`MemberAlerts`) and the heartbeat to a dead-man's switch (`HouseholdHeartbeat`). The alerts
//! themselves are `core/alerts/`; the heartbeat's timer is `household/heartbeat.rs`.

use std::time::Duration;

use hearth_proto::control::{AlertLevel, ControlError, ControlReply, ErrorCode, GatewayEvent, MemberSummary};

use super::{find, internal, stopping, summary};
use crate::core::{Change, Engine, MemberUpdate};
use crate::household::heartbeat::{self, Beat, MAX_EVERY_MINUTES, SETTING_EVERY, SETTING_URL};
use crate::store;

/// What a member is told about the household's health while an admin.
pub(super) async fn member_alerts(e: &Engine, key: &str, alerts: AlertLevel) -> Result<MemberSummary, ControlError> {
    let m = find(e, key).await?;
    let (id, name) = (m.id.clone(), m.name.clone());
    let row = e
        .store
        .call(move |c| {
            store::set_member_alerts(c, &id, alerts)?;
            store::audit(c, "admin", "member_alerts", Some(&id), &format!("{name}: {}", alerts.as_str()))?;
            store::find_member(c, &id)
        })
        .await
        .map_err(internal)?
        .ok_or_else(|| ControlError::new(ErrorCode::NotFound, format!("{} was removed meanwhile", m.name)))?;
    let update = MemberUpdate::Alerts(alerts);
    e.change(Change::Member { member_id: row.id.clone(), update }).await.map_err(stopping)?;
    e.emit(GatewayEvent::Changed);
    Ok(summary(row))
}

/// Sets the heartbeat (`url: None`: off), stored first, then handed to its timer.
pub(super) async fn heartbeat(
    e: &Engine,
    url: Option<String>,
    every_minutes: u32,
) -> Result<ControlReply, ControlError> {
    let beat = match url {
        None => None,
        Some(url) => {
            let url = heartbeat::check_url(&url).map_err(|m| ControlError::new(ErrorCode::InvalidInput, m))?;
            if !(1..=MAX_EVERY_MINUTES).contains(&every_minutes) {
                return Err(ControlError::new(
                    ErrorCode::InvalidInput,
                    format!(
                        "a heartbeat every {every_minutes} minutes is out of range; choose 1 to {MAX_EVERY_MINUTES} \
                         (5 suits most services)"
                    ),
                ));
            }
            Some(Beat { url, every: Duration::from_secs(u64::from(every_minutes) * 60) })
        }
    };
    let stored = beat.clone();
    e.store
        .call(move |c| match &stored {
            Some(b) => {
                store::set_setting(c, SETTING_URL, b.url.as_str())?;
                store::set_setting(c, SETTING_EVERY, &every_minutes.to_string())?;
                // The URL's path is the service's secret: the audit names the server only.
                let detail = format!("every {every_minutes} minutes to {}", heartbeat::shown(&b.url));
                store::audit(c, "admin", "heartbeat", None, &detail)
            }
            None => {
                store::delete_setting(c, SETTING_URL)?;
                store::delete_setting(c, SETTING_EVERY)?;
                store::audit(c, "admin", "heartbeat", None, "off")
            }
        })
        .await
        .map_err(internal)?;
    e.heartbeat.set(beat);
    Ok(ControlReply::Done)
}
