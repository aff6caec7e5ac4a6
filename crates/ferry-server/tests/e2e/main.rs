//! ferry end to end: `ferry serve` as a separate process against LocalStack's S3 and the Genesys
//! emulator, driven by `curl` (and by hand-written requests where a test must control the socket).
//!
//! Every case is `#[ignore = "needs LocalStack"]`: a plain `cargo test` lists them as ignored. Run
//! them with `cargo xtask e2e` (starts LocalStack and passes `--include-ignored`), or with
//! `cargo test -p ferry-server --test e2e -- --include-ignored` against `FERRY_TEST_LOCALSTACK` or a
//! LocalStack on 127.0.0.1:4566 (they fail at once without one).
//!
//! Every case checks the HTTP answer, what S3 holds (objects and multipart uploads in progress,
//! through the SDK) and what the conversation shows (through the emulator), and that ferry's log
//! holds no token, secret or presigned URL.

mod abuse;
mod agents;
mod crash;
mod crc_only;
mod delivery;
mod delivery_fallback;
mod faults;
mod harness;
mod hostile;
mod lifecycle;
mod proxy;
mod refusals;
mod replicas;
mod scan;
mod tickets;
mod tus;
mod tus_clients;

/// `&str`s to the `String`s curl is given.
pub(crate) fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}
