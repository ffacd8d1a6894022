//! Household knowledge and tools per role, end to end through the real gateway and real worker
//! processes: the model searches `kb/` (indexed by the gateway, which answers the worker's
//! search) and reads the answer in its next request; a child's assistant is not offered file
//! writing and a forced call to it is refused, not run; an adult's note lands in its own
//! `files/`, 0600.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use hearth_proto::control::{ControlRequest, ProviderKind, Role};
use hearth_testkit::llm::Reply;
use serde_json::json;

use crate::support::{Household, eventually, set_provider};

const T: Duration = Duration::from_secs(20);
const PASSWORD: &str = "correct-horse-battery-staple";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_finds_the_wifi_password_the_admin_dropped_into_kb() {
    let h = Household::new(1).await;
    set_provider(&h.gateway, &h.llm, ProviderKind::Openai).await;
    let kb = h.dir.path().join("kb");
    assert!(kb.join("README.txt").is_file(), "the gateway explains the folder");
    assert_eq!(std::fs::metadata(&kb).unwrap().permissions().mode() & 0o777, 0o700, "kb/ is the gateway's");

    // The admin drops the file in while the gateway runs: indexed within a second.
    std::fs::write(kb.join("wifi.md"), format!("# Wifi\n\nNetwork: Hearth-Home\nPassword: {PASSWORD}\n")).unwrap();
    let index = rusqlite::Connection::open(h.dir.path().join("kb.sqlite")).unwrap();
    eventually(Duration::from_secs(1), "wifi.md indexed", async || {
        let n: i64 = index
            .query_row(
                "SELECT count(*) FROM kb_chunks WHERE path = 'wifi.md' AND body LIKE ?1",
                [format!("%{PASSWORD}%")],
                |r| r.get(0),
            )
            .ok()?;
        (n == 1).then_some(())
    })
    .await;

    h.llm.push_reply(Reply::tool_call("search_household_knowledge", json!({ "query": "wifi password" })));
    h.llm.push_reply(Reply::text(format!("The wifi password is {PASSWORD}.")));
    h.say(0, "What's the wifi password?");
    assert_eq!(h.replies(0, 2, T).await[1].text, format!("The wifi password is {PASSWORD}."));

    let calls = h.llm.calls();
    assert_eq!(calls.len(), 2);
    assert!(calls[0].tool_names().iter().any(|t| t == "search_household_knowledge"));
    assert!(!calls[0].body.to_string().contains(PASSWORD), "nothing from kb/ before the model asks");
    let results = calls[1].tool_results();
    assert_eq!(results.len(), 1);
    assert!(results[0].1.contains("[wifi.md — Wifi]") && results[0].1.contains(PASSWORD), "{results:?}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_is_not_offered_file_writing_and_a_forced_call_is_refused() {
    let h = Household::new(1).await;
    set_provider(&h.gateway, &h.llm, ProviderKind::Openai).await;
    let member = h.members[0].id.clone();
    let files = h.dir.path().join("members").join(&member).join("files");
    let role =
        |role| ControlRequest::MemberUpdate { member: member.clone(), role: Some(role), persona: None, model: None };
    h.gateway.control(role(Role::Child)).await.unwrap();
    // Made a child, the member gets a child's quiet hours; this test is about tools, at any hour.
    h.gateway.control(ControlRequest::MemberQuietHours { member: member.clone(), quiet_hours: None }).await.unwrap();

    // The model calls write_file anyway (as if told about it in a message).
    h.llm.push_reply(Reply::tool_call("write_file", json!({ "name": "secret.txt", "content": "hi" })));
    h.llm.push_reply(Reply::text("I can't save notes, but I can remember things for you!"));
    h.say(0, "Save a note for me");
    h.replies(0, 2, T).await;
    let calls = h.llm.calls();
    let offered = calls[0].tool_names();
    // A message about notes is offered the file tools a child may have (reading), never writing.
    for tool in ["remember", "list_files", "read_file"] {
        assert!(offered.iter().any(|t| t == tool), "{tool} missing from {offered:?}");
    }
    assert!(!offered.iter().any(|t| t == "write_file" || t == "delete_file"), "{offered:?}");
    let results = calls[1].tool_results();
    assert!(results[0].1.contains("not available to this member"), "{results:?}");
    assert!(!files.join("secret.txt").exists(), "the refused call was not run");

    // The same call for an adult writes the note into the member's own files/, 0600.
    h.gateway.control(role(Role::Adult)).await.unwrap();
    h.llm.push_reply(Reply::tool_call("write_file", json!({ "name": "shopping.txt", "content": "milk\neggs\n" })));
    h.llm.push_reply(Reply::text("Saved your shopping list."));
    h.say(0, "Note: milk, eggs");
    h.replies(0, 3, T).await;
    let calls = h.llm.calls();
    assert!(calls[2].tool_names().iter().any(|t| t == "write_file"));
    assert_eq!(calls[3].tool_results()[0].1, "Saved shopping.txt (10 bytes).");
    assert_eq!(std::fs::read_to_string(files.join("shopping.txt")).unwrap(), "milk\neggs\n");
    assert_eq!(std::fs::metadata(files.join("shopping.txt")).unwrap().permissions().mode() & 0o777, 0o600);
    h.stop().await;
}
