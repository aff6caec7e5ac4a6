//! One token fetch: the client-credentials exchange with the login service, retried on 429, 5xx
//! and transport errors as `ferry_core::retry` decides.

use std::time::Duration;

use base64::Engine as _;
use ferry_core::retry::{RetryClass, RetryDecision, Schedule, classify, parse_retry_after_seconds};
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue, RETRY_AFTER};
use serde_json::Value;
use tokio::time::Instant;

use crate::manager::RequestCounter;
use crate::{AuthConfig, Error};

/// Largest token response read; a real one is a few hundred bytes.
const MAX_BODY: usize = 64 * 1024;

/// A token as the login service described it.
pub(crate) struct Granted {
    pub(crate) access_token: String,
    pub(crate) token_type: String,
    pub(crate) expires_in: Duration,
    /// When the request that obtained it was sent: its lifetime is counted from there, so clock
    /// time spent in transit shortens it rather than lengthening it.
    pub(crate) requested_at: Instant,
}

/// The HTTP side of the token manager.
pub(crate) struct Fetcher {
    http: reqwest::Client,
    endpoint: String,
    authorization: HeaderValue,
}

impl Fetcher {
    pub(crate) fn new(config: &AuthConfig, http: reqwest::Client) -> Result<Self, Error> {
        if config.client_id.is_empty() {
            return Err(Error::Config { reason: "the OAuth client id is empty".into() });
        }
        if config.client_secret.expose().is_empty() {
            return Err(Error::Config { reason: "the OAuth client secret is empty".into() });
        }
        let endpoint = config.token_endpoint();
        if reqwest::Url::parse(&endpoint).is_err() {
            return Err(Error::Config {
                reason: format!("the login URL {:?} is not a URL", config.login_url),
            });
        }
        let credentials = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            config.client_id,
            config.client_secret.expose()
        ));
        let mut authorization = HeaderValue::try_from(format!("Basic {credentials}"))
            .map_err(|_| Error::Config { reason: "the client id cannot be sent in a header".into() })?;
        authorization.set_sensitive(true);
        Ok(Self { http, endpoint, authorization })
    }

    /// Fetches a token, retrying transient failures within `config.retry`.
    pub(crate) async fn fetch(
        &self,
        config: &AuthConfig,
        counter: &RequestCounter<'_>,
    ) -> Result<Granted, Error> {
        let mut schedule =
            Schedule::new(config.retry, Instant::now().into_std(), rand::random::<u64> as fn() -> u64);
        loop {
            let attempt = schedule.attempt();
            counter.sent();
            let error = match self.attempt(config).await {
                Ok(granted) => return Ok(granted),
                Err(error) => error,
            };
            let class = error.failure().map_or(RetryClass::Fatal, |failure| classify(&failure));
            match schedule.on_failure(class, Instant::now().into_std(), error.retry_after()) {
                RetryDecision::RetryAfter(delay) => {
                    tracing::warn!(attempt, ?delay, error = %error, "token request failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                RetryDecision::GiveUp(reason) => {
                    tracing::warn!(attempt, ?reason, error = %error, "token request failed; giving up");
                    return Err(error);
                }
            }
        }
    }

    async fn attempt(&self, config: &AuthConfig) -> Result<Granted, Error> {
        let mut request = self
            .http
            .post(&self.endpoint)
            .header(AUTHORIZATION, self.authorization.clone())
            .header(ACCEPT, "application/json")
            .form(&[("grant_type", "client_credentials")]);
        if let Some(timeout) = config.request_timeout {
            request = request.timeout(timeout);
        }
        let requested_at = Instant::now();
        let response = request.send().await?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after_seconds);
        let body = read_limited(response).await?;
        if (200..300).contains(&status) {
            let (access_token, token_type, expires_in) = parse_grant(&body)?;
            return Ok(Granted { access_token, token_type, expires_in, requested_at });
        }
        Err(refusal(status, &body, retry_after))
    }
}

async fn read_limited(response: reqwest::Response) -> Result<bytes::Bytes, Error> {
    crate::body::read_limited(response, MAX_BODY).await.map_err(|error| match error {
        crate::body::BodyError::Transport(source) => Error::from(source),
        other => Error::MalformedResponse { reason: other.to_string() },
    })
}

/// Maps a non-2xx response to an error. The body is consulted only for the OAuth `error` and
/// `error_description` fields.
fn refusal(status: u16, body: &[u8], retry_after: Option<Duration>) -> Error {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let field =
        |name: &str| json.as_ref().and_then(|j| j.get(name)).and_then(Value::as_str).map(str::to_owned);
    let error = field("error");
    let description = field("error_description");
    match error.as_deref() {
        Some("invalid_client" | "unauthorized_client") => {
            Error::InvalidClient { status, error: error.unwrap_or_default(), description }
        }
        _ if status == 401 => Error::InvalidClient {
            status,
            error: error.unwrap_or_else(|| "unauthorized".into()),
            description,
        },
        _ if status == 429 => Error::RateLimited { retry_after },
        _ if status >= 500 => Error::Server { status },
        _ => Error::Rejected { status, error, description },
    }
}

/// Parses a 2xx token response. Error messages name fields, never values (the body holds the
/// token).
fn parse_grant(body: &[u8]) -> Result<(String, String, Duration), Error> {
    let malformed = |reason: String| Error::MalformedResponse { reason };
    let json: Value = serde_json::from_slice(body).map_err(|e| {
        malformed(format!("not JSON ({:?} error at line {} column {})", e.classify(), e.line(), e.column()))
    })?;
    let object = json.as_object().ok_or_else(|| malformed("not a JSON object".into()))?;
    let access_token = match object.get("access_token") {
        Some(Value::String(token)) if !token.is_empty() => token.clone(),
        Some(Value::String(_)) => return Err(malformed("access_token is empty".into())),
        Some(_) => return Err(malformed("access_token is not a string".into())),
        None => return Err(malformed("access_token is missing".into())),
    };
    let token_type = match object.get("token_type") {
        None | Some(Value::Null) => "bearer".to_owned(),
        Some(Value::String(kind)) if kind.eq_ignore_ascii_case("bearer") => kind.clone(),
        Some(Value::String(_)) => return Err(malformed("token_type is not bearer".into())),
        Some(_) => return Err(malformed("token_type is not a string".into())),
    };
    let expires_in = match object.get("expires_in") {
        Some(Value::Number(n)) => {
            if let Some(secs) = n.as_u64() {
                Duration::from_secs(secs)
            } else {
                match n.as_f64() {
                    Some(secs) if (0.0..1e12).contains(&secs) => Duration::from_secs_f64(secs),
                    _ => return Err(malformed("expires_in is not a non-negative number".into())),
                }
            }
        }
        Some(Value::String(text)) => match text.trim().parse::<u64>() {
            Ok(secs) => Duration::from_secs(secs),
            Err(_) => return Err(malformed("expires_in is not a number".into())),
        },
        Some(_) => return Err(malformed("expires_in is not a number".into())),
        None => return Err(malformed("expires_in is missing".into())),
    };
    if expires_in.is_zero() {
        return Err(malformed("expires_in is zero".into()));
    }
    Ok((access_token, token_type, expires_in))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_parse_and_errors_name_fields_not_values() {
        let (token, kind, life) =
            parse_grant(br#"{"access_token":"abc","token_type":"bearer","expires_in":86399}"#).unwrap();
        assert_eq!((token.as_str(), kind.as_str(), life), ("abc", "bearer", Duration::from_secs(86399)));
        let (_, _, life) = parse_grant(br#"{"access_token":"abc","expires_in":"30"}"#).unwrap();
        assert_eq!(life, Duration::from_secs(30));

        for (body, needle) in [
            (&br#"{"access_token":"s3cr3t","expires_in":0}"#[..], "expires_in is zero"),
            (br#"{"access_token":"s3cr3t","expires_in":-5}"#, "expires_in"),
            (br#"{"access_token":"s3cr3t"}"#, "expires_in is missing"),
            (br#"{"access_token":"s3cr3t","token_type":"mac","expires_in":5}"#, "not bearer"),
            (br#"{"expires_in":5}"#, "access_token is missing"),
            (br#"{"access_token":"s3cr3t","expires_in":"soon"}"#, "not a number"),
            (br#"{"access_token":"s3cr3t""#, "not JSON"),
            (br#"[1]"#, "not a JSON object"),
        ] {
            let message = parse_grant(body).unwrap_err().to_string();
            assert!(message.contains(needle), "{message}");
            assert!(!message.contains("s3cr3t"), "{message}");
        }
    }

    #[test]
    fn refusals_are_classified() {
        let invalid = refusal(400, br#"{"error":"invalid_client","error_description":"bad"}"#, None);
        assert!(invalid.is_configuration_error());
        assert!(!invalid.is_retryable());
        assert!(invalid.to_string().contains("check the configured client id and secret"));
        assert!(refusal(401, b"", None).is_configuration_error());
        assert!(refusal(400, br#"{"error":"unauthorized_client"}"#, None).is_configuration_error());
        let limited = refusal(429, b"", Some(Duration::from_secs(3)));
        assert!(limited.is_retryable());
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(3)));
        assert!(refusal(503, b"oops", None).is_retryable());
        assert!(!refusal(501, b"", None).is_retryable());
        let other = refusal(400, br#"{"error":"unsupported_grant_type"}"#, None);
        assert!(!other.is_retryable() && !other.is_configuration_error());
    }
}
