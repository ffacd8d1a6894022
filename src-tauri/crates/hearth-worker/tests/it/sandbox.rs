//! A worker reads and keeps a member's PDF under the real kernel sandbox (Landlock + seccomp,
//! as `hearth-isolation` applies it to every sandboxed worker): the parser, its thread, the
//! caught panic of a broken file and the write into `files/` all work with only what the
//! sandbox allows. The test runs itself again as a child process that sandboxes itself first.

#![cfg(target_os = "linux")]

use hearth_proto::worker::{AttachmentKind, TurnOutcome};

use crate::fake::{Gateway, completion, with_file};
use hearth_sim::media::pdf;

const CHILD: &str = "HEARTH_WORKER_TEST_SANDBOX_DIR";
const NAME: &str = "sandbox::a_pdf_is_read_and_kept_inside_the_sandbox";

#[test]
fn a_pdf_is_read_and_kept_inside_the_sandbox() {
    if let Some(dir) = std::env::var_os(CHILD) {
        return child(std::path::PathBuf::from(dir));
    }
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD, dir.path())
        .output()
        .unwrap();
    let log = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the sandboxed run failed:\n{log}");
    assert!(log.contains("1 passed"), "the sandboxed run did not run the test:\n{log}");
    assert!(dir.path().join("files/letter.pdf").is_file(), "{log}");
}

/// In the child: sandbox this thread (the runtime and the PDF thread inherit it), then play
/// gateway to a real worker.
fn child(dir: std::path::PathBuf) {
    let plan = hearth_isolation::sandbox::SandboxPlan::prepare(&dir, &std::env::current_exe().unwrap())
        .expect("this kernel offers Landlock and seccomp");
    hearth_isolation::sandbox::apply_in_child(&plan).unwrap();
    // The sandbox is on: no new socket, nothing outside the member directory.
    assert!(std::net::TcpStream::connect("127.0.0.1:9").is_err());
    assert!(std::fs::write("/tmp/hearth-sandbox-escape", b"x").is_err());

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let member = tempfile::TempDir::new_in(&dir).unwrap();
        let mut gw = Gateway::start_in(member).await;
        let letter = pdf(&[Some("Swimming lessons start on Monday.")]);
        let msg = with_file(10, "", AttachmentKind::Document, "letter.pdf", "application/pdf", letter.len() as u64);
        gw.send_media_turn(1, vec![msg], &[(10, &letter)]).await;
        let (id, request) = gw.expect_complete(1).await;
        assert!(request.messages.last().unwrap().content.contains("Swimming lessons start on Monday."));
        gw.answer(id, Ok(completion("On Monday."))).await;
        gw.expect_done(1).await;

        // A broken PDF: the parser's failure (or panic) is caught inside the sandbox too.
        let mut broken = pdf(&[Some("x")]);
        broken.truncate(broken.len() / 2);
        let msg = with_file(11, "", AttachmentKind::Document, "broken.pdf", "application/pdf", broken.len() as u64);
        gw.send_media_turn(2, vec![msg], &[(11, &broken)]).await;
        assert!(matches!(gw.expect_done(2).await, TurnOutcome::Failed { .. }));
        let member = gw.shutdown().await;
        std::fs::create_dir_all(dir.join("files")).unwrap();
        std::fs::rename(member.path().join("files/letter.pdf"), dir.join("files/letter.pdf")).unwrap();
    });
}
