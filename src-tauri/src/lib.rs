//! The Hearth desktop shell. The Tauri app arrives with its own issue; until then this crate only
//! proves the engine is callable in-process: `hearth_gateway::Gateway::start` is what the shell
//! will call, exactly as `hearth serve` does.
pub use hearth_gateway::{Gateway, GatewayConfig};
