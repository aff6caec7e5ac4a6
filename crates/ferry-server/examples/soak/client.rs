//! The soak's HTTP client: one upload per connection, written by hand on a socket so that the
//! soak controls the framing (length or chunked, raw or form), `Expect: 100-continue`, and exactly
//! when and how a body stops (half-close or reset). The file's bytes are generated from a seed as
//! they are sent and hashed on the way, so no file is ever held in memory.

use crate::plan::{AbortKind, Job};
use ferry_testkit::data::PseudoRandom;
use sha2::Digest as _;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::sync::oneshot;

const BLOCK: usize = 64 * 1024;

/// A file's bytes, generated from its seed block by block (`ferry_testkit::data`): a 16-byte head
/// (so no magic number is sniffed by chance), then pseudo-random bytes.
pub(crate) struct Data {
    rng: PseudoRandom,
    head: [u8; 16],
    remaining: u64,
    first: bool,
    buf: Vec<u8>,
}

impl Data {
    pub(crate) fn new(seed: u64, len: u64) -> Self {
        let mut head = *b"FERRYSOAK-------";
        head[9..16].copy_from_slice(&seed.to_le_bytes()[..7]);
        Self { rng: PseudoRandom::new(seed), head, remaining: len, first: true, buf: vec![0; BLOCK] }
    }

    /// The next block (at most 64 KiB), or `None` at the end.
    pub(crate) fn next_block(&mut self) -> Option<&[u8]> {
        if self.remaining == 0 {
            return None;
        }
        self.rng.fill(&mut self.buf);
        if self.first {
            self.buf[..16].copy_from_slice(&self.head);
            self.first = false;
        }
        let n = (BLOCK as u64).min(self.remaining) as usize;
        self.remaining -= n as u64;
        Some(&self.buf[..n])
    }
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub(crate) fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// `error.code` of an error answer.
    pub(crate) fn code(&self) -> Option<String> {
        self.json()?.pointer("/error/code")?.as_str().map(str::to_owned)
    }
}

/// How the body went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Sent {
    /// All of it; the SHA-256 of the file's bytes.
    All { sha256: String },
    /// None: the server answered before asking for it (`Expect: 100-continue`).
    Nothing,
    /// Part of it, then the client half-closed (a planned abort).
    HalfClosed,
    /// Part of it, then the client reset the connection (a planned abort).
    Reset,
    /// The connection failed while sending (the server answered early and closed, or reset).
    Broken(String),
    /// The answer came while the body was still being sent.
    Unfinished,
}

/// One attempt's result.
#[derive(Debug)]
pub(crate) struct Attempt {
    pub(crate) answer: Result<Answer, String>,
    pub(crate) sent: Sent,
    /// The client reset the connection after the whole body, before an answer came.
    pub(crate) reset_after_body: bool,
}

struct Framing {
    head: String,
    preamble: Vec<u8>,
    epilogue: Vec<u8>,
    chunked: bool,
    expect_continue: bool,
}

fn percent_encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn framing(addr: SocketAddr, token: &str, deployment: &str, job: &Job, attempt: u32) -> Framing {
    let mut head = format!(
        "POST /v1/uploads HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         X-Genesys-Deployment-Id: {deployment}\r\nX-Request-Id: soak-{}-{attempt}\r\nConnection: close\r\n",
        job.index
    );

    let (mut preamble, mut epilogue) = (Vec::new(), Vec::new());
    if job.shape.is_form() {
        let boundary = format!("----ferry-soak-{:016x}{:08x}", job.seed, job.index);
        head.push_str(&format!("Content-Type: multipart/form-data; boundary={boundary}\r\n"));
        if let Some(caption) = &job.caption {
            preamble.extend_from_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\n{caption}\r\n")
                    .as_bytes(),
            );
        }
        preamble.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n",
                job.name()
            )
            .as_bytes(),
        );
        epilogue.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    } else {
        head.push_str(&format!(
            "Content-Type: application/octet-stream\r\nX-File-Name: {}\r\n",
            percent_encode(&job.name())
        ));
        if let Some(caption) = &job.caption {
            head.push_str(&format!("X-Caption: {}\r\n", percent_encode(caption)));
        }
    }
    let chunked = job.shape.is_chunked();
    let total = preamble.len() as u64 + job.size + epilogue.len() as u64;
    // With no body there is nothing to wait for (servers send no `100 Continue` for it).
    let expect_continue = job.expect_continue && (chunked || total > 0);
    if expect_continue {
        head.push_str("Expect: 100-continue\r\n");
    }
    if chunked {
        head.push_str("Transfer-Encoding: chunked\r\n");
    } else {
        head.push_str(&format!("Content-Length: {total}\r\n"));
    }
    head.push_str("\r\n");
    Framing { head, preamble, epilogue, chunked, expect_continue }
}

async fn send(
    wr: &mut WriteHalf<'_>,
    chunked: bool,
    data: &[u8],
    frame: &mut Vec<u8>,
) -> std::io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    if !chunked {
        return wr.write_all(data).await;
    }
    frame.clear();
    frame.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    frame.extend_from_slice(data);
    frame.extend_from_slice(b"\r\n");
    wr.write_all(frame).await
}

/// Writes the body (after the server's `100 Continue` when asked for), generating and hashing the
/// file's bytes, and stopping where the job aborts.
async fn write_body(
    wr: &mut WriteHalf<'_>,
    job: &Job,
    framing: &Framing,
    go_ahead: Option<oneshot::Receiver<()>>,
) -> Sent {
    if let Some(go_ahead) = go_ahead
        && go_ahead.await.is_err()
    {
        return Sent::Nothing;
    }
    let broken = |e: std::io::Error| Sent::Broken(e.to_string());
    let mut frame = Vec::with_capacity(BLOCK + 32);
    if let Err(e) = send(wr, framing.chunked, &framing.preamble, &mut frame).await {
        return broken(e);
    }
    let mut data = Data::new(job.seed, job.size);
    let mut hasher = sha2::Sha256::new();
    let mut sent = 0u64;
    while let Some(block) = data.next_block() {
        let cut = job.abort.filter(|a| a.kind != AbortKind::AfterBody);
        let block = match cut {
            Some(abort) if sent + block.len() as u64 > abort.at => &block[..(abort.at - sent) as usize],
            _ => block,
        };
        hasher.update(block);
        if let Err(e) = send(wr, framing.chunked, block, &mut frame).await {
            return broken(e);
        }
        sent += block.len() as u64;
        if let Some(abort) = cut
            && sent >= abort.at
        {
            let _ = wr.flush().await;
            return match abort.kind {
                AbortKind::HalfClose => {
                    let _ = wr.shutdown().await;
                    Sent::HalfClosed
                }
                AbortKind::Reset | AbortKind::AfterBody => Sent::Reset,
            };
        }
    }
    if let Err(e) = send(wr, framing.chunked, &framing.epilogue, &mut frame).await {
        return broken(e);
    }
    if framing.chunked
        && let Err(e) = wr.write_all(b"0\r\n\r\n").await
    {
        return broken(e);
    }
    if let Err(e) = wr.flush().await {
        return broken(e);
    }
    Sent::All { sha256: hex(&hasher.finalize()) }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads the final answer, signalling `go_ahead` on a `100 Continue`.
async fn read_answer(
    rd: &mut ReadHalf<'_>,
    mut go_ahead: Option<oneshot::Sender<()>>,
) -> Result<Answer, String> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let end = loop {
            if let Some(end) = find(&buf, b"\r\n\r\n") {
                break end;
            }
            match rd.read(&mut chunk).await {
                Ok(0) => return Err("connection closed before an answer".into()),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("reading the answer: {e}")),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end + 4);
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("malformed status line: {head:?}"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        if (100..200).contains(&status) {
            if let Some(tx) = go_ahead.take() {
                let _ = tx.send(());
            }
            continue;
        }
        let get =
            |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
        let length: Option<usize> = get("content-length").and_then(|v| v.parse().ok());
        let chunked = get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        loop {
            if length.is_some_and(|l| buf.len() >= l) {
                break;
            }
            match rd.read(&mut chunk).await {
                Ok(0) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if length.is_none() && !chunked => {
                    let _ = e;
                    break;
                }
                Err(e) => return Err(format!("reading the answer's body: {e}")),
            }
        }
        let body = match (length, chunked) {
            (Some(l), _) if buf.len() >= l => buf[..l].to_vec(),
            (Some(l), _) => return Err(format!("answer body ended after {} of {l} bytes", buf.len())),
            (None, true) => dechunk(&buf)?,
            (None, false) => buf,
        };
        return Ok(Answer { status, headers, body });
    }
}

fn dechunk(mut raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line = find(raw, b"\r\n").ok_or("truncated chunk size")?;
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&raw[..line]).split(';').next().unwrap_or("").trim(),
            16,
        )
        .map_err(|e| format!("bad chunk size: {e}"))?;
        raw = &raw[line + 2..];
        if size == 0 {
            return Ok(out);
        }
        if raw.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

/// One attempt at `job` on a fresh connection, bounded by `limit`.
pub(crate) async fn attempt(
    addr: SocketAddr,
    token: &str,
    deployment: &str,
    job: &Job,
    attempt: u32,
    limit: Duration,
) -> Attempt {
    let mut stream = match TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(e) => {
            return Attempt {
                answer: Err(format!("connect: {e}")),
                sent: Sent::Nothing,
                reset_after_body: false,
            };
        }
    };
    let _ = stream.set_nodelay(true);
    let framing = framing(addr, token, deployment, job, attempt);
    if let Err(e) = stream.write_all(framing.head.as_bytes()).await {
        return Attempt {
            answer: Err(format!("sending the head: {e}")),
            sent: Sent::Broken(e.to_string()),
            reset_after_body: false,
        };
    }
    let (tx, rx) = if framing.expect_continue {
        let (tx, rx) = oneshot::channel();
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let (answer, sent, reset_after_body) = {
        let (mut rd, mut wr) = stream.split();
        let writer = write_body(&mut wr, job, &framing, rx);
        let reader = tokio::time::timeout(limit, read_answer(&mut rd, tx));
        let hang_up = tokio::time::sleep(limit);
        tokio::pin!(writer, reader, hang_up);
        let mut sent = None;
        let mut hung_up = false;
        let answer = loop {
            tokio::select! {
                s = &mut writer, if sent.is_none() => {
                    if let (Sent::All { .. }, Some(abort)) = (&s, job.abort)
                        && abort.kind == AbortKind::AfterBody
                    {
                        hang_up.as_mut().reset(tokio::time::Instant::now() + abort.after_body);
                    }
                    let reset = s == Sent::Reset;
                    sent = Some(s);
                    if reset {
                        break Err("the client reset the connection".to_owned());
                    }
                }
                a = &mut reader => {
                    break a.unwrap_or_else(|_| Err(format!("no answer within {limit:?}")));
                }
                () = &mut hang_up, if matches!(sent, Some(Sent::All { .. })) && job.abort.is_some() => {
                    hung_up = true;
                    break Err("the client reset the connection after the body".to_owned());
                }
            }
        };
        // An answer can come before the body is done (an early refusal): the writer stops there.
        // One more poll tells a writer still waiting for `100 Continue` (now never coming) from
        // one caught mid-body.
        let sent = match sent {
            Some(sent) => sent,
            None => futures::FutureExt::now_or_never(&mut writer).unwrap_or(Sent::Unfinished),
        };
        (answer, sent, hung_up)
    };
    if sent == Sent::Reset || reset_after_body {
        // Close with RST rather than FIN.
        let _ = stream.set_zero_linger();
    }
    drop(stream);
    Attempt { answer, sent, reset_after_body }
}

/// A plain `GET` of `path` (no body), for `/readyz`, `/metrics` and download links.
pub(crate) async fn get(addr: SocketAddr, path: &str) -> Result<Answer, String> {
    let mut stream = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    let head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.map_err(|e| e.to_string())?;
    let (mut rd, _wr) = stream.split();
    tokio::time::timeout(Duration::from_secs(30), read_answer(&mut rd, None))
        .await
        .map_err(|_| "no answer in 30 s".to_owned())?
}
