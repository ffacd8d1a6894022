//! Handshake, shutdown, bad frames and the files the worker leaves behind.

use std::os::unix::fs::PermissionsExt;

use hearth_proto::PROTOCOL_VERSION;
use hearth_proto::worker::{GatewayToWorker, TurnOutcome, WorkerToGateway};
use tokio::io::AsyncWriteExt;

use crate::fake::{Gateway, chat_turn, completion};

#[tokio::test]
async fn handshake_then_shutdown_exits_cleanly() {
    let gw = Gateway::start().await;
    gw.shutdown().await;
}

#[tokio::test]
async fn end_of_stream_exits_cleanly() {
    let gw = Gateway::start().await;
    let Gateway { stream, worker, dir, .. } = gw;
    drop(stream);
    let gw_exit = Gateway { stream: tokio::net::UnixStream::pair().unwrap().0, worker, dir, notes: Vec::new() };
    let (result, _) = gw_exit.exit().await;
    result.unwrap();
}

#[tokio::test]
async fn version_mismatch_is_an_error() {
    let mut gw = Gateway::spawn();
    assert!(matches!(gw.recv().await, WorkerToGateway::Hello { version: PROTOCOL_VERSION, .. }));
    gw.send(GatewayToWorker::Welcome { version: PROTOCOL_VERSION + 1, member_id: "alex".into() }).await;
    let (result, _) = gw.exit().await;
    let err = format!("{:#}", result.unwrap_err());
    assert!(err.contains(&format!("protocol version {}", PROTOCOL_VERSION + 1)), "{err}");
}

#[tokio::test]
async fn anything_but_welcome_first_is_an_error() {
    let mut gw = Gateway::spawn();
    let _ = gw.recv().await;
    gw.send(GatewayToWorker::Shutdown).await;
    let (result, _) = gw.exit().await;
    assert!(format!("{:#}", result.unwrap_err()).contains("expected welcome"));
}

#[tokio::test]
async fn garbage_frame_is_an_error() {
    let mut gw = Gateway::start().await;
    gw.stream.write_all(&5u32.to_be_bytes()).await.unwrap();
    gw.stream.write_all(b"{nope").await.unwrap();
    let (result, _) = gw.exit().await;
    assert!(format!("{:#}", result.unwrap_err()).contains("not valid"));
}

#[tokio::test]
async fn stray_completion_result_is_an_error() {
    let mut gw = Gateway::start().await;
    gw.answer(42, Ok(completion("?"))).await;
    let (result, _) = gw.exit().await;
    assert!(format!("{:#}", result.unwrap_err()).contains("completion result 42"));
}

#[tokio::test]
async fn wrong_request_id_mid_turn_is_an_error() {
    let mut gw = Gateway::start().await;
    gw.send(GatewayToWorker::Turn(chat_turn(1, 100, &[(10, "Hi")]))).await;
    let (request_id, _) = gw.expect_complete(1).await;
    gw.answer(request_id + 1, Ok(completion("?"))).await;
    let (result, _) = gw.exit().await;
    assert!(format!("{:#}", result.unwrap_err()).contains("while waiting for completion"));
}

#[tokio::test]
async fn shutdown_mid_turn_finishes_the_turn_then_exits() {
    let mut gw = Gateway::start().await;
    gw.send(GatewayToWorker::Turn(chat_turn(1, 100, &[(10, "Hi")]))).await;
    let (request_id, _) = gw.expect_complete(1).await;
    gw.send(GatewayToWorker::Shutdown).await;
    gw.answer(request_id, Ok(completion("Hello!"))).await;
    assert_eq!(gw.expect_done(1).await, TurnOutcome::Reply { text: "Hello!".into() });
    let (result, _) = gw.exit().await;
    result.unwrap();
}

#[tokio::test]
async fn history_lives_in_the_member_dir_owner_only() {
    let mut gw = Gateway::start().await;
    gw.chat(1, 100, &[(10, "Hi")], "Hello!").await;
    let dir = gw.dir.path().to_owned();
    for name in ["history.sqlite", "history.sqlite-wal", "history.sqlite-shm"] {
        let meta = std::fs::metadata(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
    }
    let _dir = gw.shutdown().await;
}

#[tokio::test]
async fn an_existing_wider_history_file_is_tightened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.sqlite");
    std::fs::write(&path, b"").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut gw = Gateway::start_in(dir).await;
    gw.chat(1, 100, &[(10, "Hi")], "Hello!").await;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    gw.shutdown().await;
}
