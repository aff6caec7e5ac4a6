//! Where LocalStack's S3 is, for the tests that need S3's strict behaviour (BadDigest, InvalidPart,
//! FULL_OBJECT checksums, ListMultipartUploads) and for the end-to-end suite.
//!
//! Such tests are marked `#[ignore = "needs LocalStack"]`: a plain `cargo test` lists them as
//! ignored instead of passing them without having run. `cargo xtask ci` (and `cargo xtask e2e`)
//! starts LocalStack, names it in `FERRY_TEST_LOCALSTACK` and runs them with `--include-ignored`;
//! by hand, `cargo xtask localstack start` then `cargo test -- --include-ignored`. Run without
//! LocalStack, they fail at once, saying so.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs as _};
use std::time::Duration;

/// The environment variable that names the endpoint (`http://127.0.0.1:PORT`).
pub const ENV: &str = "FERRY_TEST_LOCALSTACK";
/// Where `cargo xtask localstack start` runs it.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:4566";
/// How long a connection attempt may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// The LocalStack endpoint: `FERRY_TEST_LOCALSTACK` when set, else [`DEFAULT_ENDPOINT`] when
/// something listens there, else `None` (for benches, where LocalStack is an optional extra).
pub fn find() -> Option<String> {
    match std::env::var(ENV) {
        Ok(endpoint) => Some(endpoint),
        Err(_) => reachable(DEFAULT_ENDPOINT).then(|| DEFAULT_ENDPOINT.to_owned()),
    }
}

/// The LocalStack endpoint for a test that needs it; panics, saying how to provide one, when none
/// is set or found or when the one named does not accept connections.
#[track_caller]
pub fn endpoint() -> String {
    let Some(endpoint) = find() else {
        panic!(
            "this test needs LocalStack: {ENV} is not set and nothing listens on {DEFAULT_ENDPOINT}; \
             run it through `cargo xtask ci` or `cargo xtask e2e`, or start one with \
             `cargo xtask localstack start`"
        )
    };
    assert!(reachable(&endpoint), "this test needs LocalStack, but {endpoint} (from {ENV}) does not answer");
    endpoint
}

/// Whether `endpoint` (`http://host:port`, a path allowed) accepts a TCP connection.
pub fn reachable(endpoint: &str) -> bool {
    socket_addrs(endpoint).iter().any(|addr| TcpStream::connect_timeout(addr, PROBE_TIMEOUT).is_ok())
}

/// The addresses an `http://host[:port][/path]` endpoint names (port 80 when none is given).
fn socket_addrs(endpoint: &str) -> Vec<SocketAddr> {
    let rest = endpoint.split_once("://").map_or(endpoint, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or_default();
    let with_port = if authority.rsplit_once(':').is_some_and(|(_, port)| port.parse::<u16>().is_ok()) {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    with_port.to_socket_addrs().map(Iterator::collect).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::{reachable, socket_addrs};
    use std::net::{SocketAddr, TcpListener};

    #[test]
    fn endpoints_name_their_socket() {
        let addr: SocketAddr = "127.0.0.1:4566".parse().unwrap();
        assert_eq!(socket_addrs("http://127.0.0.1:4566"), [addr]);
        assert_eq!(socket_addrs("http://127.0.0.1:4566/bucket/key"), [addr]);
        assert_eq!(socket_addrs("127.0.0.1:4566"), [addr]);
        assert_eq!(socket_addrs("http://127.0.0.1"), ["127.0.0.1:80".parse::<SocketAddr>().unwrap()]);
        assert!(socket_addrs("http://not a host:12").is_empty());
    }

    #[test]
    fn a_listening_endpoint_is_reachable_and_a_closed_one_is_not() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        assert!(reachable(&endpoint));
        drop(listener);
        assert!(!reachable(&endpoint));
    }
}
