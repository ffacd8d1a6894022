//! The one integration-test binary of hearth-testkit (one binary per crate: faster to link).

mod abuse;
mod deps;
mod isolation;
mod supervisor;
