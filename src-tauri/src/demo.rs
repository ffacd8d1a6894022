//! "Try the demo household": the real gateway and real worker processes in a throwaway folder,
//! with `hearth-sim`'s simulated Telegram and canned model on 127.0.0.1 — four simulated family
//! members writing to their bots, so a newcomer sees the dashboard come alive before pasting any
//! key.
//! Nothing here touches the real household's data folder.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use hearth_gateway::{Gateway, GatewayConfig, IsolationChoice};
use hearth_proto::control::{CapChange, ControlReply, ControlRequest, ProviderKind};
use hearth_sim::demo::{self, model};
use hearth_sim::llm::FakeLlm;
use hearth_sim::telegram::FakeTelegram;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const MEMBERS: usize = 4;
const MODEL_LATENCY: Duration = Duration::from_millis(1500);

pub struct Demo {
    gateway: Gateway,
    telegram: FakeTelegram,
    llm: FakeLlm,
    stop: CancellationToken,
    people: TaskTracker,
    /// Deleted when the demo stops.
    data: tempfile::TempDir,
}

impl Demo {
    pub async fn start(worker_exe: PathBuf) -> anyhow::Result<Demo> {
        let data = tempfile::Builder::new().prefix("hearth-demo-").tempdir().context("create a temporary folder")?;
        let telegram = FakeTelegram::start().await;
        let llm = FakeLlm::start().await;
        llm.set_latency(MODEL_LATENCY);
        model::install(&llm);
        let mut config = GatewayConfig::new(data.path().to_owned(), worker_exe);
        config.worker_args = vec!["worker".into()];
        config.telegram_api_url = Some(telegram.api_url());
        // Simulated members never get OS accounts, whoever runs the app.
        config.isolation = IsolationChoice::Process;
        config.control_socket = false;
        // Its bot tokens are fakes in a throwaway folder: never in the Keychain.
        config.secrets = Some(hearth_gateway::secrets::SecretsBackend::File);
        let gateway = Gateway::start(config).await.context("start the demo gateway")?;
        let demo = Demo { gateway, telegram, llm, stop: CancellationToken::new(), people: TaskTracker::new(), data };
        if let Err(e) = demo.set_up().await {
            demo.stop().await;
            return Err(e);
        }
        Ok(demo)
    }

    async fn set_up(&self) -> anyhow::Result<()> {
        let gw = &self.gateway;
        let control = |request| async move { gw.control(request).await.map_err(|e| anyhow::anyhow!(e.message)) };
        // A price, so the spend bars move as they would with a paid model.
        control(ControlRequest::PriceSet {
            model: "demo-model".into(),
            input_micros_per_mtok: 2_500_000,
            output_micros_per_mtok: 10_000_000,
            cached_input_micros_per_mtok: None,
            cache_write_micros_per_mtok: None,
        })
        .await?;
        control(ControlRequest::ProviderSet {
            kind: ProviderKind::Openai,
            base_url: self.llm.base_url(),
            model: "demo-model".into(),
            api_key: "demo-key-not-secret".into(),
        })
        .await?;
        control(ControlRequest::HouseholdCap { monthly: CapChange::Set { micros: 30_000_000 } }).await?;
        let (events, mut sink) = tokio::sync::mpsc::unbounded_channel();
        // Nobody watches the simulation's own log; the dashboard shows the gateway instead.
        tokio::spawn(async move { while sink.recv().await.is_some() {} });
        let add = |name: String, bot_token: String| async move {
            let role = match name.as_str() {
                "Leo" => hearth_proto::control::Role::Teen,
                "Mia" => hearth_proto::control::Role::Child,
                _ => hearth_proto::control::Role::Adult,
            };
            match gw.control(ControlRequest::MemberAdd { name: name.clone(), bot_token, role }).await {
                Ok(ControlReply::MemberAdded(added)) => {
                    let cap = CapChange::Set { micros: 1_000_000 };
                    let _ = gw.control(ControlRequest::MemberCap { member: name, daily: cap, monthly: CapChange::Keep }).await;
                    Ok(added.pair_code)
                }
                Ok(_) => Err("the gateway did not confirm the new member".to_owned()),
                Err(e) => Err(e.message),
            }
        };
        let people = demo::set_up(&self.telegram, MEMBERS, add, &events).await.map_err(anyhow::Error::msg)?;
        for person in people {
            self.people.spawn(demo::simulate(
                person,
                self.telegram.clone(),
                events.clone(),
                self.stop.clone(),
                self.stop.clone(),
                MODEL_LATENCY.as_millis() as u64,
            ));
        }
        self.people.close();
        Ok(())
    }

    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// Stops the people, the gateway and the fakes, and deletes the folder.
    pub async fn stop(self) {
        self.stop.cancel();
        self.people.close();
        self.people.wait().await;
        self.gateway.shutdown(Duration::from_secs(3)).await;
        self.telegram.shutdown();
        self.llm.shutdown();
        let path = self.data.path().to_owned();
        if self.data.close().is_err() {
            // A worker that was just stopped may still be closing its files.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}
