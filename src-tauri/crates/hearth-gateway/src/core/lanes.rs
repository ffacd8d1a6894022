//! Lanes: one FIFO per member, and a fair scheduler over them.
//!
//! - Each member has at most one turn running. Messages that arrive meanwhile wait in the lane
//!   and are collected into the member's next turn ("collect" mode), so a member who sends three
//!   quick messages gets one considered answer, not three.
//! - A member whose lane has work and no running turn is "ready". Ready members get turns in the
//!   order they became ready (round-robin): a chatty member cannot starve a quiet one.
//! - At most `turn_cap` turns do work at once across the household. A turn waiting on its
//!   provider does none (the wait is remote), so it gives its slot back for the wait
//!   ([`Lanes::wait_on_provider`]) and takes one again before it goes on
//!   ([`Lanes::back_from_provider`]); turns coming back are served before new ones, in the order
//!   they came back. So a fan-out wider than the cap waits on its models together, not in waves.
//! - A lane holds at most `queue_cap` waiting messages; beyond that `push` says `Full` and the
//!   caller tells the member to slow down.
//! - A lane can be held ([`Lanes::hold`]): it keeps its entries and starts no turn until it is
//!   let go — the few seconds an album's parts take to arrive, so they are one turn.
//!
//! Pure state: no I/O, no clocks except the `Instant`s passed in, so it is tested exhaustively.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use hearth_proto::control::{LaneState, TurnActivity};

/// What lanes need to know about an entry.
pub trait LaneEntry {
    /// An entry that must be a turn of its own (`/new`): it is not collected with messages
    /// before or after it.
    fn stands_alone(&self) -> bool;
}

#[derive(Debug, PartialEq, Eq)]
pub enum Push {
    Queued,
    Full,
}

#[derive(Debug)]
struct Lane<T> {
    queue: VecDeque<T>,
    running_since: Option<Instant>,
    ready: bool,
    /// Waiting for more of an album: no turn starts until [`Lanes::hold`] lets go.
    held: bool,
    /// What the running turn does now, for the dashboard.
    doing: TurnActivity,
    /// The running turn waits on its provider and holds no slot.
    waiting: bool,
}

impl<T> Default for Lane<T> {
    fn default() -> Self {
        Self {
            queue: VecDeque::new(),
            running_since: None,
            ready: false,
            held: false,
            doing: TurnActivity::Thinking,
            waiting: false,
        }
    }
}

#[derive(Debug)]
pub struct Lanes<T> {
    lanes: HashMap<String, Lane<T>>,
    ready: VecDeque<String>,
    /// Turns back from their provider, waiting for a slot, in the order they came back.
    resuming: VecDeque<String>,
    in_flight: usize,
    turn_cap: usize,
    queue_cap: usize,
}

impl<T: LaneEntry> Lanes<T> {
    pub fn new(turn_cap: usize, queue_cap: usize) -> Self {
        Self {
            lanes: HashMap::new(),
            ready: VecDeque::new(),
            resuming: VecDeque::new(),
            in_flight: 0,
            turn_cap: turn_cap.max(1),
            queue_cap: queue_cap.max(1),
        }
    }

    pub fn push(&mut self, member: &str, entry: T) -> Push {
        let lane = self.lanes.entry(member.to_owned()).or_default();
        if lane.queue.len() >= self.queue_cap {
            return Push::Full;
        }
        lane.queue.push_back(entry);
        if lane.running_since.is_none() && !lane.ready {
            lane.ready = true;
            self.ready.push_back(member.to_owned());
        }
        Push::Queued
    }

    /// The next turn to run, if a slot is free and someone is ready: the member and every entry
    /// collected into the turn, oldest first.
    pub fn next_turn(&mut self, now: Instant) -> Option<(String, Vec<T>)> {
        if self.in_flight >= self.turn_cap || !self.resuming.is_empty() {
            return None;
        }
        while let Some(member) = self.ready.pop_front() {
            let Some(lane) = self.lanes.get_mut(&member) else { continue };
            lane.ready = false;
            // A held lane becomes ready again when it is let go.
            if lane.queue.is_empty() || lane.running_since.is_some() || lane.held {
                continue;
            }
            let mut batch = Vec::new();
            if lane.queue.front().is_some_and(|e| e.stands_alone()) {
                batch.extend(lane.queue.pop_front());
            } else {
                while lane.queue.front().is_some_and(|e| !e.stands_alone()) {
                    batch.extend(lane.queue.pop_front());
                }
            }
            lane.running_since = Some(now);
            lane.doing = TurnActivity::Thinking;
            self.in_flight += 1;
            return Some((member, batch));
        }
        None
    }

    /// The member's turn ended; if more waited meanwhile they become ready again (at the back).
    pub fn finish(&mut self, member: &str) {
        let Some(lane) = self.lanes.get_mut(member) else { return };
        if lane.running_since.take().is_some() && !std::mem::take(&mut lane.waiting) {
            self.in_flight -= 1;
        }
        self.resuming.retain(|m| m != member);
        if !lane.queue.is_empty() && !lane.ready {
            lane.ready = true;
            self.ready.push_back(member.to_owned());
        } else if lane.queue.is_empty() && !lane.held {
            self.lanes.remove(member);
        }
    }

    /// The member's running turn now waits on its provider: its slot is free for another turn.
    pub fn wait_on_provider(&mut self, member: &str) {
        let Some(lane) = self.lanes.get_mut(member) else { return };
        if lane.running_since.is_some() && !lane.waiting {
            lane.waiting = true;
            self.in_flight -= 1;
        }
    }

    /// The member's turn is back from its provider: true when it may go on now (it holds a slot
    /// again, or it never gave one up); false when it must wait for [`Lanes::next_resumed`].
    pub fn back_from_provider(&mut self, member: &str) -> bool {
        let Some(lane) = self.lanes.get_mut(member).filter(|l| l.running_since.is_some() && l.waiting) else {
            return true;
        };
        if self.in_flight < self.turn_cap && self.resuming.is_empty() {
            lane.waiting = false;
            self.in_flight += 1;
            return true;
        }
        if !self.resuming.iter().any(|m| m == member) {
            self.resuming.push_back(member.to_owned());
        }
        false
    }

    /// A turn back from its provider that may go on now it has a slot again, oldest first;
    /// served before any new turn.
    pub fn next_resumed(&mut self) -> Option<String> {
        while self.in_flight < self.turn_cap {
            let member = self.resuming.pop_front()?;
            let Some(lane) = self.lanes.get_mut(&member).filter(|l| l.running_since.is_some() && l.waiting) else {
                continue;
            };
            lane.waiting = false;
            self.in_flight += 1;
            return Some(member);
        }
        None
    }

    /// Puts the entries of a turn that could not run (it panicked) back at the front of the
    /// member's lane, ahead of anything that arrived meanwhile and in their old order. They were
    /// admitted once, so the queue cap does not turn them away.
    pub fn requeue(&mut self, member: &str, entries: Vec<T>) {
        if entries.is_empty() {
            return;
        }
        let lane = self.lanes.entry(member.to_owned()).or_default();
        for entry in entries.into_iter().rev() {
            lane.queue.push_front(entry);
        }
        if lane.running_since.is_none() && !lane.ready {
            lane.ready = true;
            self.ready.push_back(member.to_owned());
        }
    }

    /// What the member's running turn does now (listening to a voice note, looking at photos);
    /// ignored when no turn runs.
    pub fn set_doing(&mut self, member: &str, doing: TurnActivity) {
        if let Some(lane) = self.lanes.get_mut(member).filter(|l| l.running_since.is_some()) {
            lane.doing = doing;
        }
    }

    /// Holds a member's lane (`true`: no turn starts from it) or lets it go (`false`: it is
    /// ready again if anything waits and no turn runs).
    pub fn hold(&mut self, member: &str, held: bool) {
        if !held && !self.lanes.contains_key(member) {
            return;
        }
        let lane = self.lanes.entry(member.to_owned()).or_default();
        lane.held = held;
        if !held && !lane.queue.is_empty() && lane.running_since.is_none() && !lane.ready {
            lane.ready = true;
            self.ready.push_back(member.to_owned());
        }
    }

    /// Forgets a member's waiting entries (the member was removed or paused) and returns them so
    /// the caller can close them. A running turn still counts until `finish`.
    pub fn drain(&mut self, member: &str) -> Vec<T> {
        match self.lanes.get_mut(member) {
            Some(lane) => lane.queue.drain(..).collect(),
            None => Vec::new(),
        }
    }

    pub fn state(&self, member: &str, now: Instant) -> LaneState {
        match self.lanes.get(member) {
            None => LaneState::Idle,
            Some(lane) => {
                let queued = lane.queue.len() as u32;
                match lane.running_since {
                    Some(since) => LaneState::Running {
                        secs: now.saturating_duration_since(since).as_secs(),
                        queued,
                        doing: lane.doing,
                    },
                    None if queued > 0 => LaneState::Queued { messages: queued },
                    None => LaneState::Idle,
                }
            }
        }
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    pub fn turn_cap(&self) -> usize {
        self.turn_cap
    }

    /// Changes the cap from now on. Raising it lets waiting members start at the next
    /// `next_turn`; lowering it lets running turns finish and starts no new one until fewer run.
    pub fn set_turn_cap(&mut self, cap: usize) {
        self.turn_cap = cap.max(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Eq)]
    enum E {
        Msg(&'static str),
        New,
    }
    impl LaneEntry for E {
        fn stands_alone(&self) -> bool {
            matches!(self, E::New)
        }
    }

    fn now() -> Instant {
        Instant::now()
    }

    #[test]
    fn a_turn_waiting_on_its_provider_holds_no_slot_and_comes_back_first() {
        let mut l = Lanes::new(1, 20);
        for m in ["ana", "ben", "cy"] {
            l.push(m, E::Msg("hi"));
        }
        let (ana, _) = l.next_turn(now()).unwrap();
        assert!(l.next_turn(now()).is_none(), "the cap is one");
        l.wait_on_provider(&ana);
        let (ben, _) = l.next_turn(now()).unwrap();
        assert_eq!(ben, "ben", "the wait freed the slot");
        assert!(!l.back_from_provider(&ana), "ben works: ana waits for the slot");
        assert!(l.next_resumed().is_none());
        l.wait_on_provider(&ben);
        assert_eq!(l.next_resumed().as_deref(), Some("ana"), "back from the provider before anyone new");
        assert!(l.next_turn(now()).is_none(), "cy waits: ana holds the slot");
        l.finish(&ana);
        let (cy, _) = l.next_turn(now()).unwrap();
        assert_eq!(cy, "cy");
        // A turn that ends while waiting gives back nothing twice.
        l.finish(&ben);
        assert_eq!(l.in_flight(), 1);
        l.finish(&cy);
        assert_eq!(l.in_flight(), 0);
        assert!(l.back_from_provider("nobody"), "no turn: nothing to wait for");
    }

    #[test]
    fn messages_during_a_turn_are_collected_into_the_next() {
        let mut l = Lanes::new(8, 20);
        l.push("ana", E::Msg("a"));
        let (m, batch) = l.next_turn(now()).unwrap();
        assert_eq!((m.as_str(), batch), ("ana", vec![E::Msg("a")]));
        l.push("ana", E::Msg("b"));
        l.push("ana", E::Msg("c"));
        assert!(l.next_turn(now()).is_none(), "one turn per member at a time");
        assert!(matches!(l.state("ana", now()), LaneState::Running { queued: 2, .. }));
        l.finish("ana");
        let (_, batch) = l.next_turn(now()).unwrap();
        assert_eq!(batch, vec![E::Msg("b"), E::Msg("c")]);
        l.finish("ana");
        assert_eq!(l.state("ana", now()), LaneState::Idle);
        assert_eq!(l.in_flight(), 0);
    }

    #[test]
    fn a_requeued_turn_goes_first_and_comes_back_whole() {
        let mut l = Lanes::new(8, 2);
        l.push("ana", E::Msg("a"));
        l.push("ana", E::Msg("b"));
        let (_, batch) = l.next_turn(now()).unwrap();
        l.push("ana", E::Msg("c"));
        l.push("ana", E::Msg("d"));
        assert_eq!(l.push("ana", E::Msg("e")), Push::Full);
        // The turn panicked: its entries go back ahead of what came meanwhile, cap or not.
        l.finish("ana");
        l.requeue("ana", batch);
        assert_eq!(l.state("ana", now()), LaneState::Queued { messages: 4 });
        let (_, again) = l.next_turn(now()).unwrap();
        assert_eq!(again, vec![E::Msg("a"), E::Msg("b"), E::Msg("c"), E::Msg("d")]);
        assert_eq!(l.in_flight(), 1);
        l.finish("ana");
        // Requeued for a member with nothing else waiting: ready again.
        l.requeue("bo", vec![E::New]);
        assert_eq!(l.next_turn(now()), Some(("bo".to_owned(), vec![E::New])));
        l.requeue("bo", Vec::new());
        l.finish("bo");
        assert_eq!(l.state("bo", now()), LaneState::Idle);
    }

    #[test]
    fn a_held_lane_waits_for_the_rest_of_an_album_and_then_is_one_turn() {
        let mut l = Lanes::new(8, 20);
        l.push("ana", E::Msg("photo 1"));
        l.hold("ana", true);
        l.push("bo", E::Msg("hi"));
        assert_eq!(l.next_turn(now()).map(|t| t.0), Some("bo".to_owned()), "others go on");
        assert!(l.next_turn(now()).is_none(), "ana is held");
        l.push("ana", E::Msg("photo 2"));
        l.push("ana", E::Msg("photo 3"));
        assert!(l.next_turn(now()).is_none());
        assert_eq!(l.state("ana", now()), LaneState::Queued { messages: 3 });
        l.hold("ana", false);
        let (m, batch) = l.next_turn(now()).unwrap();
        assert_eq!((m.as_str(), batch.len()), ("ana", 3));
        // Held while a turn runs: the turn ends, and the next waits until let go.
        l.push("ana", E::Msg("photo 4"));
        l.hold("ana", true);
        l.finish("ana");
        assert!(l.next_turn(now()).is_none());
        l.hold("ana", false);
        assert_eq!(l.next_turn(now()).unwrap().1, vec![E::Msg("photo 4")]);
        l.set_doing("ana", TurnActivity::Looking);
        assert!(matches!(l.state("ana", now()), LaneState::Running { doing: TurnActivity::Looking, .. }));
        l.finish("ana");
        l.set_doing("ana", TurnActivity::Listening);
        assert_eq!(l.state("ana", now()), LaneState::Idle, "no turn, nothing to show");
        l.hold("nobody", false);
        assert_eq!(l.state("nobody", now()), LaneState::Idle);
    }

    #[test]
    fn new_conversation_is_a_turn_of_its_own() {
        let mut l = Lanes::new(8, 20);
        for e in [E::Msg("a"), E::New, E::Msg("b")] {
            l.push("ana", e);
        }
        let mut turns = Vec::new();
        while let Some((_, batch)) = l.next_turn(now()) {
            turns.push(batch);
            l.finish("ana");
        }
        assert_eq!(turns, vec![vec![E::Msg("a")], vec![E::New], vec![E::Msg("b")]]);
    }

    #[test]
    fn round_robin_under_the_global_cap() {
        let mut l = Lanes::new(2, 20);
        for m in ["a", "b", "c", "d"] {
            l.push(m, E::Msg("x"));
        }
        let t1 = l.next_turn(now()).unwrap().0;
        let t2 = l.next_turn(now()).unwrap().0;
        assert_eq!((t1.as_str(), t2.as_str()), ("a", "b"));
        assert!(l.next_turn(now()).is_none(), "cap reached");
        // "a" is chatty: it writes again, but c and d were ready first.
        l.push("a", E::Msg("y"));
        l.finish("a");
        assert_eq!(l.next_turn(now()).unwrap().0, "c");
        l.finish("b");
        assert_eq!(l.next_turn(now()).unwrap().0, "d");
        l.finish("c");
        assert_eq!(l.next_turn(now()).unwrap().0, "a");
        assert_eq!(l.in_flight(), 2);
    }

    #[test]
    fn queue_cap_refuses_beyond_the_limit() {
        let mut l = Lanes::new(8, 3);
        l.push("a", E::Msg("1"));
        l.next_turn(now()).unwrap();
        for _ in 0..3 {
            assert_eq!(l.push("a", E::Msg("w")), Push::Queued);
        }
        assert_eq!(l.push("a", E::Msg("over")), Push::Full);
        assert_eq!(l.push("b", E::Msg("other member unaffected")), Push::Queued);
    }

    #[test]
    fn drain_forgets_waiting_entries() {
        let mut l = Lanes::new(8, 20);
        l.push("a", E::Msg("1"));
        l.next_turn(now()).unwrap();
        l.push("a", E::Msg("2"));
        assert_eq!(l.drain("a"), vec![E::Msg("2")]);
        l.finish("a");
        assert!(l.next_turn(now()).is_none());
        assert_eq!(l.in_flight(), 0);
    }

    #[test]
    fn changing_the_cap_takes_effect_at_once() {
        let mut l = Lanes::new(1, 20);
        for m in ["a", "b", "c"] {
            l.push(m, E::Msg("x"));
        }
        assert_eq!(l.next_turn(now()).unwrap().0, "a");
        assert!(l.next_turn(now()).is_none());
        l.set_turn_cap(3);
        assert_eq!(l.next_turn(now()).unwrap().0, "b");
        assert_eq!(l.next_turn(now()).unwrap().0, "c");
        l.set_turn_cap(1);
        l.push("a", E::Msg("y"));
        l.finish("a");
        assert!(l.next_turn(now()).is_none(), "three running, cap one: nothing new starts");
        l.finish("b");
        l.finish("c");
        assert_eq!(l.next_turn(now()).unwrap().0, "a");
        l.set_turn_cap(0);
        assert_eq!(l.turn_cap(), 1, "never below one");
    }

    impl LaneEntry for (u8, usize) {
        fn stands_alone(&self) -> bool {
            false
        }
    }

    proptest::proptest! {
        /// Whatever the interleaving of pushes and finishes: the cap holds, every entry is handed
        /// out exactly once and in order per member, and nothing is left behind.
        #[test]
        fn scheduler_invariants(ops in proptest::collection::vec((0u8..4, proptest::bool::ANY), 1..200), cap in 1usize..4) {
            let mut l: Lanes<(u8, usize)> = Lanes::new(cap, 1000);
            let mut running: Vec<String> = Vec::new();
            let mut seen: HashMap<u8, Vec<usize>> = HashMap::new();
            let mut pushed = 0usize;
            for (member, finish) in ops {
                if finish && !running.is_empty() {
                    let m = running.remove(0);
                    l.finish(&m);
                } else {
                    l.push(&member.to_string(), (member, pushed));
                    pushed += 1;
                }
                while let Some((m, batch)) = l.next_turn(now()) {
                    proptest::prop_assert!(!running.contains(&m));
                    running.push(m);
                    for (mm, n) in batch { seen.entry(mm).or_default().push(n); }
                }
                proptest::prop_assert!(l.in_flight() <= cap);
                proptest::prop_assert_eq!(l.in_flight(), running.len());
            }
            while let Some(m) = running.pop() {
                l.finish(&m);
                while let Some((m, batch)) = l.next_turn(now()) {
                    running.push(m);
                    for (mm, n) in batch { seen.entry(mm).or_default().push(n); }
                }
            }
            let total: usize = seen.values().map(Vec::len).sum();
            proptest::prop_assert_eq!(total, pushed);
            for v in seen.values() {
                proptest::prop_assert!(v.windows(2).all(|w| w[0] < w[1]));
            }
        }
    }
}
