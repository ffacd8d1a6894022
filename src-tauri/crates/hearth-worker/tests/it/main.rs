//! Integration tests for the worker, driven over a socket pair with the test playing the
//! gateway (see `fake`).

mod fake;
mod knowledge;
mod lifecycle;
mod media;
mod memory;
mod reminders;
mod sandbox;
mod tools;
mod turns;
