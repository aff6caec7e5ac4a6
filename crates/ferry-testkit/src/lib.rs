//! ferry's shared test tooling (not published): what the integration tests, the end-to-end suite,
//! the benchmarks and the soak of several crates need alike, written once.
//!
//! - [`localstack`]: where LocalStack's S3 is (`FERRY_TEST_LOCALSTACK`, or one on 127.0.0.1:4566);
//!   tests that need it are `#[ignore = "needs LocalStack"]` and call [`localstack::endpoint`],
//!   which fails loudly when there is none.
//! - [`process`]: `ferry serve` as a child process, started and waited for until `/readyz` says 200,
//!   killed on drop (its log shown when a test panics).
//! - [`data`]: deterministic pseudo-random bytes and numbers (xorshift64*), the same for a seed
//!   everywhere, in one buffer or streamed.
//! - [`reference`]: the S3 key an attachment reference names (guests get no `storage`).
//! - [`fuzz`]: replays a fuzz target's regressions and seed corpus (`fuzz/`) through its check.
//! - [`balancer`]: Debian's HAProxy, round-robin per request, in front of several replicas.
//! - [`clamd`]: Debian's ClamAV daemon on loopback with a signature database the test writes (EICAR
//!   by MD5, a byte pattern by body signature); never freshclam.
//! - [`cut`]: a TCP proxy that cuts the connection carrying the client's n-th byte (a PATCH cut
//!   mid-body), letting later connections through.
//! - [`tus`]: where the pinned tus clients (tuspy, tus-js-client) are installed.
//!
//! Only dev-dependencies (tests, benches, examples) may point at this crate; it depends on no ferry
//! crate, so any of them can use it.
//!
//! ```
//! use ferry_testkit::data::{PseudoRandom, pseudo_random};
//!
//! let bytes = pseudo_random(b"%PDF", 1024, 7);
//! assert!(bytes.starts_with(b"%PDF"));
//! assert_eq!(bytes, pseudo_random(b"%PDF", 1024, 7));
//! let mut rng = PseudoRandom::new(7);
//! assert_ne!(rng.next_u64(), rng.next_u64());
//! ```

pub mod balancer;
pub mod clamd;
pub mod cut;
pub mod data;
pub mod fuzz;
pub mod localstack;
pub mod process;
pub mod reference;
pub mod tus;
