//! The broker under load: caps hold exactly with hundreds of calls in flight, and what is
//! charged is exactly the provider's reported usage at the rate card's price.

use std::sync::Arc;
use std::time::Duration;

use hearth_gateway::broker::{self, Broker, SpendEvent};
use hearth_gateway::spend::{self, Price, Scope};
use hearth_gateway::store::{self, Store};
use hearth_llm::{CallLimits, RetryPolicy};
use hearth_proto::control::ProviderKind;
use hearth_proto::llm::{BrokerErrorKind, ChatMessage, CompletionRequest};
use hearth_testkit::llm::FakeLlm;
use tokio::sync::mpsc;

struct Rig {
    _dir: tempfile::TempDir,
    store: Store,
    broker: Broker,
    llm: FakeLlm,
    events: mpsc::UnboundedReceiver<SpendEvent>,
}

async fn rig(kind: ProviderKind, stream: bool, price_usd_per_mtok: u64) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("g.sqlite")).unwrap();
    let micros = price_usd_per_mtok * 1_000_000;
    let spend = store
        .call_sync(move |c| {
            let price = store::StoredPrice {
                model: "test-model".into(),
                input: micros,
                output: micros,
                cached_input: micros / 2,
                cache_write: None,
            };
            store::set_price(c, &price, 0)?;
            broker::load_spend(c, chrono::Utc::now())
        })
        .unwrap();
    let llm = FakeLlm::start().await;
    let (tx, events) = mpsc::unbounded_channel();
    let limits = CallLimits {
        connect: Duration::from_secs(5),
        first_byte: Duration::from_secs(20),
        idle: Duration::from_secs(20),
        total: Duration::from_secs(30),
    };
    let retry = RetryPolicy { max_attempts: 1, ..RetryPolicy::default() };
    let broker = Broker::new(reqwest::Client::new(), store.clone(), limits, retry, stream, spend, tx);
    broker.set_provider(Some(broker::provider_from(kind, llm.base_url(), "test-model".into(), "k".into())));
    Rig { _dir: dir, store, broker, llm, events }
}

fn request(text: &str) -> CompletionRequest {
    CompletionRequest { system: "You are helpful.".into(), messages: vec![ChatMessage::user(text)], max_tokens: 50, tools: vec![] }
}

fn settled(store: &Store) -> (i64, i64, i64) {
    store
        .call_sync(|c| {
            Ok(c.query_row(
                "SELECT COALESCE(SUM(cost_micros), 0), COUNT(*) FILTER (WHERE state = 'settled'), COUNT(*) FILTER (WHERE state = 'reserved')
                 FROM ledger",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?)
        })
        .unwrap()
}

/// 300 calls at once from one member under a daily cap and a household cap (and 100 from a
/// second member sharing the household cap): nothing is ever charged past any cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_concurrent_calls_never_overshoot() {
    let mut r = rig(ProviderKind::Openai, true, 20).await;
    r.llm.set_latency(Duration::from_millis(50));
    r.broker.set_member_caps("ana", Some(50_000), None);
    r.broker.set_household_cap(Some(80_000));
    let broker = Arc::new(r.broker.clone());
    let mut tasks = Vec::new();
    for i in 0..400 {
        let b = broker.clone();
        let member = if i % 4 == 3 { "bo" } else { "ana" };
        tasks.push(tokio::spawn(async move { (member, b.complete(member, 1, request(&format!("question {i}"))).await) }));
    }
    let (mut ok, mut capped) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            (_, Ok(_)) => ok += 1,
            (_, Err(e)) if matches!(e.kind, BrokerErrorKind::CapExceeded { .. }) => capped += 1,
            (_, Err(e)) => panic!("unexpected error: {e}"),
        }
    }
    assert!(ok > 5 && capped > 100, "ok {ok}, capped {capped}: the caps were not exercised");
    let (cost, n_settled, still_reserved) = settled(&r.store);
    assert_eq!(n_settled, ok as i64);
    assert_eq!(still_reserved, 0, "every reservation was settled or released");
    assert!(cost <= 80_000, "household cap overshot: {cost}");
    let ana: i64 = r
        .store
        .call_sync(|c| Ok(c.query_row("SELECT COALESCE(SUM(cost_micros), 0) FROM ledger WHERE member_id = 'ana'", [], |r| r.get(0))?))
        .unwrap();
    assert!(ana <= 50_000, "member cap overshot: {ana}");
    // The budget agrees with the ledger to the micro-dollar.
    let now = chrono::Utc::now();
    let household = r.broker.spend(|s| s.budget.spent(&Scope::Household, spend::PeriodKind::Month, now));
    assert_eq!(household as i64, cost);
    // Refusals were reported for the gateway to act on.
    let mut hits = 0;
    while let Ok(e) = r.events.try_recv() {
        if matches!(e, SpendEvent::CapHit { .. }) {
            hits += 1;
        }
    }
    assert_eq!(hits, capped);
}

/// For both providers, streaming and not: the ledger holds exactly the usage the provider
/// reported, and the cost is exactly that usage at the rate card's price (cached tokens at the
/// cached price).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_and_cost_are_exact_for_every_format() {
    for kind in [ProviderKind::Openai, ProviderKind::Anthropic] {
        for stream in [false, true] {
            let r = rig(kind, stream, 10).await;
            r.llm.set_cached_input_tokens(4);
            let c = r.broker.complete("ana", 1, request("how much is this?")).await.unwrap();
            let call = &r.llm.calls()[0];
            assert_eq!(call.stream, stream);
            assert_eq!(c.usage.cached_input_tokens, 4, "{kind:?} {stream}");
            assert_eq!(c.usage.input_tokens + c.usage.cached_input_tokens, call.prompt_tokens(), "{kind:?} {stream}");
            let price = Price { input: 10_000_000, output: 10_000_000, cached_input: 5_000_000, cache_write: 12_500_000 };
            let expected = price.cost_micros(&c.usage);
            let (cost, _, _) = settled(&r.store);
            assert_eq!(cost as u64, expected, "{kind:?} {stream}");
            let (i, o, ci): (i64, i64, i64) = r
                .store
                .call_sync(|c| Ok(c.query_row("SELECT input_tokens, output_tokens, cached_input_tokens FROM ledger", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?))
                .unwrap();
            assert_eq!((i as u64, o as u64, ci as u64), (c.usage.input_tokens, c.usage.output_tokens, c.usage.cached_input_tokens));
        }
    }
}

/// Spend survives a restart: a new broker loaded from the same database starts from what was
/// already settled today, so a restart is no way around a cap.
/// Anthropic's cache reads and writes (the fake reports both) are each charged at their own price
/// and recorded in the ledger; the reservation is the uncached worst case, every prompt token at
/// the cache-write price, so a cap that would only cover it at the input price refuses the call.
/// OpenAI writes no cache it charges for: its reservation stays at the input price.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_reads_and_writes_are_charged_at_their_prices_and_reserved_as_uncached() {
    // $10 per million input and output, $5 cached, cache writes at the default 1.25 × input.
    let price = Price { input: 10_000_000, output: 10_000_000, cached_input: 5_000_000, cache_write: 12_500_000 };
    let r = rig(ProviderKind::Anthropic, false, 10).await;
    r.llm.set_cached_input_tokens(6);
    r.llm.set_cache_creation_input_tokens(4);
    let req = request("how much is this with a cache?");
    let c = r.broker.complete("ana", 1, req.clone()).await.unwrap();
    assert_eq!((c.usage.cached_input_tokens, c.usage.cache_write_tokens), (6, 4));
    assert_eq!(c.usage.input_tokens + 6 + 4, r.llm.calls()[0].prompt_tokens());
    // 10 micro-USD a token in and out, 5 a cached one, 12.5 a written one.
    let expected = 10 * (c.usage.input_tokens + c.usage.output_tokens) + 5 * 6 + 50;
    assert_eq!(price.cost_micros(&c.usage), expected);
    let row: (i64, i64, i64, i64) = r
        .store
        .call_sync(|c| {
            Ok(c.query_row("SELECT cost_micros, cached_input_tokens, cache_write_tokens, reserved_micros FROM ledger", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?)
        })
        .unwrap();
    let prompt = hearth_llm::estimate_prompt_tokens(&req);
    assert_eq!(row, (expected as i64, 6, 4, price.worst_case_micros(prompt, 50) as i64));
    assert_eq!(row.3 as u64, (prompt * 25).div_ceil(2) + 500, "every prompt token at the write price");

    // A cap between the two worst cases: Anthropic is refused, OpenAI answered.
    let cap = prompt * 11 + 500;
    let anthropic = rig(ProviderKind::Anthropic, false, 10).await;
    anthropic.broker.set_member_caps("ana", Some(cap), None);
    let refused = anthropic.broker.complete("ana", 1, req.clone()).await.unwrap_err();
    assert!(matches!(refused.kind, BrokerErrorKind::CapExceeded { .. }), "{refused:?}");
    assert!(anthropic.llm.calls().is_empty(), "no call without a reservation");
    let openai = rig(ProviderKind::Openai, false, 10).await;
    openai.broker.set_member_caps("ana", Some(cap), None);
    openai.broker.complete("ana", 1, req).await.unwrap();
    let reserved: i64 = openai
        .store
        .call_sync(|c| Ok(c.query_row("SELECT reserved_micros FROM ledger", [], |r| r.get(0))?))
        .unwrap();
    assert_eq!(reserved as u64, prompt * 10 + 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_remembers_what_was_spent() {
    let r = rig(ProviderKind::Openai, false, 20).await;
    r.broker.complete("ana", 1, request("first")).await.unwrap();
    let (cost, _, _) = settled(&r.store);
    assert!(cost > 0);
    let reloaded = r.store.call_sync(|c| broker::load_spend(c, chrono::Utc::now())).unwrap();
    let now = chrono::Utc::now();
    assert_eq!(reloaded.budget.spent(&Scope::Member("ana".into()), spend::PeriodKind::Day, now) as i64, cost);
    assert_eq!(reloaded.budget.spent(&Scope::Household, spend::PeriodKind::Month, now) as i64, cost);
}
