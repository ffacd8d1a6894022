//! Isolation through the whole gateway: real OS accounts and the sandbox (these tests need
//! root; CI runs as root), a hostile worker that tries to write to another member's chat, and
//! connections the kernel says come from the wrong uid.

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use hearth_gateway::IsolationChoice;
use hearth_proto::control::{ControlReply, ControlRequest, IsolationLevel, Severity};
use hearth_testkit::llm::Reply;
use serde_json::json;

use crate::support::{Household, eventually};

const T: Duration = Duration::from_secs(30);

fn assert_root() {
    assert!(nix::unistd::geteuid().is_root(), "this test needs root (it creates OS accounts); CI runs as root");
}

/// Removes the members' OS accounts even when a test fails half-way.
struct AccountsGuard(Vec<String>);

impl Drop for AccountsGuard {
    fn drop(&mut self) {
        for id in &self.0 {
            let _ = hearth_isolation::accounts::remove_account(id);
        }
    }
}

fn process_uid(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}

/// The issue's "done when": three members, three workers under three distinct accounts, each
/// at level "account + sandbox", and `doctor` finds nothing wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_run_under_three_accounts_in_the_sandbox() {
    assert_root();
    let h = Household::with(3, |c| c.isolation = IsolationChoice::AccountSandbox).await;
    let _guard = AccountsGuard(h.members.iter().map(|m| m.id.clone()).collect());
    for i in 0..3 {
        h.say(i, &format!("hello from {i}"));
    }
    for i in 0..3 {
        assert_eq!(h.replies(i, 2, T).await[1].text, format!("You said: hello from {i}"));
    }
    let status = h.status().await;
    assert_eq!(status.isolation, IsolationLevel::AccountSandbox);
    let mut uids = Vec::new();
    for (m, s) in h.members.iter().zip(&status.members) {
        let account = hearth_isolation::accounts::find_account(&m.id).unwrap().expect("the member has an account");
        let pid = s.worker_pid.expect("worker running");
        assert_eq!(process_uid(pid), account.uid, "{}'s worker runs as their account", m.name);
        assert_ne!(account.uid, 0);
        let dir = h.dir.path().join("members").join(&m.id);
        let meta = std::fs::metadata(&dir).unwrap();
        assert_eq!((meta.uid(), meta.mode() & 0o777), (account.uid, 0o700));
        // The worker's history is the member's, private.
        let history = std::fs::metadata(dir.join("history.sqlite")).unwrap();
        assert_eq!((history.uid(), history.mode() & 0o077), (account.uid, 0));
        uids.push(account.uid);
    }
    uids.sort();
    uids.dedup();
    assert_eq!(uids.len(), 3, "three distinct accounts");

    let ControlReply::Doctor(report) = h.gateway.control(ControlRequest::Doctor).await.unwrap() else { panic!() };
    assert_eq!(report.isolation, IsolationLevel::AccountSandbox);
    for m in &report.members {
        assert_eq!(m.isolation, IsolationLevel::AccountSandbox);
        assert!(m.account.as_deref().is_some_and(|a| a.starts_with("hearth-")), "{m:?}");
        let bad: Vec<_> = m.findings.iter().filter(|f| f.severity > Severity::Info).collect();
        assert!(bad.is_empty(), "{}: {bad:?}", m.name);
    }
    let bad: Vec<_> = report.findings.iter().filter(|f| f.severity > Severity::Info).collect();
    assert!(bad.is_empty(), "{bad:?}");

    // A killed worker comes back under the same account.
    let pid = status.members[0].worker_pid.unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    eventually(T, "worker gone", async || (h.status().await.members[0].worker_pid.is_none()).then_some(())).await;
    h.say(0, "again");
    h.replies(0, 3, T).await;
    let new_pid = h.status().await.members[0].worker_pid.unwrap();
    assert_ne!(new_pid, pid);
    assert_eq!(process_uid(new_pid), uids.iter().copied().find(|u| *u == process_uid(new_pid)).unwrap());
    let account = hearth_isolation::accounts::find_account(&h.members[0].id).unwrap().unwrap();
    assert_eq!(process_uid(new_pid), account.uid);

    // Removing a member removes the account, after handing their files to the gateway.
    let (id, name) = (h.members[2].id.clone(), h.members[2].name.clone());
    h.gateway.control(ControlRequest::MemberRemove { member: name }).await.unwrap();
    assert!(hearth_isolation::accounts::find_account(&id).unwrap().is_none(), "the account is gone");
    let archived = std::fs::read_dir(h.dir.path().join("archive")).unwrap().next().unwrap().unwrap().path();
    assert_eq!(std::fs::metadata(&archived).unwrap().uid(), 0, "archived files belong to the gateway");
    assert_eq!(std::fs::metadata(archived.join("history.sqlite")).unwrap().uid(), 0);
    h.stop().await;
}

/// The file tools inside the sandbox: the worker reaches `files/` through cap-std (`openat2`
/// with `RESOLVE_BENEATH`, directory reads, renames), which the seccomp allowlist and Landlock
/// let through, and the note is the member's account's, 0600.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandboxed_member_saves_and_reads_a_note() {
    assert_root();
    let h = Household::with(1, |c| c.isolation = IsolationChoice::AccountSandbox).await;
    let _guard = AccountsGuard(h.members.iter().map(|m| m.id.clone()).collect());
    h.llm.push_reply(Reply::tool_call("write_file", json!({ "name": "list.txt", "content": "milk\n" })));
    h.llm
        .push_reply(Reply::tool_call("write_file", json!({ "name": "list.txt", "content": "eggs\n", "append": true })));
    h.llm.push_reply(Reply::tool_call("read_file", json!({ "name": "list.txt" })));
    h.llm.push_reply(Reply::tool_call("list_files", json!({})));
    h.llm.push_reply(Reply::text("Saved."));
    h.say(0, "Note: milk, eggs");
    assert_eq!(h.replies(0, 2, T).await[1].text, "Saved.");
    let results: Vec<String> = h.llm.calls()[1..5].iter().map(|c| c.tool_results().last().unwrap().1.clone()).collect();
    assert_eq!(
        results,
        ["Saved list.txt (5 bytes).", "Saved list.txt (10 bytes).", "milk\neggs\n", "list.txt (10 bytes)"]
    );
    let account = hearth_isolation::accounts::find_account(&h.members[0].id).unwrap().unwrap();
    let note = std::fs::metadata(h.dir.path().join("members").join(&h.members[0].id).join("files/list.txt")).unwrap();
    assert_eq!((note.uid(), note.mode() & 0o777), (account.uid, 0o600));
    h.stop().await;
}

/// A connection to the worker socket from a uid that is no member's freshly started worker
/// gets nothing: it is closed before a single frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_from_an_unrelated_uid_is_dropped() {
    assert_root();
    let h = Household::with(1, |c| c.isolation = IsolationChoice::Account).await;
    let _guard = AccountsGuard(h.members.iter().map(|m| m.id.clone()).collect());
    let socket = h.dir.path().join("workers").join("gateway.sock");
    assert!(socket.exists());
    let script = "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.settimeout(10)\ns.connect(sys.argv[1])\ntry:\n    s.sendall(b'\\x00\\x00\\x00\\x1c{\"type\":\"hello\",\"version\":1}')\n    data = s.recv(100)\nexcept (ConnectionResetError, BrokenPipeError):\n    data = b''\nprint(repr(data))";
    let out = tokio::process::Command::new("python3")
        .args(["-c", script, socket.to_str().unwrap()])
        .uid(65534)
        .gid(65534)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "b''", "the stranger got data back");
    // The member is unaffected.
    h.say(0, "still here");
    assert_eq!(h.replies(0, 2, T).await[1].text, "You said: still here");
    h.stop().await;
}

/// A worker that misbehaves: it claims to be someone else, asks for completions outside its
/// turn, finishes turns that are not running, and replies to the one that is. None of it
/// reaches another member; its reply goes to its own member's chat only. It speaks the current
/// protocol version (checked in the test), so the gateway lets it in.
const HOSTILE_WORKER: &str = r#"
import json, os, socket, struct
s = socket.socket(fileno=3)
def send(obj):
    b = json.dumps(obj).encode()
    s.sendall(struct.pack('>I', len(b)) + b)
def recv():
    n = b''
    while len(n) < 4:
        c = s.recv(4 - len(n))
        if not c: raise SystemExit(0)
        n += c
    (size,) = struct.unpack('>I', n)
    b = b''
    while len(b) < size:
        b += s.recv(size - len(b))
    return json.loads(b)
send({"type": "hello", "version": 8, "claimed_member": "somebody-else"})
recv()  # welcome
while True:
    m = recv()
    if m.get("type") != "turn":
        continue
    t = m["turn_id"]
    send({"type": "turn_done", "turn_id": t + 1000, "outcome": {"type": "reply", "text": "to someone else's turn"}})
    send({"type": "complete", "request_id": 1, "turn_id": t + 1000, "request": {"system": "", "messages": [{"role": "user", "content": "spend on another turn"}], "max_tokens": 10}})
    r = recv()
    note = "refused" if r.get("result", {}).get("Err") else "ALLOWED"
    send({"type": "turn_done", "turn_id": t, "outcome": {"type": "reply", "text": "hostile worker here; outside completion " + note}})
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_worker_reaches_only_its_own_chat() {
    let hello = format!("\"version\": {},", hearth_proto::PROTOCOL_VERSION);
    assert!(HOSTILE_WORKER.contains(&hello), "update the hostile worker's hello to {hello}");
    let h = Household::with(2, |c| {
        c.worker_exe = "/usr/bin/python3".into();
        c.worker_args = vec!["-c".into(), HOSTILE_WORKER.into()];
    })
    .await;
    h.say(0, "hello?");
    let got = h.replies(0, 2, T).await;
    assert_eq!(got[1].text, "hostile worker here; outside completion refused");
    h.settled().await;
    assert_eq!(h.tg.sent_to(&h.members[0].bot.token, h.members[0].user.id).len(), 2, "exactly one reply");
    let other = &h.members[1];
    assert_eq!(h.tg.sent_to(&other.bot.token, other.user.id).len(), 1, "only the other member's pairing welcome");
    assert!(h.llm.calls().is_empty(), "no completion outside a running turn");
    h.stop().await;
}
