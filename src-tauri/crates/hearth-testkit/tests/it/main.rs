//! The one integration-test binary of hearth-testkit (one binary per crate: faster to link).

mod llm;
mod telegram;
