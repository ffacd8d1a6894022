//! The alert rules, on their own: raise, clear, hold back, limit.

use hearth_proto::control::AlertLevel;

use super::*;

const T0: i64 = 1_800_000_000;

/// Runs a row forward: applies `raise`/`clear` when they change it, then whatever is due.
struct Sim {
    row: Option<AlertRow>,
    told: Vec<(i64, Tell)>,
    one_off: bool,
}

impl Sim {
    fn new(one_off: bool) -> Sim {
        Sim { row: None, told: Vec::new(), one_off }
    }

    fn raise(&mut self, now: i64) {
        if let Some(r) = raise(self.row.as_ref(), "k", "d", now) {
            self.row = Some(r);
        }
        self.tick(now);
    }

    fn clear(&mut self, now: i64) {
        if let Some(r) = clear(self.row.as_ref(), None, now) {
            self.row = Some(r);
        }
        self.tick(now);
    }

    fn tick(&mut self, now: i64) {
        let Some(row) = &self.row else { return };
        if let Some((tell, next)) = due(row, self.one_off, now) {
            if tell != Tell::Nothing {
                self.told.push((now, tell));
            }
            self.row = Some(next);
        }
    }

    /// Every minute from `from` to `to`, as the task's timer would.
    fn run(&mut self, from: i64, to: i64) {
        for now in (from..=to).step_by(60) {
            self.tick(now);
        }
    }
}

#[test]
fn told_once_then_one_fixed_line_after_the_grace() {
    let mut s = Sim::new(false);
    s.raise(T0);
    s.raise(T0 + 5);
    s.run(T0, T0 + 600);
    assert_eq!(s.told, [(T0, Tell::Raised)]);
    s.clear(T0 + 700);
    assert_eq!(s.told.len(), 1, "the fixed line waits for the grace");
    assert_eq!(next_due(s.row.as_ref().unwrap()), Some(T0 + 700 + CLEAR_GRACE));
    s.run(T0 + 700, T0 + 2000);
    assert_eq!(s.told, [(T0, Tell::Raised), (T0 + 760, Tell::Fixed)]);
    s.clear(T0 + 3000);
    assert_eq!(s.told.len(), 2, "cleared once");
}

#[test]
fn back_before_the_fixed_line_is_the_same_episode() {
    let mut s = Sim::new(false);
    s.raise(T0);
    s.clear(T0 + 10);
    s.raise(T0 + 20);
    s.clear(T0 + 30);
    s.raise(T0 + 40);
    s.run(T0, T0 + 7200);
    assert_eq!(s.told, [(T0, Tell::Raised)], "a bot two programs fight over is one alert and no 'fixed' line");
}

#[test]
fn a_flapping_condition_is_told_at_most_once_an_hour() {
    let mut s = Sim::new(false);
    s.raise(T0);
    s.clear(T0 + 60);
    s.run(T0 + 60, T0 + 180); // fixed at T0+120
    assert_eq!(s.told, [(T0, Tell::Raised), (T0 + 120, Tell::Fixed)]);
    // Back 5 minutes after clearing: held until an hour after T0.
    s.raise(T0 + 360);
    assert_eq!(s.told.len(), 2);
    assert_eq!(next_due(s.row.as_ref().unwrap()), Some(T0 + HOLD));
    s.run(T0 + 360, T0 + HOLD - 60);
    assert_eq!(s.told.len(), 2);
    s.tick(T0 + HOLD);
    assert_eq!(s.told.last(), Some(&(T0 + HOLD, Tell::Raised)), "still there after the hour: told");
}

#[test]
fn a_held_back_condition_that_clears_says_nothing() {
    let mut s = Sim::new(false);
    s.raise(T0);
    s.clear(T0 + 60);
    s.run(T0 + 60, T0 + 180);
    s.raise(T0 + 300);
    s.clear(T0 + 400);
    s.run(T0 + 400, T0 + 3 * HOLD);
    assert_eq!(s.told.len(), 2, "{:?}", s.told);
}

#[test]
fn back_after_a_quiet_while_is_told_again_at_once() {
    let mut s = Sim::new(false);
    s.raise(T0);
    s.clear(T0 + 60);
    s.run(T0 + 60, T0 + 180);
    s.raise(T0 + 60 + FLAP_WINDOW + 1);
    assert_eq!(s.told.last(), Some(&(T0 + 61 + FLAP_WINDOW, Tell::Raised)));
}

#[test]
fn a_one_off_has_no_fixed_line_and_repeats_at_most_hourly() {
    let mut s = Sim::new(true);
    s.raise(T0);
    assert_eq!(s.told, [(T0, Tell::Raised)]);
    assert!(s.row.as_ref().unwrap().cleared_at.is_some(), "closed as told");
    s.run(T0, T0 + 600);
    // Two more unclean stops within minutes: said nothing, and closed each time.
    s.raise(T0 + 120);
    s.raise(T0 + 120);
    s.raise(T0 + 300);
    assert_eq!(s.told.len(), 1);
    assert!(s.row.as_ref().unwrap().cleared_at.is_some());
    s.raise(T0 + 2 * HOLD);
    assert_eq!(s.told.last(), Some(&(T0 + 2 * HOLD, Tell::Raised)));
}

#[test]
fn each_admin_gets_at_most_ten_an_hour() {
    let mut l = Limiter::default();
    let allowed = (0..30).filter(|i| l.allow("ana", T0 + i)).count();
    assert_eq!(allowed, PER_ADMIN_PER_HOUR);
    assert!(l.allow("leo", T0 + 30), "another admin has a count of their own");
    assert!(!l.allow("ana", T0 + 3599));
    assert!(l.allow("ana", T0 + 3600), "an hour after the first");
}

#[test]
fn levels_pick_what_an_admin_hears() {
    let bot = Condition::Bot("m1".into());
    assert!(wants(AlertLevel::Important, Tell::Raised, &bot));
    assert!(!wants(AlertLevel::Important, Tell::Fixed, &bot));
    assert!(!wants(AlertLevel::Important, Tell::Raised, &Condition::UncleanStop));
    assert!(wants(AlertLevel::All, Tell::Raised, &Condition::UncleanStop));
    assert!(wants(AlertLevel::All, Tell::Fixed, &Condition::Disk));
    assert!(!wants(AlertLevel::Off, Tell::Raised, &Condition::Provider));
}

#[test]
fn keys_round_trip() {
    for c in [
        Condition::Bot("rosa-1a2b".into()),
        Condition::Provider,
        Condition::Disk,
        Condition::Backup,
        Condition::UncleanStop,
    ] {
        assert_eq!(Condition::from_key(&c.key()), Some(c));
    }
    assert_eq!(Condition::from_key("bot:"), None);
    assert_eq!(Condition::from_key("weather"), None);
}

#[test]
fn texts_name_the_member_and_the_fix() {
    let bot = Condition::Bot("m1".into());
    let revoked = text(Tell::Raised, &bot, TOKEN_REVOKED, "Ana");
    assert!(revoked.contains("Ana's assistant") && revoked.contains("Replace token"), "{revoked}");
    assert!(text(Tell::Raised, &bot, USED_ELSEWHERE, "Ana").contains("another program"));
    assert_eq!(text(Tell::Fixed, &bot, TOKEN_REVOKED, "Ana"), "✅ Ana's bot works again.");
    assert!(text(Tell::Raised, &Condition::Disk, "93", "").contains("93% full"));
}
