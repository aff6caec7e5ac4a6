//! The hostile input battery: malformed and hostile requests against one `ferry serve` (and a
//! second one with tiny timeouts for slow-loris headers, trickling bodies and 1,000 stalled
//! connections), each expecting a specific answer — mostly a 4xx with its `error.code`, a bare
//! 400/408 where hyper refuses the bytes before ferry sees them, or a closed connection — and,
//! after the battery, no debris: no object but those of the cases meant to succeed, no multipart
//! upload in progress, nothing in any conversation, no emulator violation, and ferry still
//! serving a normal upload. Prints a table of case → expected → got (`--nocapture`).

use crate::harness::{DEPLOYMENT, Harness, LINK_SECRET, MIB, Options, PUBLIC_HOST, bytes, curl, ticket};
use ferry_server::links::{LinkSigner, file_id};
use ferry_server::tickets::{Claims, mint};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// What came back on a connection.
#[derive(Debug, Clone, Default)]
struct Answer {
    /// `None`: the connection was closed (or reset) without an answer.
    status: Option<u16>,
    body: Value,
    /// A `Location` header, if any.
    location: Option<String>,
}

impl Answer {
    fn code(&self) -> Option<&str> {
        self.body["error"]["code"].as_str()
    }

    fn show(&self) -> String {
        match (self.status, self.code()) {
            (None, _) => "closed, no answer".into(),
            (Some(s), Some(c)) => format!("{s} {c}"),
            (Some(s), None) => format!("{s} (no JSON code)"),
        }
    }
}

/// What a case must end in.
#[derive(Debug, Clone)]
enum Expect {
    /// This status with this `error.code` (and a request id).
    Error(u16, &'static str),
    /// This status from hyper (the bytes are not HTTP; ferry never sees them): no JSON body.
    Bare(u16),
    /// `201`: stored (a case meant to succeed).
    Created,
    /// `302` to S3 (the genuine link, a control).
    Found,
    /// The connection closed without an answer, or with this status.
    ClosedOr(u16),
    /// Either of two.
    Either(Box<Expect>, Box<Expect>),
}

impl Expect {
    fn matches(&self, got: &Answer) -> bool {
        match self {
            Self::Error(s, c) => {
                got.status == Some(*s)
                    && got.code() == Some(*c)
                    && got.body["error"]["requestId"].as_str().is_some_and(|r| !r.is_empty())
            }
            Self::Bare(s) => got.status == Some(*s) && got.code().is_none(),
            Self::Created => {
                got.status == Some(201)
                    && ferry_testkit::reference::stored_key(
                        &got.body,
                        ferry_testkit::reference::DEFAULT_PREFIX,
                    )
                    .is_some()
            }
            Self::Found => {
                got.status == Some(302) && got.location.as_deref().is_some_and(|l| l.contains("X-Amz-"))
            }
            Self::ClosedOr(s) => got.status.is_none() || got.status == Some(*s),
            Self::Either(a, b) => a.matches(got) || b.matches(got),
        }
    }

    fn show(&self) -> String {
        match self {
            Self::Error(s, c) => format!("{s} {c}"),
            Self::Bare(s) => format!("{s} (hyper)"),
            Self::Created => "201 (sanitized)".into(),
            Self::Found => "302 to S3".into(),
            Self::ClosedOr(s) => format!("closed or {s}"),
            Self::Either(a, b) => format!("{} | {}", a.show(), b.show()),
        }
    }
}

struct Row {
    case: String,
    expected: String,
    got: String,
    pass: bool,
}

#[derive(Default)]
struct Battery {
    rows: Vec<Row>,
    /// Keys stored by the cases meant to succeed.
    kept: Vec<String>,
}

impl Battery {
    fn record(&mut self, case: &str, expect: &Expect, got: &Answer) -> bool {
        let pass = expect.matches(got);
        if matches!(expect, Expect::Created)
            && let Some(key) =
                ferry_testkit::reference::stored_key(&got.body, ferry_testkit::reference::DEFAULT_PREFIX)
                    .as_deref()
        {
            self.kept.push(key.to_owned());
        }
        self.rows.push(Row { case: case.to_owned(), expected: expect.show(), got: got.show(), pass });
        pass
    }

    /// Records a case whose verdict is computed by the test (several answers, or a side effect).
    fn record_checked(&mut self, case: &str, expected: &str, got: String, pass: bool) {
        self.rows.push(Row { case: case.to_owned(), expected: expected.to_owned(), got, pass });
    }

    fn print(&self) {
        println!("\nhostile input battery: {} cases", self.rows.len());
        let w = self.rows.iter().map(|r| r.case.len()).max().unwrap_or(10).max(4);
        println!("{:<w$}  {:<40}  {:<40}", "case", "expected", "got");
        for r in &self.rows {
            println!(
                "{:<w$}  {:<40}  {:<40}  {}",
                r.case,
                r.expected,
                r.got,
                if r.pass { "ok" } else { "FAILED" }
            );
        }
        let failed = self.rows.iter().filter(|r| !r.pass).count();
        println!("{} passed, {} failed", self.rows.len() - failed, failed);
    }
}

// ---------------------------------------------------------------------------------------------
// Hand-written HTTP/1.1 on a socket.

/// Parses every response in `raw` (several when requests were pipelined).
fn parse_answers(raw: &[u8]) -> Vec<Answer> {
    let mut answers = Vec::new();
    let mut rest = raw;
    while let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&rest[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok());
        let mut len = 0usize;
        let mut location = None;
        let mut chunked = false;
        for line in lines {
            let Some((k, v)) = line.split_once(':') else { continue };
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => len = v.trim().parse().unwrap_or(0),
                "location" => location = Some(v.trim().to_owned()),
                "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
                _ => {}
            }
        }
        let after = &rest[end + 4..];
        let (body, next): (Vec<u8>, &[u8]) = if chunked {
            let mut body = Vec::new();
            let mut at = after;
            loop {
                let Some(eol) = at.windows(2).position(|w| w == b"\r\n") else { break (body, &[]) };
                let size = usize::from_str_radix(String::from_utf8_lossy(&at[..eol]).trim(), 16).unwrap_or(0);
                at = &at[eol + 2..];
                if size == 0 {
                    break (body, at.get(2..).unwrap_or(&[]));
                }
                body.extend_from_slice(&at[..size.min(at.len())]);
                at = at.get(size + 2..).unwrap_or(&[]);
            }
        } else {
            let take = len.min(after.len());
            (after[..take].to_vec(), &after[take..])
        };
        answers.push(Answer { status, body: serde_json::from_slice(&body).unwrap_or(Value::Null), location });
        rest = next;
    }
    answers
}

/// Sends `request` (write errors ignored: ferry may answer and close before reading it all) and
/// reads until ferry closes the connection, within `wait`.
async fn exchange(addr: SocketAddr, request: &[u8], wait: Duration) -> Vec<Answer> {
    let mut stream = TcpStream::connect(addr).await.expect("connect to ferry");
    let _ = stream.write_all(request).await;
    let _ = stream.flush().await;
    read_all(&mut stream, wait).await
}

async fn read_all(stream: &mut TcpStream, wait: Duration) -> Vec<Answer> {
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => raw.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "ferry neither answered nor closed within {wait:?}; got so far: {:?}",
                String::from_utf8_lossy(&raw)
            ),
        }
    }
    parse_answers(&raw)
}

/// The first answer on a connection, or "closed, no answer".
async fn one(addr: SocketAddr, request: &[u8]) -> Answer {
    exchange(addr, request, Duration::from_secs(30)).await.into_iter().next().unwrap_or_default()
}

/// `POST /v1/uploads` with `headers` (each line ending in CRLF), a `Content-Length` for `body`, and
/// the body.
fn post(headers: &[u8], body: &[u8]) -> Vec<u8> {
    [
        b"POST /v1/uploads HTTP/1.1\r\nHost: ferry\r\nConnection: close\r\n".as_slice(),
        headers,
        format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes(),
        body,
    ]
    .concat()
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: ferry\r\nConnection: close\r\n\r\n").into_bytes()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs()
}

fn ticket_header(ticket: &str) -> String {
    format!("Authorization: Ferry-Ticket {ticket}\r\n")
}

/// One multipart/form-data part.
fn part(headers: &str, data: &[u8]) -> Vec<u8> {
    [format!("\r\n{headers}\r\n\r\n").as_bytes(), data].concat()
}

/// A form body: `--b` + part, …, then `--b--` when `close`.
fn form(boundary: &str, parts: &[Vec<u8>], close: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(format!("--{boundary}").as_bytes());
        out.extend_from_slice(p);
        out.extend_from_slice(b"\r\n");
    }
    if close {
        out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    }
    out
}

fn file_part(name: &str, content_type: &str, data: &[u8]) -> Vec<u8> {
    part(
        &format!(
            "Content-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: {content_type}"
        ),
        data,
    )
}

/// Raises this process's open-file limit (inherited by the ferry it spawns afterwards) so both
/// ends of `want` connections fit; returns the soft limit in force.
fn raise_nofile(want: u64) -> u64 {
    let soft = || -> u64 {
        std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("Max open files"))
                    .and_then(|l| l.split_whitespace().nth(3).and_then(|v| v.parse().ok()))
            })
            .unwrap_or(1024)
    };
    if soft() < want {
        let pid = std::process::id().to_string();
        let _ = std::process::Command::new("prlimit")
            .args(["--pid", &pid, &format!("--nofile={want}:{want}")])
            .status();
    }
    soft()
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn hostile_input_battery() {
    let started = Instant::now();
    // Files up to 1 MiB, so "beyond the limit" is cheap to send.
    let options = Options {
        env: vec![("FERRY_MAX_FILE_SIZE", MIB.to_string())],
        // Every request comes from loopback: the per-client rate limit is abuse.rs's to test.
        toml: vec!["[admission]".into(), "per_client_per_minute = 0".into()],
        ..Options::default()
    };
    let h = Harness::start("hostile", options).await;
    let addr = h.ferry.addr();
    let mut b = Battery::default();
    let guest = format!("Authorization: Bearer {}\r\nX-Genesys-Deployment-Id: {DEPLOYMENT}\r\n", h.token);
    let small = bytes(b"", 2000, 1);
    let raw_ok = "Content-Type: application/octet-stream\r\nX-File-Name: note.bin\r\n";
    let raw_with = |auth: &str| [auth.as_bytes(), raw_ok.as_bytes()].concat();

    // --- Sessions and deployments ---------------------------------------------------------
    let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
        ("no Authorization", post(raw_ok.as_bytes(), &small), Expect::Error(401, "missing_session")),
        (
            "empty Authorization",
            post(&raw_with("Authorization: \r\n"), &small),
            Expect::Error(401, "missing_session"),
        ),
        (
            "Bearer with no token",
            post(
                &raw_with(&format!("Authorization: Bearer \r\nX-Genesys-Deployment-Id: {DEPLOYMENT}\r\n")),
                &small,
            ),
            Expect::Error(401, "missing_session"),
        ),
        (
            "Basic credentials",
            post(&raw_with("Authorization: Basic dXNlcjpwYXNz\r\n"), &small),
            Expect::Error(401, "missing_session"),
        ),
        (
            "garbage token (punctuation)",
            post(
                &raw_with(&format!(
                    "Authorization: Bearer $(rm -rf /);'\"<x>\r\nX-Genesys-Deployment-Id: {DEPLOYMENT}\r\n"
                )),
                &small,
            ),
            Expect::Error(401, "unknown_session"),
        ),
        (
            "token of 4 KB",
            post(
                &raw_with(&format!(
                    "Authorization: Bearer {}\r\nX-Genesys-Deployment-Id: {DEPLOYMENT}\r\n",
                    "a".repeat(4096)
                )),
                &small,
            ),
            Expect::Error(401, "unknown_session"),
        ),
        (
            "non-UTF-8 bytes in Authorization",
            post(&[b"Authorization: Bearer \xff\xfe\xfd\r\n".as_slice(), raw_ok.as_bytes()].concat(), &small),
            Expect::Error(401, "missing_session"),
        ),
        (
            "well-formed token Genesys never issued",
            post(
                &raw_with(&format!(
                    "Authorization: Bearer {}\r\nX-Genesys-Deployment-Id: {DEPLOYMENT}\r\n",
                    uuid::Uuid::new_v4()
                )),
                &small,
            ),
            Expect::Error(401, "unknown_session"),
        ),
        (
            "session without deployment id",
            post(&raw_with(&format!("Authorization: Bearer {}\r\n", h.token)), &small),
            Expect::Error(400, "missing_deployment"),
        ),
        (
            "unknown deployment",
            post(
                &raw_with(&format!(
                    "Authorization: Bearer {}\r\nX-Genesys-Deployment-Id: someone-elses\r\n",
                    h.token
                )),
                &small,
            ),
            Expect::Error(403, "deployment_not_allowed"),
        ),
        (
            "deployment id ../../etc",
            post(
                &raw_with(&format!(
                    "Authorization: Bearer {}\r\nX-Genesys-Deployment-Id: ../../etc\r\n",
                    h.token
                )),
                &small,
            ),
            Expect::Error(403, "deployment_not_allowed"),
        ),
    ];
    for (case, request, expect) in cases {
        let got = one(addr, &request).await;
        b.record(case, &expect, &got);
    }

    // --- Tickets ----------------------------------------------------------------------------
    let good = ticket(|_| {});
    let (signed, _) = good.rsplit_once('.').expect("v1.payload.sig");
    let forged = mint(
        b"a different secret that is long enough, but wrong",
        &Claims {
            dep: DEPLOYMENT.into(),
            exp: now() + 600,
            jti: "forged".into(),
            iat: None,
            kid: None,
            max: None,
            types: None,
            from: None,
            reference: None,
        },
    );
    let (_, forged_sig) = forged.rsplit_once('.').expect("v1.payload.sig");
    let bigger = ticket(|c| c.max = Some(1 << 40));
    let (bigger_payload, _) = bigger.rsplit_once('.').expect("v1.payload.sig");
    let (_, good_sig) = good.rsplit_once('.').expect("v1.payload.sig");
    let ticket_cases: Vec<(&str, String)> = vec![
        ("ticket: garbage", "not-a-ticket".into()),
        ("ticket: 5,000 characters", format!("v1.{}.x", "a".repeat(5000))),
        ("ticket: forged with another secret", forged.clone()),
        ("ticket: signature of another payload", format!("{bigger_payload}.{good_sig}")),
        ("ticket: payload with a signature cut", format!("{signed}.{}", &forged_sig[..10])),
        ("ticket: expired", ticket(|c| c.exp = now() - 1)),
    ];
    for (case, t) in ticket_cases {
        let got = one(addr, &post(&raw_with(&ticket_header(&t)), &small)).await;
        b.record(case, &Expect::Error(401, "invalid_ticket"), &got);
    }
    // Used up: the first use starts streaming (so consumes the ticket) and is refused by sniffing;
    // the second is refused as used.
    let once = ticket(|_| {});
    let exe = bytes(b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00", 4000, 2);
    let png_exe = |auth: &str, name: &str| {
        [auth.as_bytes(), format!("Content-Type: image/png\r\nX-File-Name: {name}\r\n").as_bytes()].concat()
    };
    let got = one(addr, &post(&png_exe(&ticket_header(&once), "first.png"), &exe)).await;
    b.record("ticket: first use, MZ bytes as image/png", &Expect::Error(415, "unsupported_media_type"), &got);
    let got = one(addr, &post(&raw_with(&ticket_header(&once)), &small)).await;
    b.record("ticket: reused", &Expect::Error(401, "invalid_ticket"), &got);

    // --- Header injection, names ---------------------------------------------------------
    let named = |name: &[u8]| -> Vec<u8> {
        [
            guest.as_bytes(),
            b"Content-Type: application/octet-stream\r\nX-File-Name: ".as_slice(),
            name,
            b"\r\n".as_slice(),
        ]
        .concat()
    };
    let name_cases: Vec<(&str, Vec<u8>, Expect)> = vec![
        ("raw CR inside X-File-Name", post(&named(b"a.txt\rX-Evil: 1"), &small), Expect::Bare(400)),
        ("raw NUL inside X-File-Name", post(&named(b"a\0.txt"), &small), Expect::Bare(400)),
        (
            "obs-fold continuation in X-File-Name",
            post(&named(b"a.txt\r\n evil.exe"), &small),
            Expect::Bare(400),
        ),
        (
            "%0D%0A in X-File-Name",
            post(&named(b"a.txt%0D%0AX-Evil:%201"), &small),
            Expect::Error(400, "invalid_file_name"),
        ),
        (
            "%00 in X-File-Name",
            post(&named(b"a.exe%00.png"), &small),
            Expect::Error(400, "invalid_file_name"),
        ),
        (
            "non-UTF-8 bytes in X-File-Name",
            post(&named(b"r\xe9sum\xe9.txt"), &small),
            Expect::Error(400, "invalid_file_name"),
        ),
        (
            "%FF%FE (not UTF-8) in X-File-Name",
            post(&named(b"%FF%FE.txt"), &small),
            Expect::Error(400, "invalid_file_name"),
        ),
        (
            "bad percent-encoding %zz",
            post(&named(b"a%zz.txt"), &small),
            Expect::Error(400, "invalid_file_name"),
        ),
        (
            "truncated percent-encoding %4",
            post(&named(b"a.txt%4"), &small),
            Expect::Error(400, "invalid_file_name"),
        ),
        (
            "10 KB file name",
            post(&named("a".repeat(10 * 1024).as_bytes()), &small),
            Expect::Error(400, "invalid_file_name"),
        ),
        (
            "256-byte file name",
            post(&named("b".repeat(256).as_bytes()), &small),
            Expect::Error(400, "invalid_file_name"),
        ),
        (
            "no X-File-Name on a raw upload",
            post(&[guest.as_bytes(), b"Content-Type: application/octet-stream\r\n"].concat(), &small),
            Expect::Error(400, "missing_file_name"),
        ),
        (
            "%0D%0A in X-Caption",
            post(&[named(b"a.txt"), b"X-Caption: hi%0D%0A%07bell\r\n".to_vec()].concat(), &small),
            Expect::Error(400, "invalid_caption"),
        ),
    ];
    for (case, request, expect) in name_cases {
        let got = one(addr, &request).await;
        b.record(case, &expect, &got);
    }

    // Path traversal and absolute paths are sanitized, not refused: stored (ticket: nothing is
    // delivered) under ferry's own key with the last component as the name.
    let mut traversal_id = None;
    for (case, name, want) in [
        ("path traversal ../../../etc/passwd", "..%2F..%2F..%2Fetc%2Fpasswd", "passwd"),
        ("absolute Windows path C:\\Windows\\x.txt", "C%3A%5CWindows%5Cx.txt", "x.txt"),
    ] {
        let t = ticket(|_| {});
        let headers =
            format!("{}Content-Type: application/octet-stream\r\nX-File-Name: {name}\r\n", ticket_header(&t));
        let got = one(addr, &post(headers.as_bytes(), &small)).await;
        let key_ok = got.body["storage"]["key"]
            .as_str()
            .is_some_and(|k| k.starts_with(&format!("ferry/{DEPLOYMENT}/")));
        let pass = b.record(case, &Expect::Created, &got) && got.body["name"] == want && key_ok;
        b.rows.last_mut().expect("row").pass = pass;
        b.rows.last_mut().expect("row").got = format!("{} name {}", got.show(), got.body["name"]);
        traversal_id = traversal_id.or(got.body["id"].as_str().map(str::to_owned));
    }
    let boundary = "hostileBoundary7MA4YWxkTrZu0gW";
    let multipart_ct = format!("Content-Type: multipart/form-data; boundary={boundary}\r\n");
    {
        let t = ticket(|_| {});
        let body = form(boundary, &[file_part("/abs/path/x.txt", "text/plain", &small)], true);
        let got = one(addr, &post(format!("{}{multipart_ct}", ticket_header(&t)).as_bytes(), &body)).await;
        let pass =
            b.record("form filename /abs/path/x.txt", &Expect::Created, &got) && got.body["name"] == "x.txt";
        b.rows.last_mut().expect("row").pass = pass;
        b.rows.last_mut().expect("row").got = format!("{} name {}", got.show(), got.body["name"]);
    }

    // --- Lengths and framing -----------------------------------------------------------------
    let head_only = |headers: &str| -> Vec<u8> {
        format!(
            "POST /v1/uploads HTTP/1.1\r\nHost: ferry\r\nConnection: close\r\n{guest}{raw_ok}{headers}\r\n"
        )
        .into_bytes()
    };
    let framing: Vec<(&str, Vec<u8>, Expect)> = vec![
        (
            "Content-Length 2 MiB over a 1 MiB limit (head only)",
            head_only(&format!("Content-Length: {}\r\n", 2 * MIB)),
            Expect::Error(413, "payload_too_large"),
        ),
        (
            "Content-Length 10^18 (head only)",
            head_only("Content-Length: 1000000000000000000\r\n"),
            Expect::Error(413, "payload_too_large"),
        ),
        ("Content-Length overflowing u64", head_only("Content-Length: 99999999999999999999999\r\n"), Expect::Bare(400)),
        ("Content-Length not a number", head_only("Content-Length: 12abc\r\n"), Expect::Bare(400)),
        (
            "two different Content-Lengths",
            [head_only("Content-Length: 5\r\nContent-Length: 6\r\n"), b"hello!".to_vec()].concat(),
            Expect::Bare(400),
        ),
        (
            "chunked size not hex",
            [head_only("Transfer-Encoding: chunked\r\n"), b"zz\r\nhello\r\n0\r\n\r\n".to_vec()].concat(),
            Expect::Error(400, "client_disconnected"),
        ),
        (
            "Transfer-Encoding gzip, chunked-less",
            [head_only("Transfer-Encoding: gzip\r\n"), b"hello".to_vec()].concat(),
            Expect::Bare(400),
        ),
        (
            "multipart Content-Length beyond the limit (head only)",
            format!(
                "POST /v1/uploads HTTP/1.1\r\nHost: ferry\r\nConnection: close\r\n{guest}{multipart_ct}Content-Length: {}\r\n\r\n",
                2 * MIB
            )
            .into_bytes(),
            Expect::Error(413, "payload_too_large"),
        ),
    ];
    for (case, request, expect) in framing {
        let got = one(addr, &request).await;
        b.record(case, &expect, &got);
    }

    // Content-Length and Transfer-Encoding together (request smuggling): RFC 9112 §6.3 lets the
    // server go by Transfer-Encoding alone, and then it must close the connection. hyper does
    // so: the empty chunked body is the file (0 bytes, stored: a ticket, so nothing delivered),
    // and the request pipelined behind it is never served.
    {
        let t = ticket(|_| {});
        let request = format!(
            "POST /v1/uploads HTTP/1.1\r\nHost: ferry\r\n{}{raw_ok}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: ferry\r\nConnection: close\r\n\r\n",
            ticket_header(&t)
        );
        let answers = exchange(addr, request.as_bytes(), Duration::from_secs(30)).await;
        let shown: Vec<String> = answers.iter().map(Answer::show).collect();
        let first = answers.first().cloned().unwrap_or_default();
        let pass = answers.len() == 1 && first.status == Some(201) && first.body["size"] == 0;
        if let Some(k) =
            ferry_testkit::reference::stored_key(&first.body, ferry_testkit::reference::DEFAULT_PREFIX)
                .as_deref()
        {
            b.kept.push(k.to_owned());
        }
        b.record_checked(
            "Content-Length + Transfer-Encoding (smuggling)",
            "201 size 0 (chunked wins), then closed",
            format!("{}, size {}, {} answer(s)", shown.join(" / "), first.body["size"], answers.len()),
            pass,
        );
    }

    // Declared length smaller than the body: HTTP framing takes exactly Content-Length bytes; the
    // rest is the next request on the connection, answered on its own (no credentials carried).
    {
        let t = ticket(|_| {});
        let smuggled = b"POST /v1/uploads HTTP/1.1\r\nHost: ferry\r\nConnection: close\r\nX-File-Name: s.bin\r\nContent-Length: 0\r\n\r\n";
        let declared = &small[..100];
        let request = [
            format!(
                "POST /v1/uploads HTTP/1.1\r\nHost: ferry\r\n{}{raw_ok}Content-Length: 100\r\n\r\n",
                ticket_header(&t)
            )
            .as_bytes(),
            declared,
            smuggled.as_slice(),
        ]
        .concat();
        let answers = exchange(addr, &request, Duration::from_secs(30)).await;
        let shown: Vec<String> = answers.iter().map(Answer::show).collect();
        let first = answers.first().cloned().unwrap_or_default();
        let key = ferry_testkit::reference::stored_key(&first.body, ferry_testkit::reference::DEFAULT_PREFIX)
            .as_deref()
            .map(str::to_owned);
        let stored_ok = match &key {
            Some(k) => h.object(k).await == declared,
            None => false,
        };
        let pass = answers.len() == 2
            && first.status == Some(201)
            && first.body["size"] == 100
            && stored_ok
            && Expect::Error(401, "missing_session").matches(&answers[1]);
        if let Some(k) = key {
            b.kept.push(k);
        }
        b.record_checked(
            "declared length smaller than the body",
            "201 (first 100 B) + 401 missing_session",
            shown.join(" + "),
            pass,
        );
    }

    // Declared length larger than the body: the client stops writing (half-close) early.
    {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let head = format!(
            "POST /v1/uploads HTTP/1.1\r\nHost: ferry\r\nConnection: close\r\n{guest}{raw_ok}Content-Length: 5000\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.expect("head");
        stream.write_all(&small[..1000]).await.expect("body");
        stream.shutdown().await.expect("half-close");
        let got = read_all(&mut stream, Duration::from_secs(30)).await.into_iter().next().unwrap_or_default();
        let expect = Expect::Either(
            Box::new(Expect::Error(400, "incomplete_body")),
            Box::new(Expect::Either(
                Box::new(Expect::Error(400, "client_disconnected")),
                Box::new(Expect::ClosedOr(400)),
            )),
        );
        b.record("body ends early (half-close at 1000 of 5000 B)", &expect, &got);
    }

    // Chunked bodies beyond the limit: cut off while streaming (a 5 MiB part is never reached).
    for (case, multipart) in [("chunked raw body of 3 MiB", false), ("chunked form of 3 MiB", true)] {
        let data = bytes(b"", 3 * MIB, 3);
        let mut request = vec![
            "-H".to_owned(),
            format!("Authorization: Bearer {}", h.token),
            "-H".into(),
            format!("X-Genesys-Deployment-Id: {DEPLOYMENT}"),
            "-H".into(),
            "Transfer-Encoding: chunked".into(),
        ];
        if multipart {
            let path = h.file("big.bin", &data);
            request.extend(["-F".into(), format!("file=@{};type=application/octet-stream", path.display())]);
        } else {
            request.extend([
                "-H".into(),
                "Content-Type: application/octet-stream".into(),
                "-H".into(),
                "X-File-Name: big.bin".into(),
                "--data-binary".into(),
                "@-".into(),
            ]);
        }
        let reply = h.post(&request, (!multipart).then_some(data)).await;
        let got = Answer {
            status: Some(reply.status),
            body: serde_json::from_slice(&reply.body).unwrap_or(Value::Null),
            location: None,
        };
        b.record(case, &Expect::Error(413, "payload_too_large"), &got);
    }

    // --- Multipart ----------------------------------------------------------------------------
    let form_post = |content_type: &str, body: &[u8]| -> Vec<u8> {
        post(format!("{guest}Content-Type: {content_type}\r\n").as_bytes(), body)
    };
    let mp = format!("multipart/form-data; boundary={boundary}");
    let text_part = part("Content-Disposition: form-data; name=\"text\"", b"hello");
    let huge_header = part(
        &format!(
            "Content-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nX-Padding: {}",
            "p".repeat(200 * 1024)
        ),
        &small,
    );
    let multipart_cases: Vec<(&str, Vec<u8>, Expect)> = vec![
        (
            "multipart without boundary",
            form_post(
                "multipart/form-data",
                &form(boundary, &[file_part("a.txt", "text/plain", &small)], true),
            ),
            Expect::Error(400, "invalid_multipart"),
        ),
        (
            "multipart, body uses another boundary",
            form_post(&mp, &form("otherBoundary", &[file_part("a.txt", "text/plain", &small)], true)),
            Expect::Error(400, "invalid_multipart"),
        ),
        (
            "multipart, no file part",
            form_post(&mp, &form(boundary, std::slice::from_ref(&text_part), true)),
            Expect::Error(400, "invalid_multipart"),
        ),
        (
            "multipart, unterminated text part",
            form_post(&mp, &[format!("--{boundary}").into_bytes(), text_part.clone()].concat()),
            Expect::Error(400, "invalid_multipart"),
        ),
        (
            "multipart, unterminated file part",
            form_post(
                &mp,
                &[format!("--{boundary}").into_bytes(), file_part("a.txt", "text/plain", &small)].concat(),
            ),
            Expect::Error(400, "invalid_multipart"),
        ),
        (
            "multipart, two file parts",
            form_post(
                &mp,
                &form(
                    boundary,
                    &[file_part("a.txt", "text/plain", &small), file_part("b.txt", "text/plain", &small)],
                    true,
                ),
            ),
            Expect::Error(400, "invalid_multipart"),
        ),
        (
            "multipart, 200 KB part header",
            form_post(&mp, &form(boundary, &[huge_header], true)),
            Expect::Error(400, "invalid_multipart"),
        ),
        (
            "multipart, 10 KB filename",
            form_post(&mp, &form(boundary, &[file_part(&"n".repeat(10 * 1024), "text/plain", &small)], true)),
            Expect::Error(400, "invalid_file_name"),
        ),
        (
            "multipart, evil.exe declared image/png",
            form_post(&mp, &form(boundary, &[file_part("evil.exe", "image/png", &exe)], true)),
            Expect::Error(415, "unsupported_media_type"),
        ),
        (
            "multipart, MZ bytes in photo.png",
            form_post(&mp, &form(boundary, &[file_part("photo.png", "image/png", &exe)], true)),
            Expect::Error(415, "unsupported_media_type"),
        ),
    ];
    for (case, request, expect) in multipart_cases {
        let got = one(addr, &request).await;
        b.record(case, &expect, &got);
    }

    // --- Content type spoofing ----------------------------------------------------------------
    let typed = |name: &str, content_type: &str| {
        format!("{guest}Content-Type: {content_type}\r\nX-File-Name: {name}\r\n").into_bytes()
    };
    let elf = bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00", 3000, 4);
    let script = b"#!/bin/sh\nrm -rf --no-preserve-root /\n".repeat(10);
    let spoofing: Vec<(&str, Vec<u8>, Expect)> = vec![
        (
            "evil.exe declared image/png",
            post(&typed("evil.exe", "image/png"), &exe),
            Expect::Error(415, "unsupported_media_type"),
        ),
        (
            "MZ bytes as photo.png, image/png",
            post(&typed("photo.png", "image/png"), &exe),
            Expect::Error(415, "unsupported_media_type"),
        ),
        (
            "MZ bytes as data.bin, octet-stream",
            post(&typed("data.bin", "application/octet-stream"), &exe),
            Expect::Error(415, "unsupported_media_type"),
        ),
        (
            "ELF bytes as report.pdf",
            post(&typed("report.pdf", "application/pdf"), &elf),
            Expect::Error(415, "unsupported_media_type"),
        ),
        (
            "#! script as notes.txt",
            post(&typed("notes.txt", "text/plain"), &script),
            Expect::Error(415, "unsupported_media_type"),
        ),
        (
            "random bytes declared image/png",
            post(&typed("x.png", "image/png"), &small),
            Expect::Error(415, "unsupported_media_type"),
        ),
        (
            "INVOICE.PDF.EXE",
            post(&typed("INVOICE.PDF.EXE", "application/pdf"), &small),
            Expect::Error(415, "unsupported_media_type"),
        ),
        (
            "right-to-left override: invoice\u{202e}fdp.exe",
            post(&typed("invoice%E2%80%AEfdp.exe", "application/pdf"), &small),
            Expect::Error(400, "invalid_file_name"),
        ),
        (
            "Content-Type not a MIME type",
            post(&typed("a.txt", "notamime"), &small),
            Expect::Error(415, "unsupported_media_type"),
        ),
    ];
    for (case, request, expect) in spoofing {
        let got = one(addr, &request).await;
        b.record(case, &expect, &got);
    }

    // --- Digests ------------------------------------------------------------------------------
    for (case, header) in [
        ("Content-MD5 not base64", "Content-MD5: !!!not base64!!!"),
        ("Content-MD5 of 15 bytes", "Content-MD5: AAAAAAAAAAAAAAAAAAAA"),
        ("Content-MD5 hex instead of base64", "Content-MD5: 2e3459de1f72471c523e63a8760dcf2d"),
        ("Repr-Digest without colons", "Repr-Digest: sha-256=abc"),
        ("Repr-Digest sha-256 of MD5 length", "Repr-Digest: sha-256=:LjRZ3h9yRxxSPmOodg3PLQ==:"),
        ("Repr-Digest with no '='", "Repr-Digest: garbage"),
    ] {
        let got =
            one(addr, &post(&[raw_with(&guest), format!("{header}\r\n").into_bytes()].concat(), &small))
                .await;
        b.record(case, &Expect::Error(400, "invalid_digest"), &got);
    }

    // --- Download links -----------------------------------------------------------------------
    let id = traversal_id.expect("a stored file to link to");
    let signer = LinkSigner::new(LINK_SECRET.as_bytes(), &format!("http://{PUBLIC_HOST}"));
    let later = now() + 3600;
    let genuine = signer.signature(&id, later);
    let mut flipped = genuine.clone().into_bytes();
    flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).expect("hex");
    let foreign = file_id("../../../etc/passwd");
    let link_cases: Vec<(&str, String, Expect)> = vec![
        (
            "genuine link (control)",
            format!("/v1/files/{id}?expires={later}&signature={genuine}"),
            Expect::Found,
        ),
        (
            "link without signature",
            format!("/v1/files/{id}?expires={later}"),
            Expect::Error(403, "invalid_link"),
        ),
        ("link without anything", format!("/v1/files/{id}"), Expect::Error(403, "invalid_link")),
        (
            "link with a flipped signature",
            format!("/v1/files/{id}?expires={later}&signature={flipped}"),
            Expect::Error(403, "invalid_link"),
        ),
        (
            "link with expiry pushed later",
            format!("/v1/files/{id}?expires={}&signature={genuine}", later + 86_400),
            Expect::Error(403, "invalid_link"),
        ),
        (
            "expired link (correctly signed)",
            format!("/v1/files/{id}?expires={}&signature={}", now() - 10, signer.signature(&id, now() - 10)),
            Expect::Error(403, "invalid_link"),
        ),
        (
            "signed link to a foreign id ../../../etc/passwd",
            format!("/v1/files/{foreign}?expires={later}&signature={}", signer.signature(&foreign, later)),
            Expect::Error(403, "invalid_link"),
        ),
        (
            "link with a non-hex signature",
            format!("/v1/files/{id}?expires={later}&signature={}", "z".repeat(64)),
            Expect::Error(403, "invalid_link"),
        ),
        (
            "link with a negative expiry",
            format!("/v1/files/{id}?expires=-1&signature={genuine}"),
            Expect::Error(403, "invalid_link"),
        ),
    ];
    for (case, path, expect) in link_cases {
        let got = one(addr, &get(&path)).await;
        b.record(case, &expect, &got);
    }

    // --- After the battery: no debris ------------------------------------------------------
    let deadline = Instant::now() + Duration::from_secs(15);
    while h.pending_uploads().await > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pending = h.pending_uploads().await;
    let mut keys = h.keys().await;
    keys.sort();
    let mut kept = b.kept.clone();
    kept.sort();
    let touched: Vec<String> = h
        .emulator
        .state()
        .conversations()
        .iter()
        .filter(|c| !c.attachments.is_empty() || !c.messages.is_empty())
        .map(|c| {
            format!(
                "{} file(s) named {:?}, {} message(s)",
                c.attachments.len(),
                c.attachments.iter().map(|a| a.file_name.clone()).collect::<Vec<_>>(),
                c.messages.len()
            )
        })
        .collect();
    let violations = h.emulator.state().violations();

    // ferry still serves a normal guest upload, delivered into the conversation.
    let path = h.file("after.txt", b"still here after the battery\n");
    let mut request = h.guest();
    request.extend(crate::args(&[
        "-H",
        "Content-Type: text/plain",
        "-H",
        "X-File-Name: after.txt",
        "--data-binary",
    ]));
    request.push(format!("@{}", path.display()));
    let messages_before = h.conversation()["messages"].as_array().map_or(0, Vec::len);
    let reply = h.post(&request, None).await;
    let messages_after = h.conversation()["messages"].as_array().map_or(0, Vec::len);
    let delivered = reply.status == 201 && messages_after == messages_before + 1;
    let reply_key = if reply.status == 201 {
        ferry_testkit::reference::stored_key(&reply.json(), ferry_testkit::reference::DEFAULT_PREFIX)
            .as_deref()
            .map(str::to_owned)
    } else {
        None
    };

    let timeouts = timeouts_and_stalled_connections(&mut b).await;
    b.print();
    println!("battery took {:.1} s", started.elapsed().as_secs_f64());

    let mut debris = Vec::new();
    if pending != 0 {
        debris.push(format!("{pending} multipart upload(s) left in progress"));
    }
    if keys != kept {
        let extra: Vec<&String> = keys.iter().filter(|k| !kept.contains(k)).collect();
        debris.push(format!("objects not from a case meant to succeed: {extra:?}"));
    }
    if !touched.is_empty() {
        debris.push(format!("the battery reached a conversation: {touched:?}"));
    }
    if !violations.is_empty() {
        debris.push(format!("emulator violations: {violations:?}"));
    }
    if !delivered || reply_key.is_none() {
        debris.push(format!(
            "a normal upload after the battery failed: {} {}",
            reply.status,
            reply.json()["error"]["code"]
        ));
    }
    if !timeouts {
        debris.push("the timeout harness left objects or multipart uploads".into());
    }
    println!(
        "after the battery: {}",
        if debris.is_empty() { "no debris; ferry still serves".into() } else { debris.join("; ") }
    );
    // Empties and removes the bucket, and checks ferry logged no secret.
    h.finish().await;
    let failed: Vec<&str> = b.rows.iter().filter(|r| !r.pass).map(|r| r.case.as_str()).collect();
    assert!(b.rows.len() >= 40, "only {} cases", b.rows.len());
    assert!(failed.is_empty() && debris.is_empty(), "hostile cases failed: {failed:?}; debris: {debris:?}");
}

/// The cases that need other settings: a 1 s header timeout and a 3 s idle-body timeout. Returns
/// whether the second ferry ended clean (nothing stored, no upload in progress).
async fn timeouts_and_stalled_connections(b: &mut Battery) -> bool {
    const STALLED: usize = 1000;
    let soft = raise_nofile(4096);
    let stalled =
        if soft >= 2 * STALLED as u64 + 200 { STALLED } else { (soft as usize).saturating_sub(200) / 2 };
    let options = Options {
        limits: vec!["header_timeout_secs = 1".into(), "idle_body_timeout_secs = 3".into()],
        // 1,000 connections from loopback: the per-client rate limit is abuse.rs's to test.
        toml: vec!["[admission]".into(), "per_client_per_minute = 0".into()],
        ..Options::default()
    };
    let h = Harness::start("hostile-timeouts", options).await;
    let addr = h.ferry.addr();
    let raw_ok = "Content-Type: application/octet-stream\r\nX-File-Name: slow.bin\r\n";

    // Slow-loris headers: one byte every 200 ms, never finishing within the 1 s header timeout.
    {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let head = format!(
            "POST /v1/uploads HTTP/1.1\r\nHost: ferry\r\n{}{raw_ok}Content-Length: 10\r\n\r\n",
            ticket_header(&ticket(|_| {}))
        );
        let started = Instant::now();
        let (mut reader, mut writer) = stream.split();
        let write = async {
            for byte in head.as_bytes() {
                if writer.write_all(&[*byte]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            std::future::pending::<()>().await;
        };
        let mut raw = Vec::new();
        let read = async {
            let mut buf = vec![0u8; 4096];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => raw.extend_from_slice(&buf[..n]),
                }
            }
        };
        let closed = tokio::time::timeout(Duration::from_secs(8), async {
            tokio::select! {
                () = write => {},
                () = read => {},
            }
        })
        .await
        .is_ok();
        let took = started.elapsed();
        let got = parse_answers(&raw).into_iter().next().unwrap_or_default();
        let pass = closed && took < Duration::from_secs(4) && Expect::ClosedOr(408).matches(&got);
        b.record_checked(
            "slow-loris headers (1 byte / 200 ms)",
            "closed or 408 within ~1 s",
            format!(
                "{} after {:.1} s",
                if closed { got.show() } else { "still open".into() },
                took.as_secs_f64()
            ),
            pass,
        );
    }

    // A body that stalls: 408 body_timeout after 3 s.
    {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let head = format!(
            "POST /v1/uploads HTTP/1.1\r\nHost: ferry\r\nConnection: close\r\n{}{raw_ok}Content-Length: 100000\r\n\r\n",
            ticket_header(&ticket(|_| {}))
        );
        stream.write_all(head.as_bytes()).await.expect("head");
        stream.write_all(&bytes(b"", 5000, 5)).await.expect("some body");
        let got = read_all(&mut stream, Duration::from_secs(20)).await.into_iter().next().unwrap_or_default();
        b.record("body stalls after 5000 B", &Expect::Error(408, "body_timeout"), &got);
    }

    // A trickling body: 20 bytes every 500 ms, far below 1024 B/s once 3 s have passed.
    {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let head = format!(
            "POST /v1/uploads HTTP/1.1\r\nHost: ferry\r\nConnection: close\r\n{}{raw_ok}Content-Length: 100000\r\n\r\n",
            ticket_header(&ticket(|_| {}))
        );
        stream.write_all(head.as_bytes()).await.expect("head");
        let data = bytes(b"", 100_000, 6);
        let (mut reader, mut writer) = stream.split();
        let trickle = async {
            for piece in data.chunks(20) {
                if writer.write_all(piece).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            std::future::pending::<()>().await;
        };
        let mut raw = Vec::new();
        let read = async {
            let mut buf = vec![0u8; 4096];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => raw.extend_from_slice(&buf[..n]),
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(20), async {
            tokio::select! {
                () = trickle => {},
                () = read => {},
            }
        })
        .await;
        let got = parse_answers(&raw).into_iter().next().unwrap_or_default();
        b.record("trickling body (20 B / 500 ms)", &Expect::Error(408, "too_slow"), &got);
    }

    // 1,000 connections send the head of a ticket upload (Content-Length 1 MiB) and no body; meanwhile
    // another client uploads normally.
    {
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..stalled {
            let head = format!(
                "POST /v1/uploads HTTP/1.1\r\nHost: ferry\r\nConnection: close\r\n{}{raw_ok}Content-Length: {MIB}\r\n\r\n",
                ticket_header(&ticket(|_| {}))
            );
            tasks.spawn(async move {
                let mut stream = TcpStream::connect(addr).await.ok()?;
                stream.write_all(head.as_bytes()).await.ok()?;
                Some(
                    read_all(&mut stream, Duration::from_secs(60))
                        .await
                        .into_iter()
                        .next()
                        .unwrap_or_default(),
                )
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        // While they hang: ferry answers health checks and other clients at once.
        let health = curl(&[h.ferry.url("/healthz")], None).await;
        let path = h.file("meanwhile.txt", b"a normal upload among stalled connections\n");
        let normal = |name: &str| {
            vec![
                "-H".to_owned(),
                format!("Authorization: Ferry-Ticket {}", ticket(|_| {})),
                "-H".into(),
                "Content-Type: text/plain".into(),
                "-H".into(),
                format!("X-File-Name: {name}"),
                "--data-binary".into(),
                format!("@{}", path.display()),
            ]
        };
        let t0 = Instant::now();
        let during = h.post(&normal("during.txt"), None).await;
        let during_took = t0.elapsed();
        let mut tally: std::collections::BTreeMap<String, usize> = Default::default();
        while let Some(joined) = tasks.join_next().await {
            let shown = joined.ok().flatten().map_or_else(|| "connect/write failed".into(), |a| a.show());
            *tally.entry(shown).or_default() += 1;
        }
        let after = h.post(&normal("after.txt"), None).await;
        let all_answered = tally.keys().all(|k| k == "408 body_timeout" || k == "503 server_busy");
        let pass = health.status == 200 && during.status == 201 && after.status == 201 && all_answered;
        let tally: Vec<String> = tally.iter().map(|(k, n)| format!("{n}× {k}")).collect();
        b.record_checked(
            &format!("{stalled} connections that never send a body"),
            "408/503 each; health 200; others get 201",
            format!(
                "{}; health {}; upload during: {} in {:.1} s, after: {}; {:.1} s",
                tally.join(", "),
                health.status,
                during.status,
                during_took.as_secs_f64(),
                after.status,
                started.elapsed().as_secs_f64()
            ),
            pass,
        );
        for reply in [&during, &after] {
            if reply.status == 201 {
                let key = ferry_testkit::reference::stored_key(
                    &reply.json(),
                    ferry_testkit::reference::DEFAULT_PREFIX,
                )
                .as_deref()
                .map(str::to_owned);
                if let Some(key) = key {
                    let _ = h.s3.delete_object().bucket(&h.bucket).key(key).send().await;
                }
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while h.pending_uploads().await > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let clean = h.pending_uploads().await == 0 && h.keys().await.is_empty();
    h.finish().await;
    clean
}
