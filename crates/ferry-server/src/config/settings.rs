//! The settings groups of [`super::Config`]: storage, limits, deployments and tickets.

use super::secrets::{KeySetting, Secret};
use ferry_core::plan::MIB;
use ferry_s3::ChecksumMode;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Where files are stored.
#[derive(Debug, Clone, Deserialize, Serialize)]
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
    /// Secret access key (inline or `{ file = "…" }`).
    pub secret_access_key: Option<Secret>,
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
#[derive(Debug, Clone, Deserialize, Serialize)]
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
    /// are aborted by the reaper (crash debris). Never less than `max_upload_secs` plus
    /// `reap_margin_secs`: another replica may still be writing a younger one.
    pub reap_after_secs: u64,
    /// Added to `max_upload_secs` for the youngest multipart upload the reaper may abort, seconds
    /// (clock skew between replicas, completion time).
    pub reap_margin_secs: u64,
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
            min_bytes_per_sec: 16 * 1024,
            max_upload_secs: 3 * 3600,
            shutdown_grace_secs: 30,
            reap_after_secs: 24 * 3600,
            reap_margin_secs: 600,
            reap_interval_secs: 3600,
            allowed_types: vec!["*/*".into()],
            blocked_extensions: BLOCKED_EXTENSIONS.iter().map(|e| (*e).to_owned()).collect(),
        }
    }
}

impl Limits {
    /// The age from which the reaper aborts another process's multipart upload:
    /// `reap_after_secs`, but never less than `max_upload_secs + reap_margin_secs`.
    pub fn reap_age(&self) -> Duration {
        let youngest = self.max_upload_secs.saturating_add(self.reap_margin_secs);
        Duration::from_secs(self.reap_after_secs.max(youngest))
    }

    /// The idle-body timeout.
    pub fn idle_body_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_body_timeout_secs)
    }
}

/// How files reach a deployment's conversations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
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
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct OpenMessagingSettings {
    /// The Open Messaging integration id.
    pub integration_id: String,
    /// OAuth client id (client credentials, platform API).
    pub client_id: String,
    /// OAuth client secret (inline or `{ file = "…" }`).
    pub client_secret: Secret,
    /// Platform REST override (`https://api.E` by default).
    pub api_url: Option<String>,
    /// Login override (`https://login.E` by default).
    pub login_url: Option<String>,
    /// Files above this many bytes go as a text message with the link (default 25,000,000).
    pub max_attachment_bytes: Option<u64>,
}

/// One Genesys deployment.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Deployment {
    /// Genesys environment host (`mypurecloud.de`, …); default `mypurecloud.com`.
    pub environment: Option<String>,
    /// Guest WebSocket override (`wss://…/v1`), e.g. an emulator.
    pub web_messaging_url: Option<String>,
    /// Guest REST override (`https://api.E` by default; none with `web_messaging_url` unless set).
    pub guest_api_url: Option<String>,
    /// Where the deployment's public `config.json` is read from when a session states no
    /// `allowedMedia` (`https://api-cdn.E` by default; none with `web_messaging_url` unless set).
    pub config_cdn_url: Option<String>,
    /// Seconds to wait for Genesys's upload event after a native attachment's PUT (default 120).
    pub upload_event_timeout_secs: Option<u64>,
    /// `Origin` to present on the guest WebSocket.
    pub origin: Option<String>,
    /// Native-or-link preference.
    pub delivery: DeliveryPreference,
    /// Guest sessions: on/off, size limit and quotas (`[deployments.<id>.guests]`).
    pub guests: crate::admission::GuestSettings,
    /// Accept files whose content is a program (PE, ELF, Mach-O, MSI, LNK, shebang scripts) when
    /// declared as such; refused by default, and always refused under another declared type.
    pub allow_executables: bool,
    /// Largest file for this deployment (at most the global limit).
    pub max_file_size: Option<u64>,
    /// Open Messaging settings, required when `delivery = "open-messaging"`.
    pub open_messaging: Option<OpenMessagingSettings>,
    /// This deployment's own ticket keys: when set, tickets for it must carry one of these key ids
    /// (and the global ticket keys are not accepted for it).
    pub ticket_keys: Vec<KeySetting>,
    /// Malware scanning for this deployment: on by default whenever `[scan]` names a clamd;
    /// `false` turns it off here.
    pub scan: Option<bool>,
    /// Who may open its download links: `bearer` (default) or `agents` with Genesys sign-in
    /// (`[deployments.<id>.links]`, see [`crate::agents::LinkSettings`]).
    pub links: crate::agents::LinkSettings,
}

/// Upload tickets.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TicketSettings {
    /// Longest ticket lifetime accepted, seconds: `exp - iat`, and `exp` from now.
    pub max_lifetime_secs: u64,
    /// Remember used tickets in this process only (a ticket then works once per replica and again
    /// after a restart). Without it ferry records used tickets in the bucket with conditional
    /// writes, and refuses to start when the store does not support them.
    pub single_process: bool,
}

impl Default for TicketSettings {
    fn default() -> Self {
        Self { max_lifetime_secs: 3600, single_process: false }
    }
}
