//! Waiting on a model costs no turn slot (issue 16): the turn cap bounds the turns doing work,
//! not those waiting on their provider, so a fan-out wider than the cap waits on its models
//! together instead of in waves.

use std::time::{Duration, Instant};

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
