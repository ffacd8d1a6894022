//! Waiting on a model costs no turn slot (issue 16): the turn cap bounds the turns doing work,
//! not those waiting on their provider, so a fan-out wider than the cap waits on its models
//! together instead of in waves; and the admin's bound on provider connections holds the calls
//! open at once, however many members wait.

use std::time::{Duration, Instant};

use hearth_proto::control::{ControlRequest, ErrorCode, ProviderConnections};

use crate::support::Household;

const T: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_wider_than_the_cap_is_answered_in_about_one_model_time() {
    let mut h = Household::with(0, |c| c.turn_cap = 4).await;
    let members = 12;
    for i in 0..members {
        h.add_and_pair(&format!("Member{i}")).await;
    }
    // Every worker started and answered once: a cold start is not what is measured here.
    for i in 0..members {
        h.say(i, "hello");
    }
    for i in 0..members {
        h.replies(i, 2, T).await;
    }
    h.settled().await;

    let model_time = Duration::from_secs(1);
    h.llm.set_latency(model_time);
    let start = Instant::now();
    for i in 0..members {
        h.say(i, &format!("question {i}"));
    }
    let mut slowest = Duration::ZERO;
    for i in 0..members {
        let sent = h.replies(i, 3, T).await;
        assert_eq!(sent[2].text, format!("You said: question {i}"));
        slowest = slowest.max(sent[2].at.duration_since(start));
    }
    // In waves of four this takes three model times (3 s and more); together, one and a little.
    eprintln!("12 members, cap 4, a 1 s model: the last reply after {slowest:?}");
    assert!(slowest < model_time * 2, "the last reply came after {slowest:?}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_connection_bound_holds_and_every_member_is_answered() {
    let mut h = Household::new(0).await;
    let members = 6;
    for i in 0..members {
        h.add_and_pair(&format!("Member{i}")).await;
    }
    for i in 0..members {
        h.say(i, "hello");
    }
    for i in 0..members {
        h.replies(i, 2, T).await;
    }
    h.settled().await;
    assert_eq!(connections(&h).await, Some(ProviderConnections { open: 0, max: 256 }), "the default");

    // As `hearth provider connections 2` asks; out of range is refused.
    let refused = h.gateway.control(ControlRequest::ProviderConnections { max: 0 }).await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::InvalidInput, "{refused:?}");
    h.gateway.control(ControlRequest::ProviderConnections { max: 2 }).await.unwrap();
    assert_eq!(connections(&h).await, Some(ProviderConnections { open: 0, max: 2 }));
    let stored: String = h
        .db()
        .query_row("SELECT value FROM settings WHERE key = 'provider.max_connections'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, "2");

    let model_time = Duration::from_secs(1);
    h.llm.set_latency(model_time);
    h.llm.reset_peak_in_flight();
    let start = Instant::now();
    for i in 0..members {
        h.say(i, &format!("question {i}"));
    }
    // While they wait: two calls open at the provider, and the status says so.
    let open = crate::support::eventually(T, "two calls open", async || {
        let open = connections(&h).await.map(|c| c.open);
        (open == Some(2)).then_some(open)
    })
    .await;
    assert_eq!(open, Some(2));
    let mut slowest = Duration::ZERO;
    for i in 0..members {
        let sent = h.replies(i, 3, T).await;
        assert_eq!(sent[2].text, format!("You said: question {i}"));
        slowest = slowest.max(sent[2].at.duration_since(start));
    }
    h.settled().await;
    assert_eq!(h.llm.peak_in_flight(), 2, "never more than two calls at the model at once");
    // Six calls two at a time: three model times, every one answered.
    assert!(slowest >= model_time * 3 - Duration::from_millis(50), "the last reply came after {slowest:?}");
    eprintln!("6 members, 2 connections, a 1 s model: the last reply after {slowest:?}");
    assert_eq!(connections(&h).await, Some(ProviderConnections { open: 0, max: 2 }));
    h.stop().await;
}

/// The status's provider connections.
async fn connections(h: &Household) -> Option<ProviderConnections> {
    h.status().await.provider_connections
}
