//! Single attempts that go wrong: each fault maps to the right error, within its time limit,
//! and no error carries the key.

use std::time::{Duration, Instant};

use hearth_llm::{CallLimits, complete};
use hearth_testkit::llm::{FakeLlm, Fault, Rule};

use super::*;

#[tokio::test]
async fn wrong_key_is_401_and_never_echoed() {
    let fake = FakeLlm::start().await;
    fake.require_api_key("sk-the-right-one");
    let http = http();
    for p in all_providers(&fake) {
        // The fake's OpenAI 401 echoes the key it got, as OpenAI does (masked) — ours must be scrubbed.
        let e = no_key(complete(&http, &p, &request("hi"), &limits()).await.unwrap_err());
        assert!(matches!(e, LlmError::Status { status: 401, .. }), "{p:?}: {e:?}");
        assert!(!e.is_retryable());
    }
    assert!(format!("{:?}", provider(&fake, ProviderKind::Openai, false)).contains("<redacted>"));
    assert!(!format!("{:?}", provider(&fake, ProviderKind::Openai, false)).contains(KEY));
}

#[tokio::test]
async fn hang_hits_the_first_byte_limit() {
    let fake = FakeLlm::start().await;
    fake.add_rule(Rule::matching("").fault(Fault::Hang));
    let limits = CallLimits { first_byte: Duration::from_millis(300), ..limits() };
    let http = http();
    for p in all_providers(&fake) {
        let started = Instant::now();
        let e = no_key(complete(&http, &p, &request("hi"), &limits).await.unwrap_err());
        let took = started.elapsed();
        assert_eq!(e, LlmError::Timeout { phase: "first_byte" }, "{p:?}");
        assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(2), "{took:?}");
    }
}

#[tokio::test]
async fn silent_stream_hits_the_idle_limit_and_slow_everything_the_total_limit() {
    let fake = FakeLlm::start().await;
    fake.set_stream_chunk_delay(Duration::from_millis(400));
    let http = http();
    let idle = CallLimits { idle: Duration::from_millis(150), ..limits() };
    for kind in BOTH {
        let e = no_key(complete(&http, &provider(&fake, kind, true), &request("hi"), &idle).await.unwrap_err());
        assert_eq!(e, LlmError::Timeout { phase: "idle" }, "{kind:?}");
    }
    let total = CallLimits { total: Duration::from_millis(500), ..limits() };
    let started = Instant::now();
    let e = complete(&http, &provider(&fake, ProviderKind::Anthropic, true), &request("hi"), &total).await.unwrap_err();
    assert_eq!(e, LlmError::Timeout { phase: "total" });
    // The whole stream would take ~2.4 s; the total limit cuts it at 0.5 s.
    assert!(started.elapsed() < Duration::from_millis(1500));
    assert!(e.is_retryable());
}

#[tokio::test]
async fn truncated_answers_are_malformed() {
    let fake = FakeLlm::start().await;
    fake.add_rule(Rule::matching("").fault(Fault::Truncated));
    let http = http();
    for p in all_providers(&fake) {
        let e = no_key(complete(&http, &p, &request("hi"), &limits()).await.unwrap_err());
        assert!(matches!(e, LlmError::Malformed(_)), "{p:?}: {e:?}");
        assert!(!e.is_retryable());
        if p.stream {
            assert_eq!(e, LlmError::Malformed("stream ended early".to_owned()));
        }
    }
}

#[tokio::test]
async fn malformed_answers_are_malformed() {
    let fake = FakeLlm::start().await;
    fake.add_rule(Rule::matching("").fault(Fault::Malformed));
    let http = http();
    for p in all_providers(&fake) {
        let e = no_key(complete(&http, &p, &request("hi"), &limits()).await.unwrap_err());
        assert!(matches!(e, LlmError::Malformed(_)), "{p:?}: {e:?}");
    }
}

#[tokio::test]
async fn error_statuses_carry_message_and_retry_after() {
    let fake = FakeLlm::start().await;
    fake.add_rule(Rule::matching("").fault(Fault::Status { code: 429, retry_after_secs: Some(7) }));
    let http = http();
    for p in all_providers(&fake) {
        let e = no_key(complete(&http, &p, &request("hi"), &limits()).await.unwrap_err());
        match &e {
            LlmError::Status { status: 429, retry_after: Some(d), message } => {
                assert_eq!(*d, Duration::from_secs(7));
                assert!(message.contains("Rate limit"), "{message}");
            }
            other => panic!("{p:?}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn refused_connection_is_a_network_error() {
    // Bind, note the port, close: nothing listens there any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let p = Provider {
        kind: ProviderKind::Openai,
        base_url: format!("http://127.0.0.1:{port}/v1?key={KEY}"),
        model: "m".into(),
        api_key: ApiKey::new(KEY),
        stream: false,
    };
    let e = no_key(complete(&http(), &p, &request("hi"), &limits()).await.unwrap_err());
    assert!(matches!(e, LlmError::Network(_)), "{e:?}");
    assert!(e.is_retryable());
}

#[tokio::test]
async fn bad_settings_are_config_errors() {
    let fake = FakeLlm::start().await;
    let mut p = provider(&fake, ProviderKind::Openai, false);
    p.api_key = ApiKey::new(format!("{KEY}\nx"));
    let e = no_key(complete(&http(), &p, &request("hi"), &limits()).await.unwrap_err());
    assert!(matches!(e, LlmError::Config(_)), "{e:?}");
    p.base_url = "ftp://example".into();
    assert!(matches!(complete(&http(), &p, &request("hi"), &limits()).await, Err(LlmError::Config(_))));
    assert!(fake.calls().is_empty());
}

/// A provider that answers with a redirect — to another host that records what it receives —
/// is not followed: the key never reaches the other host, the answer is a clear error naming
/// both addresses, and it is not retried. A client that follows redirects would have handed
/// Anthropic's `x-api-key` over (reqwest strips only `Authorization`), so the recording host
/// can see a leak.
#[tokio::test]
async fn a_redirect_is_an_error_and_the_key_never_follows_it() {
    let provider_host = FakeLlm::start().await;
    let elsewhere = FakeLlm::start().await;
    for (kind, path) in [(ProviderKind::Openai, "chat/completions"), (ProviderKind::Anthropic, "messages")] {
        for code in [301, 302, 307, 308] {
            provider_host.add_rule(
                Rule::matching("")
                    .times(1)
                    .fault(Fault::Redirect { code, location: format!("{}/{path}", elsewhere.base_url()) }),
            );
            let before = provider_host.calls().len();
            let p = provider(&provider_host, kind, false);
            let e =
                hearth_llm::complete_with_retry(&http(), &p, &request("hi"), &limits(), &fast_retries(), &mut |_| {})
                    .await
                    .unwrap_err();
            let e = no_key(e);
            let LlmError::Redirected { status, ref url, ref location } = e else { panic!("{kind:?} {code}: {e:?}") };
            assert_eq!(status, code);
            assert!(url.starts_with(&provider_host.base_url()), "{url}");
            assert!(location.starts_with(&elsewhere.base_url()), "{location}");
            let shown = e.to_string();
            assert!(shown.contains(&provider_host.base_url()) && shown.contains("redirect"), "{shown}");
            assert_eq!(provider_host.calls().len(), before + 1, "{kind:?} {code}: retried");
        }
    }
    assert!(elsewhere.calls().is_empty(), "the redirect was followed: {:?}", elsewhere.calls());

    // The same redirect through a client that follows it: the key arrives elsewhere.
    provider_host.add_rule(
        Rule::matching("")
            .times(1)
            .fault(Fault::Redirect { code: 307, location: format!("{}/messages", elsewhere.base_url()) }),
    );
    let following = reqwest::Client::new();
    let _ = complete(&following, &provider(&provider_host, ProviderKind::Anthropic, false), &request("hi"), &limits())
        .await;
    let leaked = elsewhere.calls();
    assert_eq!(leaked.len(), 1);
    assert_eq!(leaked[0].api_key.as_deref(), Some(KEY), "this test could not see a leak");
}
