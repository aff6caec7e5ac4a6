//! A TCP proxy that cuts the connection carrying the client's `n`-th byte: the first `n` bytes
//! from clients (counted over every connection) are passed on, then both sides of the connection
//! that would carry byte `n + 1` are shut down, as a dropped mobile connection would. Later
//! connections pass untouched, so a client's retry goes through. Blocking threads, no runtime.

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A running cutting proxy in front of one upstream; its listener thread ends with the process.
#[derive(Debug)]
pub struct CutProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    cut_after: u64,
    forwarded: AtomicU64,
    cut: AtomicBool,
    stopped: AtomicBool,
}

impl CutProxy {
    /// Listens on a free loopback port and forwards to `upstream`, cutting after `cut_after`
    /// client bytes.
    pub fn start(upstream: SocketAddr, cut_after: u64) -> Self {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), upstream, cut_after)
    }

    /// [`start`](Self::start) on a given address (one chosen before the upstream started, so the
    /// upstream can be told its public URL).
    pub fn start_on(listen: SocketAddr, upstream: SocketAddr, cut_after: u64) -> Self {
        let listener = TcpListener::bind(listen).expect("binding the cutting proxy");
        let addr = listener.local_addr().expect("its address");
        let shared = Arc::new(Shared {
            upstream,
            cut_after,
            forwarded: AtomicU64::new(0),
            cut: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
        });
        let accepting = Arc::clone(&shared);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if accepting.stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let shared = Arc::clone(&accepting);
                std::thread::spawn(move || relay(client, &shared));
            }
        });
        Self { addr, shared }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Whether the cut has happened.
    pub fn has_cut(&self) -> bool {
        self.shared.cut.load(Ordering::SeqCst)
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees `stopped`.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Copies both ways; the client-to-upstream direction counts bytes and cuts.
fn relay(client: TcpStream, shared: &Arc<Shared>) {
    let Ok(upstream) = TcpStream::connect(shared.upstream) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let (Ok(client_w), Ok(upstream_r)) = (client.try_clone(), upstream.try_clone()) else { return };
    let back = std::thread::spawn(move || copy_back(upstream_r, client_w));
    let mut from = client;
    let mut to = upstream;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut send = n;
        if !shared.cut.load(Ordering::SeqCst) {
            let before = shared.forwarded.fetch_add(n as u64, Ordering::SeqCst);
            if before + n as u64 > shared.cut_after && !shared.cut.swap(true, Ordering::SeqCst) {
                send = usize::try_from(shared.cut_after.saturating_sub(before)).unwrap_or(n).min(n);
                let _ = to.write_all(&buf[..send]);
                let _ = from.shutdown(Shutdown::Both);
                let _ = to.shutdown(Shutdown::Both);
                break;
            }
        }
        if to.write_all(&buf[..send]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = back.join();
}

fn copy_back(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::CutProxy;
    use std::io::{Read as _, Write as _};
    use std::net::{TcpListener, TcpStream};

    /// An upstream that counts what each connection sent, echoing "ok" at its end.
    fn counting_upstream() -> (std::net::SocketAddr, std::sync::mpsc::Receiver<usize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let mut got = Vec::new();
                let _ = stream.read_to_end(&mut got);
                let _ = stream.write_all(b"ok");
                tx.send(got.len()).unwrap();
            }
        });
        (addr, rx)
    }

    #[test]
    fn the_connection_carrying_byte_n_is_cut_and_later_ones_pass() {
        let (upstream, received) = counting_upstream();
        let proxy = CutProxy::start(upstream, 100_000);
        let mut first = TcpStream::connect(proxy.addr()).unwrap();
        let chunk = vec![7u8; 10_000];
        let mut failed = false;
        for _ in 0..100 {
            if first.write_all(&chunk).is_err() {
                failed = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let mut answer = Vec::new();
        let _ = first.read_to_end(&mut answer);
        assert!(failed || answer.is_empty(), "the client sees its connection end without an answer");
        assert!(proxy.has_cut());
        assert_eq!(received.recv().unwrap(), 100_000, "exactly n bytes reached the upstream");

        let mut second = TcpStream::connect(proxy.addr()).unwrap();
        second.write_all(&[1u8; 300_000]).unwrap();
        second.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = Vec::new();
        second.read_to_end(&mut answer).unwrap();
        assert_eq!(answer, b"ok");
        assert_eq!(received.recv().unwrap(), 300_000, "a later connection passes whole");
    }
}
