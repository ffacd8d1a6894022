//! A fake model server on this machine, as Ollama or LM Studio run one, for `ProviderDetect`:
//! it answers Ollama's `GET /api/tags` (`{"models":[{"name"}]}`) and the OpenAI-style
//! `GET /v1/models` (`{"data":[{"id"}]}`) with the models it was given, and records nothing else.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Handle to a running fake; the server stops when the last clone is dropped.
#[derive(Clone)]
pub struct FakeModelServer {
    addr: SocketAddr,
    _stop: Arc<StopOnDrop>,
}

struct StopOnDrop(CancellationToken);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

impl FakeModelServer {
    /// Starts the fake on 127.0.0.1 with an OS-chosen port, offering `models`.
    ///
    /// # Panics
    /// When loopback cannot be bound — a test environment problem, not a test outcome.
    pub async fn start(models: &[&str]) -> FakeModelServer {
        let listener =
            tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0 for the fake model server");
        let addr = listener.local_addr().expect("local address of the fake model server");
        let models: Arc<Vec<String>> = Arc::new(models.iter().map(|m| (*m).to_owned()).collect());
        let app = Router::new().route("/api/tags", get(tags)).route("/v1/models", get(list)).with_state(models);
        let stop = CancellationToken::new();
        let server_stop = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(server_stop.cancelled_owned()).await;
        });
        FakeModelServer { addr, _stop: Arc::new(StopOnDrop(stop)) }
    }

    /// `http://127.0.0.1:PORT`: the server's root, as `GatewayConfig::local_providers` takes it.
    pub fn root(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn tags(State(models): State<Arc<Vec<String>>>) -> Json<Value> {
    Json(json!({ "models": models.iter().map(|m| json!({ "name": m, "size": 1 })).collect::<Vec<_>>() }))
}

async fn list(State(models): State<Arc<Vec<String>>>) -> Json<Value> {
    let data: Vec<Value> = models.iter().map(|m| json!({ "id": m, "object": "model" })).collect();
    Json(json!({ "object": "list", "data": data }))
}
