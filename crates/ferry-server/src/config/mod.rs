//! ferry's configuration: one typed [`Config`], read once at start-up from an optional TOML file,
//! then `FERRY_…` environment variables and command-line flags (which win), and validated with
//! messages that name the setting and say what is wrong.

use ferry_core::plan::MIB;
use ferry_s3::ChecksumMode;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// Everything ferry needs to run.
#[derive(Debug, Clone, Deserialize)]
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
    /// Secret (≥ 32 bytes) signing download links. Required.
    pub link_secret: String,
    /// How long a download link stays valid, in seconds.
    pub link_ttl_secs: u64,
    /// Secret (≥ 32 bytes) shared with the site backends that mint upload tickets; tickets are
    /// refused when unset.
    pub ticket_secret: Option<String>,
    /// Genesys deployments ferry accepts uploads for, by deployment id.
    pub deployments: BTreeMap<String, Deployment>,
    /// Origins allowed by CORS (the sites that embed the Messenger). Empty: no CORS headers.
    pub cors_origins: Vec<String>,
    /// Logs as JSON lines.
    pub log_json: bool,
    /// Operations: the admin listener and readiness (`[ops]`).
    pub ops: crate::admin::OpsSettings,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("valid address"),
            public_url: "http://127.0.0.1:8080".into(),
            s3: S3Settings::default(),
            limits: Limits::default(),
            link_secret: String::new(),
            link_ttl_secs: 7 * 24 * 3600,
            ticket_secret: None,
            deployments: BTreeMap::new(),
            cors_origins: Vec::new(),
            log_json: false,
            ops: crate::admin::OpsSettings::default(),
        }
    }
}

/// Where files are stored.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Settings {
    /// Bucket.
    pub bucket: String,
    /// Key prefix; keys are `<prefix><deployment>/<yyyy>/<mm>/<dd>/<uuid>`.
    pub prefix: String,
    /// Region.
    pub region: String,
    /// Endpoint override for S3-compatible stores.
    pub endpoint: Option<String>,
    /// Path-style addressing.
    pub path_style: bool,
    /// Access key id (else the standard AWS credential chain).
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
    /// `md5`, `crc32c` or `crc64nvme`.
    pub checksum: String,
    /// Part size in MiB (raised for huge files so no upload needs more than 10,000 parts).
    pub part_size_mib: u64,
    /// Parts in flight per upload.
    pub max_in_flight: usize,
    /// The bucket uses SSE-KMS or SSE-C (ETags are not MD5s).
    pub opaque_etags: bool,
}

impl Default for S3Settings {
    fn default() -> Self {
        Self {
            bucket: String::new(),
            prefix: "ferry/".into(),
            region: "us-east-1".into(),
            endpoint: None,
            path_style: false,
            access_key_id: None,
            secret_access_key: None,
            checksum: "crc64nvme".into(),
            part_size_mib: 8,
            max_in_flight: 4,
            opaque_etags: false,
        }
    }
}

impl S3Settings {
    /// The checksum mode named by `checksum`.
    pub fn checksum_mode(&self) -> Option<ChecksumMode> {
        match self.checksum.to_ascii_lowercase().as_str() {
            "md5" => Some(ChecksumMode::Md5),
            "crc32c" => Some(ChecksumMode::Crc32c),
            "crc64nvme" => Some(ChecksumMode::Crc64Nvme),
            _ => None,
        }
    }
}

/// Limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest file accepted, in bytes.
    pub max_file_size: u64,
    /// Bytes of part buffers all uploads together may hold; an upload that cannot get its share
    /// is answered 503 `server_busy`.
    pub memory_budget: u64,
    /// Time to receive the request headers, in seconds.
    pub header_timeout_secs: u64,
    /// Longest pause between two pieces of the body, in seconds.
    pub idle_body_timeout_secs: u64,
    /// Slowest accepted average transfer rate, bytes per second, checked after the first
    /// `idle_body_timeout_secs`.
    pub min_bytes_per_sec: u64,
    /// Longest upload, in seconds.
    pub max_upload_secs: u64,
    /// Longest wait for in-flight uploads at shutdown, in seconds.
    pub shutdown_grace_secs: u64,
    /// Multipart uploads under the prefix older than this many seconds, and not this process's,
    /// are aborted by the reaper (crash debris).
    pub reap_after_secs: u64,
    /// How often the reaper runs, in seconds.
    pub reap_interval_secs: u64,
    /// Content types accepted (after sniffing); `*/*` and `type/*` wildcards.
    pub allowed_types: Vec<String>,
    /// File extensions refused (lower case, with the dot).
    pub blocked_extensions: Vec<String>,
}

/// The default blocked extensions: programs and installers for Windows, macOS and Linux, scripts
/// a double-click runs, shortcuts, disk images that mount and run, pages and images that run
/// script in a browser, and Office files with macros.
#[rustfmt::skip]
pub const BLOCKED_EXTENSIONS: &[&str] = &[
    // Windows programs, libraries, installers and packages.
    ".exe", ".com", ".scr", ".pif", ".cpl", ".dll", ".ocx", ".sys", ".drv", ".msi", ".msp", ".mst",
    ".msix", ".msixbundle", ".appx", ".appxbundle", ".application", ".gadget", ".inf", ".reg",
    // Scripts and shortcuts.
    ".bat", ".cmd", ".js", ".jse", ".vbs", ".vbe", ".wsf", ".wsh", ".ps1", ".psm1", ".hta", ".lnk",
    ".url", ".scf", ".chm", ".jar", ".sh", ".command", ".app",
    // Disk images that mount and run.
    ".iso", ".img", ".vhd", ".vhdx", ".dmg",
    // Active content: pages and images with script.
    ".html", ".htm", ".xhtml", ".xht", ".shtml", ".mht", ".mhtml", ".svg", ".svgz",
    // Office files with macros.
    ".docm", ".dotm", ".xlsm", ".xltm", ".xlam", ".pptm", ".potm", ".ppam", ".sldm",
];

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_file_size: 5 * 1024 * MIB,
            memory_budget: 512 * MIB,
            header_timeout_secs: 10,
            idle_body_timeout_secs: 30,
            min_bytes_per_sec: 1024,
            max_upload_secs: 3 * 3600,
            shutdown_grace_secs: 30,
            reap_after_secs: 24 * 3600,
            reap_interval_secs: 3600,
            allowed_types: vec!["*/*".into()],
            blocked_extensions: BLOCKED_EXTENSIONS.iter().map(|e| (*e).to_owned()).collect(),
        }
    }
}

impl Limits {
    /// The idle-body timeout.
    pub fn idle_body_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_body_timeout_secs)
    }
}

/// How files reach a deployment's conversations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DeliveryPreference {
    /// Native attachment when the deployment's limits allow, else a link message.
    #[default]
    Auto,
    /// Always a link message.
    Link,
    /// Through an Open Messaging integration (custom channels): Genesys fetches the file from the
    /// signed link. Uploads are authorised by tickets that name the customer (`from`).
    OpenMessaging,
}

/// Open Messaging settings of a deployment (platform OAuth client and integration).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct OpenMessagingSettings {
    /// The Open Messaging integration id.
    pub integration_id: String,
    /// OAuth client id (client credentials, platform API).
    pub client_id: String,
    /// OAuth client secret.
    pub client_secret: String,
    /// Platform REST override (`https://api.E` by default).
    pub api_url: Option<String>,
    /// Login override (`https://login.E` by default).
    pub login_url: Option<String>,
}

/// One Genesys deployment.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Deployment {
    /// Genesys environment host (`mypurecloud.de`, …); default `mypurecloud.com`.
    pub environment: Option<String>,
    /// Guest WebSocket override (`wss://…/v1`), e.g. an emulator.
    pub web_messaging_url: Option<String>,
    /// `Origin` to present on the guest WebSocket.
    pub origin: Option<String>,
    /// Native-or-link preference.
    pub delivery: DeliveryPreference,
    /// Largest file for this deployment (at most the global limit).
    pub max_file_size: Option<u64>,
    /// Open Messaging settings, required when `delivery = "open-messaging"`.
    pub open_messaging: Option<OpenMessagingSettings>,
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

fn invalid(setting: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError { setting: setting.into(), problem: problem.into() }
}

impl Config {
    /// Parses a TOML document.
    ///
    /// # Errors
    /// When the TOML is malformed or names unknown settings.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| invalid("(file)", e.to_string()))
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
        url::Url::parse(&self.public_url).map_err(|e| invalid("public_url", e.to_string()))?;
        if self.link_secret.len() < 32 {
            return Err(invalid("link_secret", "must be at least 32 bytes (FERRY_LINK_SECRET)"));
        }
        if self.ticket_secret.as_ref().is_some_and(|s| s.len() < 32) {
            return Err(invalid("ticket_secret", "must be at least 32 bytes"));
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
            if deployment.delivery == DeliveryPreference::OpenMessaging {
                let om = deployment.open_messaging.as_ref().ok_or_else(|| {
                    invalid(&at("open_messaging"), "is required with delivery = \"open-messaging\"")
                })?;
                for (field, value) in [
                    ("integration_id", &om.integration_id),
                    ("client_id", &om.client_id),
                    ("client_secret", &om.client_secret),
                ] {
                    if value.is_empty() {
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
        c.link_secret = "x".repeat(32);
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
}
