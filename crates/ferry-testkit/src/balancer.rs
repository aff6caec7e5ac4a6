//! A real load balancer in front of several `ferry serve` replicas: Debian's HAProxy
//! (`/usr/sbin/haproxy`, `apt-get install haproxy`; `FERRY_HAPROXY` names another binary) with a
//! configuration written here: round-robin per request (`option http-server-close`, so a kept-alive
//! client connection does not pin its requests to one replica), no request buffering, long
//! timeouts for uploads of gigabytes, and a health check on `/readyz` so a replica that died is
//! taken out of the rotation. Run in the foreground (`-db`) and killed when dropped.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The environment variable naming the HAProxy binary (default [`DEFAULT_HAPROXY`]).
pub const ENV: &str = "FERRY_HAPROXY";
/// Debian's HAProxy.
pub const DEFAULT_HAPROXY: &str = "/usr/sbin/haproxy";
/// How long HAProxy may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// The HAProxy binary, or a panic saying how to install it.
pub fn haproxy() -> PathBuf {
    let path = std::env::var_os(ENV).map_or_else(|| PathBuf::from(DEFAULT_HAPROXY), PathBuf::from);
    assert!(
        path.is_file(),
        "no HAProxy at {} (install Debian's with `apt-get install -y haproxy`, or set {ENV})",
        path.display()
    );
    path
}

/// The configuration for a round-robin balancer on `listen` over `servers`.
pub fn config(listen: SocketAddr, servers: &[SocketAddr]) -> String {
    let mut text = String::from(
        "global\n  maxconn 512\n\n\
         defaults\n  mode http\n  option http-server-close\n  option redispatch\n  retries 2\n  \
         timeout connect 5s\n  timeout client 15m\n  timeout server 15m\n  timeout http-request 60s\n  \
         timeout queue 30s\n  timeout check 2s\n\n",
    );
    let _ = write!(text, "frontend tus\n  bind {listen}\n  default_backend ferry\n\n");
    text.push_str(
        "backend ferry\n  balance roundrobin\n  option httpchk GET /readyz\n  http-check expect status 200\n",
    );
    for (i, server) in servers.iter().enumerate() {
        let _ = writeln!(text, "  server replica{i} {server} check inter 500ms fall 2 rise 2");
    }
    text
}

/// A running HAProxy; killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct Balancer {
    child: Child,
    addr: SocketAddr,
}

impl Balancer {
    /// Writes the configuration into `dir` and starts HAProxy on a free loopback port in front of
    /// `servers`; waits until it accepts connections. Panics when it cannot start.
    pub fn start(dir: &Path, servers: &[SocketAddr]) -> Self {
        let binary = haproxy();
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let file = dir.join("haproxy.cfg");
        std::fs::write(&file, config(addr, servers)).expect("writing haproxy.cfg");
        let check =
            Command::new(&binary).arg("-c").arg("-f").arg(&file).output().expect("running haproxy -c");
        assert!(
            check.status.success(),
            "haproxy refuses its configuration: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let log = std::fs::File::create(dir.join("haproxy.log")).expect("haproxy log");
        let child = Command::new(&binary)
            .arg("-db")
            .arg("-f")
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting haproxy");
        let mut balancer = Self { child, addr };
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = balancer.child.try_wait() {
                panic!(
                    "haproxy exited ({status}): {}",
                    std::fs::read_to_string(dir.join("haproxy.log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "haproxy did not listen on {addr} in {START_TIMEOUT:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        balancer
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::config;
    use std::net::SocketAddr;

    #[test]
    fn the_configuration_lists_every_replica_round_robin() {
        let listen: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        let servers: Vec<SocketAddr> =
            ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"].iter().map(|s| s.parse().unwrap()).collect();
        let text = config(listen, &servers);
        assert!(text.contains("bind 127.0.0.1:9000"));
        assert!(text.contains("balance roundrobin"));
        assert!(text.contains("option http-server-close"), "per-request balancing");
        assert!(!text.contains("http-buffer-request"), "bodies are streamed, not buffered");
        for (i, server) in servers.iter().enumerate() {
            assert!(text.contains(&format!("server replica{i} {server} check")), "{text}");
        }
    }
}
