//! ferry's configuration: one typed [`Config`], read once at start-up in layers — the serde
//! defaults, then an optional TOML file, then `FERRY_…` environment variables, then command-line
//! flags (the later wins) — and validated with messages that name the setting and where its value
//! came from, and say what is wrong (never a secret's value).
//!
//! The serde structs are the schema: every settings struct derives `Deserialize` (with
//! `deny_unknown_fields` and `default`) and `Serialize` (for `ferry config show`; a [`Secret`]
//! serializes as `[redacted]`). The settings groups live in `settings`, secrets and rotating keys
//! in `secrets`, the layers (file, environment, flags) in `layers`, the printing in `show`.

#[cfg(test)]
mod env_tests;
mod layers;
mod secrets;
mod settings;
mod show;

pub use layers::{ENV_PREFIX, Layer, Loaded};
pub use secrets::{KeySetting, Secret, valid_key_id};
pub use settings::*;
pub use show::{show_sources, show_toml};

use ferry_core::plan::MIB;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// Everything ferry needs to run.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Public base URL of this service, used in download links (e.g. `https://files.example.com`).
    pub public_url: String,
    /// Storage.
    pub s3: S3Settings,
    /// Size, memory and time limits.
    pub limits: Limits,
    /// Secret (≥ 32 bytes) signing download links without a key id: the first link key, which
    /// every link made before key ids existed was signed with. Required unless `link_keys` is set.
    pub link_secret: Secret,
    /// Link keys with ids: the first signs new links (`kid=` in the link), every one verifies.
    /// Rotate by putting a new key first; retire one by removing it.
    pub link_keys: Vec<KeySetting>,
    /// How long a download link stays valid, in seconds.
    pub link_ttl_secs: u64,
    /// Secret (≥ 32 bytes) shared with the site backends that mint upload tickets, for tickets
    /// without a key id. Tickets are refused when no ticket key is set anywhere.
    pub ticket_secret: Option<Secret>,
    /// Ticket keys with ids (tickets name theirs in `kid`), for every deployment without keys of
    /// its own (`deployments.<id>.ticket_keys`).
    pub ticket_keys: Vec<KeySetting>,
    /// Ticket lifetime and how used tickets are remembered.
    pub tickets: TicketSettings,
    /// Accept `http://` public URLs and `ws://` Genesys URLs on hosts other than loopback (tests,
    /// private networks). Off: ferry refuses them.
    pub allow_insecure: bool,
    /// Genesys deployments ferry accepts uploads for, by deployment id.
    pub deployments: BTreeMap<String, Deployment>,
    /// Origins allowed by CORS (the sites that embed the Messenger). Empty: no CORS headers.
    pub cors_origins: Vec<String>,
    /// Logs as JSON lines.
    pub log_json: bool,
    /// Operations: the admin listener and readiness (`[ops]`).
    pub ops: crate::admin::OpsSettings,
    /// Admission: per-client rate limits and the limits on Genesys session checks (`[admission]`).
    pub admission: crate::admission::AdmissionSettings,
    /// The data path: whole-file digests, uploads per client address (`[data_path]`).
    pub data_path: crate::datapath::DataPathSettings,
    /// Malware scanning with clamd (`[scan]`).
    pub scan: crate::scan::ScanSettings,
    /// tus resumable uploads at `/v1/tus/` (`[tus]`).
    pub tus: crate::tus::TusSettings,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("valid address"),
            public_url: "http://127.0.0.1:8080".into(),
            s3: S3Settings::default(),
            limits: Limits::default(),
            link_secret: Secret::default(),
            link_keys: Vec::new(),
            link_ttl_secs: 7 * 24 * 3600,
            ticket_secret: None,
            ticket_keys: Vec::new(),
            tickets: TicketSettings::default(),
            allow_insecure: false,
            deployments: BTreeMap::new(),
            cors_origins: Vec::new(),
            log_json: false,
            ops: crate::admin::OpsSettings::default(),
            admission: crate::admission::AdmissionSettings::default(),
            data_path: crate::datapath::DataPathSettings::default(),
            scan: crate::scan::ScanSettings::default(),
            tus: crate::tus::TusSettings::default(),
        }
    }
}

/// A problem with the configuration: which setting, and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting `{setting}`: {problem}")]
pub struct ConfigError {
    /// The setting (as in the TOML file; the flag and variable say the same).
    pub setting: String,
    /// What is wrong.
    pub problem: String,
}

/// A URL on this machine only (`localhost`, 127.0.0.0/8, `::1`): plain HTTP there never crosses a
/// network.
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(host)) => host.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn invalid(setting: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError { setting: setting.into(), problem: problem.into() }
}

/// A TOML error that names the setting and the line, never the text of the line (which may hold a
/// secret): the key left of `=` on the offending line, and the parser's message with anything in
/// double quotes elided.
fn toml_error(text: &str, error: &toml::de::Error) -> ConfigError {
    let line_no = error.span().map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
    let key = line_no
        .and_then(|n| text.lines().nth(n - 1))
        .and_then(|line| line.split_once('='))
        .map(|(key, _)| key.trim())
        .filter(|key| {
            !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-\"".contains(&b))
        });
    let message = elide_quoted(error.message());
    let setting = key.map_or_else(|| "(file)".to_owned(), str::to_owned);
    let at = line_no.map(|n| format!("line {n}: ")).unwrap_or_default();
    invalid(&setting, format!("{at}{}", message.trim()))
}

/// `message` with anything in double quotes replaced by `"…"` (it may be a secret's value).
fn elide_quoted(message: &str) -> String {
    let mut out = String::new();
    for (i, piece) in message.split('"').enumerate() {
        out.push_str(if i % 2 == 1 { "\"…\"" } else { piece });
    }
    out
}

impl Config {
    /// Parses a TOML document.
    ///
    /// # Errors
    /// When the TOML is malformed or names unknown settings.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| toml_error(text, &e))
    }

    /// Whether tickets are enabled (a ticket key is set somewhere).
    pub fn tickets_enabled(&self) -> bool {
        self.ticket_secret.is_some()
            || !self.ticket_keys.is_empty()
            || self.deployments.values().any(|d| !d.ticket_keys.is_empty())
    }

    /// Checks every setting.
    ///
    /// # Errors
    /// The first problem found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.s3.bucket.is_empty() {
            return Err(invalid("s3.bucket", "is required (FERRY_S3_BUCKET or --s3-bucket)"));
        }
        if self.s3.checksum_mode().is_none() {
            return Err(invalid(
                "s3.checksum",
                format!("`{}` is not one of md5, crc32c, crc64nvme", self.s3.checksum),
            ));
        }
        if !self.data_path.whole_file_md5 && self.s3.checksum_mode() == Some(ferry_s3::ChecksumMode::Md5) {
            return Err(invalid(
                "data_path.whole_file_md5",
                "may be false only with a CRC s3.checksum (crc32c or crc64nvme), which verifies the file",
            ));
        }
        if !(5..=5 * 1024).contains(&self.s3.part_size_mib) {
            return Err(invalid("s3.part_size_mib", "must be between 5 and 5120"));
        }
        if !(1..=64).contains(&self.s3.max_in_flight) {
            return Err(invalid("s3.max_in_flight", "must be between 1 and 64"));
        }
        if self.s3.access_key_id.is_some() != self.s3.secret_access_key.is_some() {
            return Err(invalid("s3.secret_access_key", "access key id and secret access key go together"));
        }
        if let Some(endpoint) = &self.s3.endpoint {
            url::Url::parse(endpoint).map_err(|e| invalid("s3.endpoint", e.to_string()))?;
        }
        let public = url::Url::parse(&self.public_url).map_err(|e| invalid("public_url", e.to_string()))?;
        if public.scheme() != "https" && !self.allow_insecure && !is_loopback(&public) {
            return Err(invalid(
                "public_url",
                "must be https:// (links travel over the internet); set allow_insecure to accept http://",
            ));
        }
        if self.link_keys.is_empty() && self.link_secret.len() < 32 {
            return Err(invalid(
                "link_secret",
                "must be at least 32 bytes (FERRY_LINK_SECRET or FERRY_LINK_SECRET_FILE), or set link_keys",
            ));
        }
        if !self.link_secret.is_empty() && self.link_secret.len() < 32 {
            return Err(invalid("link_secret", "must be at least 32 bytes"));
        }
        secrets::check_keys("link_keys", &self.link_keys)?;
        if self.ticket_secret.as_ref().is_some_and(|s| s.len() < 32) {
            return Err(invalid("ticket_secret", "must be at least 32 bytes"));
        }
        secrets::check_keys("ticket_keys", &self.ticket_keys)?;
        if !(60..=7 * 24 * 3600).contains(&self.tickets.max_lifetime_secs) {
            return Err(invalid("tickets.max_lifetime_secs", "must be between 60 and 604800"));
        }
        if self.link_ttl_secs == 0 {
            return Err(invalid("link_ttl_secs", "must be positive"));
        }
        let per_upload = self.part_buffer_bytes();
        if self.limits.memory_budget < per_upload {
            return Err(invalid(
                "limits.memory_budget",
                format!(
                    "must hold at least one upload's parts: {per_upload} bytes (part size × (max_in_flight + 1))"
                ),
            ));
        }
        if self.limits.max_file_size == 0 || self.limits.max_file_size > ferry_core::plan::MAX_OBJECT_SIZE {
            return Err(invalid("limits.max_file_size", "must be between 1 byte and 10,000 × 5 GiB"));
        }
        for (name, value) in [
            ("limits.header_timeout_secs", self.limits.header_timeout_secs),
            ("limits.idle_body_timeout_secs", self.limits.idle_body_timeout_secs),
            ("limits.max_upload_secs", self.limits.max_upload_secs),
        ] {
            if value == 0 {
                return Err(invalid(name, "must be positive"));
            }
        }
        if self.deployments.is_empty() {
            return Err(invalid(
                "deployments",
                "at least one deployment is required ([deployments.<id>] or FERRY_DEPLOYMENTS)",
            ));
        }
        for (id, deployment) in &self.deployments {
            let at = |field: &str| format!("deployments.{id}.{field}");
            secrets::check_keys(&at("ticket_keys"), &deployment.ticket_keys)?;
            crate::agents::check_deployment(id, deployment)?;
            if deployment.delivery == DeliveryPreference::OpenMessaging {
                let om = deployment.open_messaging.as_ref().ok_or_else(|| {
                    invalid(&at("open_messaging"), "is required with delivery = \"open-messaging\"")
                })?;
                for (field, empty) in [
                    ("integration_id", om.integration_id.is_empty()),
                    ("client_id", om.client_id.is_empty()),
                    ("client_secret", om.client_secret.is_empty()),
                ] {
                    if empty {
                        return Err(invalid(&at(&format!("open_messaging.{field}")), "is required"));
                    }
                }
                for (field, value) in [("api_url", &om.api_url), ("login_url", &om.login_url)] {
                    if let Some(url) = value {
                        url::Url::parse(url)
                            .map_err(|e| invalid(&at(&format!("open_messaging.{field}")), e.to_string()))?;
                    }
                }
                continue;
            }
            if let Some(url) = &deployment.web_messaging_url {
                let parsed =
                    url::Url::parse(url).map_err(|e| invalid(&at("web_messaging_url"), e.to_string()))?;
                if !matches!(parsed.scheme(), "ws" | "wss") {
                    return Err(invalid(&at("web_messaging_url"), "must be ws:// or wss://"));
                }
                if parsed.scheme() == "ws" && !self.allow_insecure && !is_loopback(&parsed) {
                    return Err(invalid(
                        &at("web_messaging_url"),
                        "must be wss:// (set allow_insecure to accept ws://)",
                    ));
                }
            } else {
                let env = deployment.environment.as_deref().unwrap_or("mypurecloud.com");
                if ferry_genesys::hosts::environment(env).is_none() {
                    return Err(invalid(
                        &at("environment"),
                        format!("`{env}` is not a known Genesys environment"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Bytes one upload may hold in part buffers.
    pub fn part_buffer_bytes(&self) -> u64 {
        self.s3.part_size_mib * MIB * (self.s3.max_in_flight as u64 + 1)
    }

    /// The deployment's largest file.
    pub fn max_file_size_for(&self, deployment: &Deployment) -> u64 {
        deployment.max_file_size.map_or(self.limits.max_file_size, |m| m.min(self.limits.max_file_size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> Config {
        let mut c = Config::default();
        c.s3.bucket = "b".into();
        c.link_secret = "x".repeat(32).into();
        c.deployments.insert("d1".into(), Deployment::default());
        c
    }

    #[test]
    fn defaults_plus_required_settings_validate() {
        valid().validate().unwrap();
    }

    #[test]
    fn problems_name_the_setting() {
        let mut c = valid();
        c.s3.bucket.clear();
        assert_eq!(c.validate().unwrap_err().setting, "s3.bucket");
        let mut c = valid();
        c.link_secret = "short".into();
        assert_eq!(c.validate().unwrap_err().setting, "link_secret");
        let mut c = valid();
        c.s3.checksum = "sha1".into();
        assert_eq!(c.validate().unwrap_err().setting, "s3.checksum");
        let mut c = valid();
        c.limits.memory_budget = MIB;
        assert_eq!(c.validate().unwrap_err().setting, "limits.memory_budget");
        let mut c = valid();
        c.deployments.insert(
            "d2".into(),
            Deployment { environment: Some("example.com".into()), ..Deployment::default() },
        );
        assert_eq!(c.validate().unwrap_err().setting, "deployments.d2.environment");
    }

    #[test]
    fn toml_is_read_and_unknown_keys_refused() {
        let c = Config::from_toml(
            "link_secret = \"0123456789abcdef0123456789abcdef\"\n[s3]\nbucket = \"files\"\n[deployments.dep-1]\norigin = \"https://shop.example\"\ndelivery = \"link\"\n",
        )
        .unwrap();
        assert_eq!(c.s3.bucket, "files");
        assert_eq!(c.deployments["dep-1"].delivery, DeliveryPreference::Link);
        c.validate().unwrap();
        assert!(Config::from_toml("[s3]\nbukket = 1").is_err());
    }

    #[test]
    fn toml_errors_name_the_setting_and_never_echo_a_secret() {
        let text =
            "public_url = \"https://f.example\"\nlink_secret = \"s3cr3t-value-0123456789abcdef0123\" oops\n";
        let error = Config::from_toml(text).unwrap_err();
        let shown = error.to_string();
        assert_eq!(error.setting, "link_secret", "{shown}");
        assert!(shown.contains("line 2"), "{shown}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        let error = Config::from_toml("link_secret = 5\n").unwrap_err();
        assert_eq!(error.setting, "link_secret");
        let error =
            Config::from_toml("[s3]\nsecret_access_key = \"AKIA-secret\"\nbukket = \"x\"\n").unwrap_err();
        assert!(!error.to_string().contains("AKIA-secret"), "{error}");
        let c = Config::from_toml("link_secret = \"a-secret-of-at-least-32-bytes-long!!\"\n").unwrap();
        assert!(!format!("{c:?}").contains("a-secret-of"), "Debug never shows a secret");
    }

    #[test]
    fn plain_http_and_ws_are_refused_off_loopback_unless_allowed() {
        let mut c = valid();
        c.public_url = "http://files.example.com".into();
        assert_eq!(c.validate().unwrap_err().setting, "public_url");
        c.allow_insecure = true;
        c.validate().unwrap();
        let mut c = valid();
        c.public_url = "https://files.example.com".into();
        c.deployments.insert(
            "d2".into(),
            Deployment { web_messaging_url: Some("ws://genesys.example/v1".into()), ..Deployment::default() },
        );
        assert_eq!(c.validate().unwrap_err().setting, "deployments.d2.web_messaging_url");
        c.deployments.get_mut("d2").unwrap().web_messaging_url = Some("ws://127.0.0.1:9/v1".into());
        c.validate().unwrap();
    }

    #[test]
    fn keys_need_ids_and_length_and_the_reaper_spares_young_uploads() {
        let key = |id: &str, secret: &str| KeySetting { id: id.into(), secret: secret.into() };
        let mut c = valid();
        c.link_secret = Secret::default();
        c.link_keys = vec![key("k2", &"b".repeat(32)), key("k1", &"a".repeat(32))];
        c.validate().unwrap();
        c.link_keys.push(key("k1", &"c".repeat(32)));
        assert_eq!(c.validate().unwrap_err().setting, "link_keys");
        let mut c = valid();
        c.deployments.get_mut("d1").unwrap().ticket_keys = vec![key("bad id", &"a".repeat(32))];
        assert_eq!(c.validate().unwrap_err().setting, "deployments.d1.ticket_keys");
        assert!(!valid().tickets_enabled());
        c.deployments.get_mut("d1").unwrap().ticket_keys = vec![key("d1-2026", &"a".repeat(32))];
        assert!(c.tickets_enabled());
        let mut limits = Limits { reap_after_secs: 60, ..Limits::default() };
        assert_eq!(limits.reap_age().as_secs(), 3 * 3600 + 600);
        limits.reap_after_secs = 48 * 3600;
        assert_eq!(limits.reap_age().as_secs(), 48 * 3600);
    }
}
