//! Bytes from a worker or the control socket: decode a frame payload as every message type the
//! gateway and workers read, and read a stream of length-prefixed frames with `read_frame`.
//! Never a panic; whatever decodes re-encodes to an equal value; and no single input makes the
//! reader hold more than `MAX_FRAME` (plus slack for the decoded value) at once.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use hearth_proto::control::ControlEnvelope;
use hearth_proto::frame::{self, FrameError, MAX_FRAME};
use hearth_proto::worker::{GatewayToWorker, WorkerToGateway};
use libfuzzer_sys::fuzz_target;
use serde::{Serialize, de::DeserializeOwned};

/// Counts live bytes and their high-water mark so each input's peak can be checked.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Room for the decoded value and the runtime's bookkeeping on top of one frame body.
const SLACK: usize = 1024 * 1024;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().build().expect("runtime"))
}

/// Whatever decodes must survive a round trip through `encode`/`decode` unchanged.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq>(body: &[u8]) {
    if let Ok(value) = frame::decode::<T>(body) {
        let bytes = frame::encode(&value).expect("a decoded value encodes");
        let again = frame::decode::<T>(&bytes[4..]).expect("an encoded value decodes");
        assert!(again == value, "round trip changed the value");
    }
}

/// Reads frames until the stream ends or a frame is refused.
async fn read_all<T: DeserializeOwned>(mut stream: &[u8]) {
    for _ in 0..64 {
        match frame::read_frame::<_, T>(&mut stream).await {
            Ok(_) | Err(FrameError::Decode(_)) => {}
            Err(FrameError::Closed | FrameError::TooLarge(_) | FrameError::OverLimit { .. } | FrameError::Io(_)) => break,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);

    round_trip::<GatewayToWorker>(data);
    round_trip::<WorkerToGateway>(data);
    round_trip::<ControlEnvelope>(data);

    let Some((&which, stream)) = data.split_first() else { return };
    runtime().block_on(async {
        match which % 3 {
            0 => read_all::<GatewayToWorker>(stream).await,
            1 => read_all::<WorkerToGateway>(stream).await,
            _ => read_all::<ControlEnvelope>(stream).await,
        }
    });

    let peak = PEAK.load(Ordering::Relaxed) - base;
    assert!(peak <= MAX_FRAME + SLACK, "one input held {peak} bytes at once");
});
