//! The download audit: one structured event (target `ferry::audit`) and one count
//! (`ferry_downloads_total{deployment, access, outcome}`) for every request for a file, whatever
//! its outcome. The event's fields are documented in `docs/api.md` ("Download audit log"); they
//! never include the link's signature, a token or a presigned URL.

use crate::state::AppState;
use metrics::{counter, describe_counter};

/// One download request, as audited.
#[derive(Debug, Clone, Default)]
pub struct Audit {
    /// The file id from the link (at most 256 characters are logged).
    pub file_id: String,
    /// The deployment the file belongs to (`""` when the link was not ferry's).
    pub deployment: String,
    /// `bearer`, `agents` or `fetch` (an Open Messaging fetch URL).
    pub access: &'static str,
    /// The signed-in agent's user id, if any.
    pub user_id: Option<String>,
    /// The signed-in agent's organisation id, if any.
    pub organization: Option<String>,
    /// `served`, `sign_in_required`, or the error code that refused the request.
    pub outcome: &'static str,
}

impl Audit {
    /// Logs the event and counts it.
    pub fn record(&self, state: &AppState) {
        let file_id = self.file_id.get(..256).unwrap_or(&self.file_id);
        tracing::info!(
            target: "ferry::audit",
            event = "download",
            file_id,
            deployment = self.deployment.as_str(),
            access = self.access,
            user_id = self.user_id.as_deref().unwrap_or(""),
            organization = self.organization.as_deref().unwrap_or(""),
            outcome = self.outcome,
            at = %ferry_genesys::platform::rfc3339(std::time::SystemTime::now()),
            "download"
        );
        let deployment =
            if self.deployment.is_empty() { "unknown".to_owned() } else { self.deployment.clone() };
        let (access, outcome) = (self.access, self.outcome);
        state.metrics.record(|| {
            describe_counter!("ferry_downloads_total", "Download requests by deployment, access and outcome.");
            counter!("ferry_downloads_total", "deployment" => deployment, "access" => access, "outcome" => outcome)
                .increment(1);
        });
    }
}
