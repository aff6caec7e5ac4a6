//! [`GuestConfig`]: the guest client's URL, `Origin`, timeouts and retry policies.

use crate::error::Error;
use crate::hosts::GenesysEndpoints;
use ferry_core::retry::RetryPolicy;
use std::time::Duration;
use url::Url;

/// How the guest client behaves. Every wait has a bound here.
#[derive(Debug, Clone)]
pub struct GuestConfig {
    /// The guest WebSocket, `wss://webmessaging.E/v1` (the `deploymentId` query is added).
    pub web_messaging_url: Url,
    /// The `Origin` header to send, when the deployment restricts origins. Default: none.
    pub origin: Option<String>,
    /// The platform REST base (`https://api.E`) for the guest REST API (looking up ferry's own
    /// messages with a guest JWT). Default: none from [`GuestConfig::new`], the environment's
    /// from [`GuestConfig::for_endpoints`].
    pub api_url: Option<Url>,
    /// Opening the WebSocket. Default 10 s.
    pub connect_timeout: Duration,
    /// Waiting for the response to one request. Default 30 s.
    pub response_timeout: Duration,
    /// The whole presigned `PUT`. Default 1 h.
    pub upload_timeout: Duration,
    /// Waiting for the upload's success or failure event after the `PUT`. Default 2 min.
    pub upload_event_timeout: Duration,
    /// After a reconnect, how often to ask `getAttachment` whether an upload completed. Default 2 s.
    pub upload_poll_interval: Duration,
    /// An `echo` is sent this often while a connection is open. Default 30 s.
    pub keepalive_interval: Duration,
    /// Retrying requests answered with `TooManyRequestsErrorMessage` (`retryAfter` is a floor).
    /// Default: 5 attempts within 2 min.
    pub rate_limit_retry: RetryPolicy,
    /// Reconnecting a dropped connection. Default: 4 attempts (3 reconnects) within 1 min.
    pub reconnect_retry: RetryPolicy,
    /// Retrying a failed `PUT` when the body can be re-opened. Default: 3 attempts within 5 min.
    pub upload_retry: RetryPolicy,
}

impl GuestConfig {
    /// Defaults for the given WebSocket URL.
    pub fn new(web_messaging_url: Url) -> Self {
        Self {
            web_messaging_url,
            origin: None,
            api_url: None,
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(30),
            upload_timeout: Duration::from_secs(3600),
            upload_event_timeout: Duration::from_secs(120),
            upload_poll_interval: Duration::from_secs(2),
            keepalive_interval: Duration::from_secs(30),
            rate_limit_retry: RetryPolicy {
                max_attempts: 5,
                initial_delay: Duration::from_millis(500),
                max_delay: Duration::from_secs(10),
                max_elapsed: Duration::from_secs(120),
            },
            reconnect_retry: RetryPolicy {
                max_attempts: 4,
                initial_delay: Duration::from_millis(200),
                max_delay: Duration::from_secs(5),
                max_elapsed: Duration::from_secs(60),
            },
            upload_retry: RetryPolicy {
                max_attempts: 3,
                initial_delay: Duration::from_millis(500),
                max_delay: Duration::from_secs(10),
                max_elapsed: Duration::from_secs(300),
            },
        }
    }

    /// Defaults for an environment's endpoints.
    pub fn for_endpoints(endpoints: &GenesysEndpoints) -> Self {
        Self { api_url: Some(endpoints.api.clone()), ..Self::new(endpoints.web_messaging.clone()) }
    }

    pub(super) fn validate(&self) -> Result<(), Error> {
        if !matches!(self.web_messaging_url.scheme(), "ws" | "wss") {
            return Err(Error::InvalidConfig("web_messaging_url must be ws:// or wss://".into()));
        }
        let waits = [
            self.connect_timeout,
            self.response_timeout,
            self.upload_timeout,
            self.upload_event_timeout,
            self.upload_poll_interval,
            self.keepalive_interval,
        ];
        if waits.iter().any(Duration::is_zero) {
            return Err(Error::InvalidConfig("timeouts and intervals must be positive".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_validation() {
        let url = Url::parse("wss://webmessaging.mypurecloud.com/v1").unwrap();
        assert!(GuestConfig::new(url.clone()).validate().is_ok());
        let mut bad = GuestConfig::new(Url::parse("https://x/v1").unwrap());
        assert!(bad.validate().is_err());
        bad = GuestConfig::new(url);
        bad.response_timeout = Duration::ZERO;
        assert!(bad.validate().is_err());
    }
}
