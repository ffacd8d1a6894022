//! The one integration-test binary of hearth-testkit (one binary per crate: faster to link).

mod abuse;
mod isolation;
mod llm;
mod supervisor;
mod telegram;
