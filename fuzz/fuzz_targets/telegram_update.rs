//! Bytes from Telegram: decode them as teloxide does a `getUpdates` result (one `Update`, or the
//! array the method returns), then hand each update to the gateway's `extract_message`. Neither
//! step may panic, whatever Telegram (or something pretending to be it) sends.
#![no_main]

use hearth_gateway::telegram::extract_message;
use libfuzzer_sys::fuzz_target;
use teloxide::types::Update;

fuzz_target!(|data: &[u8]| {
    if let Ok(update) = serde_json::from_slice::<Update>(data) {
        let _ = extract_message(&update);
    }
    if let Ok(updates) = serde_json::from_slice::<Vec<Update>>(data) {
        for update in &updates {
            let _ = extract_message(update);
        }
    }
});
