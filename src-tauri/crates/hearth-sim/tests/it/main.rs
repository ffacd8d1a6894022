//! The one integration-test binary of hearth-sim (one binary per crate: faster to link): the
//! simulated services against real clients.

mod llm;
mod media;
mod telegram;
