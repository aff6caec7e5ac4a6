//! An HTTP proxy between an S3 client and a real S3 server that injects faults by rule.
//!
//! Each [`Rule`] names the requests it applies to ([`Target`]: an S3 operation, optionally a part
//! number), which of the matching requests (`skip` the first ones, then the next `times`), and an
//! [`Action`]: answer with an S3 error (503 SlowDown, 500 InternalError…), reset the connection in
//! the middle of the request body, delay, flip one byte of the body on its way to the server, or
//! close the connection without answering. Everything else is forwarded untouched (the `Host` header
//! included, so SigV4 signatures stay valid). Every request is logged with the fault applied, so a
//! test can assert what happened, not only how it ended.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use ferry_sandbox::s3_faults::{Action, FaultProxy, Rule, Target};
//! let upstream = "127.0.0.1:4566".parse().unwrap();
//! let proxy = FaultProxy::start(upstream).await?;
//! // UploadPart #3 answers 503 SlowDown on its first two tries.
//! proxy.add_rule(Rule::new(Target::UploadPart(Some(3)), Action::slow_down()).times(2));
//! // point the S3 client at proxy.endpoint()
//! # Ok(()) }
//! ```

use bytes::Bytes;
use futures::StreamExt;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// The S3 operation a request performs, read from its method and query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `POST ?uploads`.
    CreateMultipartUpload,
    /// `PUT ?partNumber=N&uploadId=…`.
    UploadPart(u32),
    /// `POST ?uploadId=…`.
    CompleteMultipartUpload,
    /// `DELETE ?uploadId=…`.
    AbortMultipartUpload,
    /// `GET ?uploadId=…`.
    ListParts,
    /// `GET ?uploads`.
    ListMultipartUploads,
    /// `PUT` of an object.
    PutObject,
    /// `GET` of an object.
    GetObject,
    /// `HEAD` of an object.
    HeadObject,
    /// `DELETE` of an object.
    DeleteObject,
    /// Anything else.
    Other,
}

impl Operation {
    /// Classifies a request.
    pub fn of(method: &http::Method, query: Option<&str>) -> Self {
        let params: Vec<(&str, &str)> = query
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').unwrap_or((p, "")))
            // The SDKs add `x-id=<Operation>` to some requests; it names, it does not change, them.
            .filter(|(k, _)| *k != "x-id")
            .collect();
        let has = |name: &str| params.iter().any(|(k, _)| *k == name);
        let part = params.iter().find(|(k, _)| *k == "partNumber").and_then(|(_, v)| v.parse().ok());
        match (method.as_str(), has("uploads"), has("uploadId"), part) {
            ("POST", true, _, _) => Self::CreateMultipartUpload,
            ("PUT", _, true, Some(n)) => Self::UploadPart(n),
            ("POST", _, true, _) => Self::CompleteMultipartUpload,
            ("DELETE", _, true, _) => Self::AbortMultipartUpload,
            ("GET", _, true, _) => Self::ListParts,
            ("GET", true, _, _) => Self::ListMultipartUploads,
            ("PUT", _, _, _) if params.is_empty() => Self::PutObject,
            ("GET", _, _, _) if params.is_empty() => Self::GetObject,
            ("HEAD", _, _, _) => Self::HeadObject,
            ("DELETE", _, _, _) if params.is_empty() => Self::DeleteObject,
            _ => Self::Other,
        }
    }
}

/// Which requests a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Every request.
    Any,
    /// One operation.
    Op(Operation),
    /// UploadPart: of one part number, or of any part (`None`).
    UploadPart(Option<u32>),
}

impl Target {
    fn matches(self, op: Operation) -> bool {
        match self {
            Self::Any => true,
            Self::Op(o) => o == op,
            Self::UploadPart(None) => matches!(op, Operation::UploadPart(_)),
            Self::UploadPart(Some(n)) => op == Operation::UploadPart(n),
        }
    }
}

/// What to do to a matching request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Read the request body, then answer with this status and S3 error code.
    Respond {
        /// HTTP status.
        status: u16,
        /// S3 `<Code>`.
        code: String,
    },
    /// Read about half of the request body, then drop the connection without an answer.
    ResetMidBody,
    /// Drop the connection at once, reading nothing.
    Close,
    /// Wait, then forward.
    Delay(Duration),
    /// Forward with the body byte at this offset inverted.
    FlipByte(u64),
}

impl Action {
    /// 503 SlowDown.
    pub fn slow_down() -> Self {
        Self::Respond { status: 503, code: "SlowDown".into() }
    }

    /// 500 InternalError.
    pub fn internal_error() -> Self {
        Self::Respond { status: 500, code: "InternalError".into() }
    }
}

/// A fault rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Requests it applies to.
    pub target: Target,
    /// Matching requests let through before the rule starts applying.
    pub skip: u32,
    /// Matching requests the rule applies to after `skip` (`u32::MAX`: all of them).
    pub times: u32,
    /// The fault.
    pub action: Action,
}

impl Rule {
    /// A rule applying `action` to the first matching request.
    pub fn new(target: Target, action: Action) -> Self {
        Self { target, skip: 0, times: 1, action }
    }

    /// Applies to this many matching requests.
    pub fn times(mut self, times: u32) -> Self {
        self.times = times;
        self
    }

    /// Lets the first `skip` matching requests through.
    pub fn skip(mut self, skip: u32) -> Self {
        self.skip = skip;
        self
    }

    /// Applies to every matching request.
    pub fn always(self) -> Self {
        self.times(u32::MAX)
    }
}

/// One request as the proxy saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The operation.
    pub op: Operation,
    /// The fault applied, if any.
    pub fault: Option<Action>,
    /// Status returned to the client (`None` if the connection was dropped).
    pub status: Option<u16>,
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<(Rule, u32)>,
    log: Vec<Record>,
}

/// A running fault proxy; stops when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port forwarding to `upstream` (plain HTTP).
    ///
    /// # Errors
    /// When no port can be bound.
    pub async fn start(upstream: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let client: Client<HttpConnector, ProxyBody> = Client::builder(TokioExecutor::new()).build_http();
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let (state, client) = (Arc::clone(&shared), client.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        handle(req, upstream, Arc::clone(&state), client.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, state, task })
    }

    /// `http://127.0.0.1:PORT`: point the S3 client here.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds a rule; rules are tried in the order added, the first applicable one wins.
    pub fn add_rule(&self, rule: Rule) {
        self.lock().rules.push((rule, 0));
    }

    /// Removes every rule.
    pub fn clear_rules(&self) {
        self.lock().rules.clear();
    }

    /// Every request seen so far.
    pub fn log(&self) -> Vec<Record> {
        self.lock().log.clone()
    }

    /// The requests of one operation.
    pub fn requests_of(&self, target: Target) -> Vec<Record> {
        self.log().into_iter().filter(|r| target.matches(r.op)).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn pick_fault(state: &Mutex<State>, op: Operation) -> Option<Action> {
    let mut state = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    for (rule, seen) in &mut state.rules {
        if !rule.target.matches(op) {
            continue;
        }
        let index = *seen;
        *seen += 1;
        if index >= rule.skip && index - rule.skip < rule.times {
            return Some(rule.action.clone());
        }
    }
    None
}

fn record(state: &Mutex<State>, op: Operation, fault: Option<Action>, status: Option<u16>) {
    state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).log.push(Record { op, fault, status });
}

fn error_response(status: u16, code: &str) -> Response<ProxyBody> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>injected by ferry-sandbox</Message><RequestId>sandbox</RequestId></Error>"
    );
    let mut response = Response::new(Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed());
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/xml"));
    response
}

async fn handle(
    req: Request<Incoming>,
    upstream: SocketAddr,
    state: Arc<Mutex<State>>,
    client: Client<HttpConnector, ProxyBody>,
) -> Result<Response<ProxyBody>, io::Error> {
    let op = Operation::of(req.method(), req.uri().query());
    let fault = pick_fault(&state, op);
    let declared: u64 = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    match &fault {
        Some(Action::Respond { status, code }) => {
            let _ = req.into_body().collect().await;
            record(&state, op, fault.clone(), Some(*status));
            return Ok(error_response(*status, code));
        }
        Some(Action::Close) => {
            record(&state, op, fault, None);
            return Err(io::Error::new(io::ErrorKind::ConnectionReset, "injected: connection closed"));
        }
        Some(Action::ResetMidBody) => {
            let mut body = req.into_body();
            let mut read = 0u64;
            while read < declared / 2 {
                match body.frame().await {
                    Some(Ok(frame)) => read += frame.data_ref().map_or(0, |d| d.len() as u64),
                    _ => break,
                }
            }
            record(&state, op, fault, None);
            return Err(io::Error::new(io::ErrorKind::ConnectionReset, "injected: reset mid-body"));
        }
        Some(Action::Delay(d)) => tokio::time::sleep(*d).await,
        Some(Action::FlipByte(_)) | None => {}
    }

    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    parts.uri = format!("http://{upstream}{path}").parse().map_err(io::Error::other)?;
    let body: ProxyBody = match fault {
        Some(Action::FlipByte(offset)) => {
            let mut position = 0u64;
            let stream = body.into_data_stream().map(move |chunk| {
                chunk.map(|data| {
                    let start = position;
                    position += data.len() as u64;
                    if (start..position).contains(&offset) {
                        let mut bytes = data.to_vec();
                        bytes[(offset - start) as usize] ^= 0xff;
                        Frame::data(Bytes::from(bytes))
                    } else {
                        Frame::data(data)
                    }
                })
            });
            BodyExt::boxed(StreamBody::new(stream))
        }
        _ => body.boxed(),
    };
    let fault_for_log = fault.clone();
    match client.request(Request::from_parts(parts, body)).await {
        Ok(response) => {
            record(&state, op, fault_for_log, Some(response.status().as_u16()));
            let (parts, body) = response.into_parts();
            Ok(Response::from_parts(parts, body.boxed()))
        }
        Err(e) => {
            record(&state, op, fault_for_log, Some(502));
            tracing::warn!(error = %e, "fault proxy: upstream request failed");
            Ok(error_response(502, "BadGateway"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_read_from_method_and_query() {
        use http::Method;
        assert_eq!(Operation::of(&Method::POST, Some("uploads")), Operation::CreateMultipartUpload);
        assert_eq!(Operation::of(&Method::PUT, Some("partNumber=3&uploadId=x")), Operation::UploadPart(3));
        assert_eq!(Operation::of(&Method::POST, Some("uploadId=x")), Operation::CompleteMultipartUpload);
        assert_eq!(Operation::of(&Method::DELETE, Some("uploadId=x")), Operation::AbortMultipartUpload);
        assert_eq!(Operation::of(&Method::GET, Some("uploadId=x")), Operation::ListParts);
        assert_eq!(Operation::of(&Method::GET, Some("uploads&prefix=a")), Operation::ListMultipartUploads);
        assert_eq!(Operation::of(&Method::PUT, None), Operation::PutObject);
        assert_eq!(Operation::of(&Method::PUT, Some("x-id=PutObject")), Operation::PutObject);
        assert_eq!(Operation::of(&Method::PUT, Some("acl")), Operation::Other);
    }

    #[test]
    fn rules_skip_then_apply_a_number_of_times() {
        let state = Mutex::new(State::default());
        state
            .lock()
            .unwrap()
            .rules
            .push((Rule::new(Target::UploadPart(Some(2)), Action::slow_down()).skip(1).times(2), 0));
        let op = Operation::UploadPart(2);
        assert_eq!(pick_fault(&state, Operation::UploadPart(1)), None);
        assert_eq!(pick_fault(&state, op), None);
        assert_eq!(pick_fault(&state, op), Some(Action::slow_down()));
        assert_eq!(pick_fault(&state, op), Some(Action::slow_down()));
        assert_eq!(pick_fault(&state, op), None);
    }
}
