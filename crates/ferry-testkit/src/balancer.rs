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

/// A loopback address with a port that was free a moment ago.
pub fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port")
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
        Self::start_on(dir, free_port(), servers)
    }

    /// [`start`](Self::start) on a given address (one chosen before the replicas started, so they
    /// can be told their public URL; see [`free_port`]).
    pub fn start_on(dir: &Path, addr: SocketAddr, servers: &[SocketAddr]) -> Self {
        let binary = haproxy();
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
    use super::{Balancer, config};
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    use std::net::{SocketAddr, TcpListener, TcpStream};

    /// A replica stand-in: answers every request (kept alive) with its `name`.
    fn replica(name: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                std::thread::spawn(move || {
                    let mut writer = stream.try_clone().unwrap();
                    let mut reader = BufReader::new(stream);
                    loop {
                        let mut line = String::new();
                        let mut length = 0;
                        loop {
                            line.clear();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                                length = v.trim().parse().unwrap_or(0);
                            }
                            if line == "\r\n" {
                                break;
                            }
                        }
                        let mut body = vec![0; length];
                        let _ = reader.read_exact(&mut body);
                        let answer =
                            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{name}", name.len());
                        if writer.write_all(answer.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    #[test]
    #[ignore = "needs haproxy"]
    fn haproxy_spreads_the_requests_of_one_connection_over_the_replicas() {
        let dir = tempfile::tempdir().unwrap();
        let balancer = Balancer::start(dir.path(), &[replica("a"), replica("b")]);
        // Give the health checks a moment to pass (rise 2 × 500 ms, but servers start up).
        std::thread::sleep(std::time::Duration::from_millis(300));
        let mut stream = TcpStream::connect(balancer.addr()).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut seen = Vec::new();
        for _ in 0..4 {
            let request = format!(
                "PATCH /v1/tus/x HTTP/1.1\r\nHost: {}\r\nContent-Length: 3\r\n\r\nabc",
                balancer.addr()
            );
            stream.write_all(request.as_bytes()).unwrap();
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            seen.push(String::from_utf8(body).unwrap());
        }
        assert!(seen.contains(&"a".to_owned()) && seen.contains(&"b".to_owned()), "{seen:?}");
        assert!(seen.windows(2).all(|w| w[0] != w[1]), "round-robin per request on one connection: {seen:?}");
    }

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
