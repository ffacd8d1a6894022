//! Integration tests of the gateway's parts against the testkit fakes. (End-to-end scenarios
//! with real worker processes live in hearth-cli's tests, where the `hearth` binary exists.)

mod admin;
mod broker;
mod kb;
mod layers;
mod media;
mod migrations;
mod speech;
mod voice;
