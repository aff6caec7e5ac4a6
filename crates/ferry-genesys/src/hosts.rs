//! Where Genesys Cloud lives: the environment table and the base URLs derived from it.
//!
//! An environment host `E` (e.g. `mypurecloud.de`) gives REST `https://api.E`, OAuth
//! `https://login.E`, the guest WebSocket `wss://webmessaging.E/v1` and the CDN of deployment
//! configurations `https://api-cdn.E`. Every URL is a public
//! field of [`GenesysEndpoints`], so tests and `ferry dev` point them at loopback.

use crate::Error;
use url::Url;

/// A Genesys Cloud environment: its host and the AWS region it runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Environment {
    /// The environment host (`mypurecloud.com`).
    pub host: &'static str,
    /// The AWS region (`us-east-1`).
    pub aws_region: &'static str,
}

/// Every known environment.
pub const ENVIRONMENTS: &[Environment] = &[
    Environment { host: "mypurecloud.com", aws_region: "us-east-1" },
    Environment { host: "usw2.pure.cloud", aws_region: "us-west-2" },
    Environment { host: "use2.us-gov-pure.cloud", aws_region: "us-east-2" },
    Environment { host: "cac1.pure.cloud", aws_region: "ca-central-1" },
    Environment { host: "sae1.pure.cloud", aws_region: "sa-east-1" },
    Environment { host: "mypurecloud.ie", aws_region: "eu-west-1" },
    Environment { host: "euw2.pure.cloud", aws_region: "eu-west-2" },
    Environment { host: "mypurecloud.de", aws_region: "eu-central-1" },
    Environment { host: "euc2.pure.cloud", aws_region: "eu-central-2" },
    Environment { host: "mec1.pure.cloud", aws_region: "me-central-1" },
    Environment { host: "aps1.pure.cloud", aws_region: "ap-south-1" },
    Environment { host: "mypurecloud.jp", aws_region: "ap-northeast-1" },
    Environment { host: "apne2.pure.cloud", aws_region: "ap-northeast-2" },
    Environment { host: "apne3.pure.cloud", aws_region: "ap-northeast-3" },
    Environment { host: "mypurecloud.com.au", aws_region: "ap-southeast-2" },
    Environment { host: "apse1.pure.cloud", aws_region: "ap-southeast-1" },
    Environment { host: "mxc1.pure.cloud", aws_region: "mx-central-1" },
    Environment { host: "edee1.eusc-pure.cloud", aws_region: "eusc-de-east-1" },
];

/// Looks an environment up by host (case-insensitive, a trailing dot ignored).
pub fn environment(host: &str) -> Option<&'static Environment> {
    let host = host.trim().trim_end_matches('.');
    ENVIRONMENTS.iter().find(|e| e.host.eq_ignore_ascii_case(host))
}

/// The base URLs ferry talks to. Every field may be replaced (loopback in tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenesysEndpoints {
    /// Platform REST base, `https://api.E`.
    pub api: Url,
    /// OAuth base, `https://login.E`.
    pub login: Url,
    /// Guest WebSocket, `wss://webmessaging.E/v1`.
    pub web_messaging: Url,
    /// Public CDN of deployment configurations, `https://api-cdn.E`.
    pub api_cdn: Url,
}

impl GenesysEndpoints {
    /// The endpoints of a known environment (see [`ENVIRONMENTS`]).
    pub fn for_environment(host: &str) -> Result<Self, Error> {
        let env = environment(host).ok_or_else(|| Error::UnknownEnvironment(host.to_owned()))?;
        Self::for_host(env.host)
    }

    /// The endpoints derived from any environment host, known or not (a new region, a private
    /// deployment). Fails only when the host does not make valid URLs.
    pub fn for_host(host: &str) -> Result<Self, Error> {
        let host = host.trim().trim_end_matches('.');
        let parse =
            |s: String| Url::parse(&s).map_err(|e| Error::InvalidConfig(format!("bad host {host:?}: {e}")));
        Ok(Self {
            api: parse(format!("https://api.{host}"))?,
            login: parse(format!("https://login.{host}"))?,
            web_messaging: parse(format!("wss://webmessaging.{host}/v1"))?,
            api_cdn: parse(format!("https://api-cdn.{host}"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_environment_makes_its_urls() {
        assert_eq!(ENVIRONMENTS.len(), 18);
        for env in ENVIRONMENTS {
            let e = GenesysEndpoints::for_environment(env.host).unwrap();
            assert_eq!(e.api.as_str(), format!("https://api.{}/", env.host));
            assert_eq!(e.login.as_str(), format!("https://login.{}/", env.host));
            assert_eq!(e.web_messaging.as_str(), format!("wss://webmessaging.{}/v1", env.host));
            assert_eq!(e.api_cdn.as_str(), format!("https://api-cdn.{}/", env.host));
        }
    }

    #[test]
    fn lookup_and_overrides() {
        let mut e = GenesysEndpoints::for_environment("MyPureCloud.de").unwrap();
        assert_eq!(e.web_messaging.as_str(), "wss://webmessaging.mypurecloud.de/v1");
        assert_eq!(environment("mypurecloud.de").unwrap().aws_region, "eu-central-1");
        assert!(matches!(
            GenesysEndpoints::for_environment("example.com"),
            Err(Error::UnknownEnvironment(h)) if h == "example.com"
        ));
        assert!(GenesysEndpoints::for_host("new1.pure.cloud").is_ok());
        e.web_messaging = Url::parse("ws://127.0.0.1:9/v1").unwrap();
        assert_eq!(e.web_messaging.port(), Some(9));
    }
}
