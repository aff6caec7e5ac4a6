//! The presigned uploads behind `onAttachment`: which key opens which pending attachment, the
//! refusal and failure faults, the outcome recorded on the attachment and the event pushed to the
//! guest; and the download URLs that hand out an uploaded attachment's facts.

use super::state::{AttachmentState, EmulatorState};
use super::wire::{frame, timestamp};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// What an upload key opens.
#[derive(Debug, Clone)]
pub(crate) struct UploadTarget {
    pub(crate) token: String,
    pub(crate) attachment_id: String,
    pub(crate) file_type: String,
    pub(crate) declared_size: u64,
    pub(crate) headers: BTreeMap<String, String>,
}

/// What to push once an upload's outcome is recorded.
pub(crate) enum AfterUpload {
    /// This event frame, after this delay.
    Event(String, Duration),
    /// Nothing (the swallowed-event fault).
    Nothing,
    /// End the session or conversation instead.
    End(super::SessionEnd),
}

/// Whether an upload is let through, and what to push afterwards.
pub(crate) enum UploadGate {
    Unknown,
    Refuse(u16),
    Accept(UploadTarget),
}

impl EmulatorState {
    /// Looks up an upload key and applies the refusal fault.
    pub(crate) fn upload_gate(&self, key: &str) -> UploadGate {
        let mut inner = self.lock();
        let Some((token, attachment_id)) = inner.uploads.get(key).cloned() else {
            return UploadGate::Unknown;
        };
        if inner.faults.refuse_uploads > 0 {
            inner.faults.refuse_uploads -= 1;
            return UploadGate::Refuse(inner.faults.refuse_status);
        }
        let Some(a) = inner.sessions.get_mut(&token).and_then(|s| s.attachment_mut(&attachment_id)) else {
            return UploadGate::Unknown;
        };
        if a.state != AttachmentState::Pending {
            return UploadGate::Unknown;
        }
        UploadGate::Accept(UploadTarget {
            token,
            attachment_id,
            file_type: a.file_type.clone(),
            declared_size: a.declared_size,
            headers: a.headers.clone(),
        })
    }

    /// Records the outcome of an upload and says what to push to every connection of the token:
    /// its event (after the delay fault), nothing, or the end of the session.
    pub(crate) fn finish_upload(
        &self,
        key: &str,
        target: &UploadTarget,
        result: Result<(u64, String, String), u32>,
    ) -> AfterUpload {
        let mut inner = self.lock();
        let delay = inner.faults.event_delay;
        let result = match result {
            Ok(received) if inner.faults.fail_uploads > 0 => {
                inner.faults.fail_uploads -= 1;
                let _ = received;
                Err(inner.faults.failure_code)
            }
            other => other,
        };
        let declared_md5 = inner
            .sessions
            .get_mut(&target.token)
            .and_then(|s| s.attachment_mut(&target.attachment_id))
            .and_then(|a| a.declared_md5.clone());
        let result = match result {
            Ok((size, sha256, md5)) => match declared_md5 {
                Some(declared) if !md5_matches(&declared, &md5) => Err(4003),
                _ => Ok((size, sha256, md5)),
            },
            Err(code) => Err(code),
        };
        inner.uploads.remove(key);
        let event = match result {
            Ok((size, sha256, md5)) => {
                if let Some(a) = inner
                    .sessions
                    .get_mut(&target.token)
                    .and_then(|s| s.attachment_mut(&target.attachment_id))
                {
                    a.state = AttachmentState::Uploaded { size, sha256, md5 };
                }
                let url = inner.download_url(&target.token, &target.attachment_id);
                frame(
                    "message",
                    "UploadSuccessEvent",
                    200,
                    json!({"attachmentId": target.attachment_id, "downloadUrl": url, "timestamp": timestamp()}),
                    None,
                )
            }
            Err(code) => {
                if let Some(a) = inner
                    .sessions
                    .get_mut(&target.token)
                    .and_then(|s| s.attachment_mut(&target.attachment_id))
                {
                    a.state = AttachmentState::Failed { code };
                }
                frame(
                    "message",
                    "UploadFailureEvent",
                    200,
                    json!({"attachmentId": target.attachment_id, "errorCode": code,
                           "errorMessage": "The uploaded file was rejected", "timestamp": timestamp()}),
                    None,
                )
            }
        };
        if let Some(end) = inner.faults.end_on_upload.take() {
            return AfterUpload::End(end);
        }
        if inner.faults.swallow_upload_events > 0 {
            inner.faults.swallow_upload_events -= 1;
            return AfterUpload::Nothing;
        }
        AfterUpload::Event(event, delay)
    }

    /// The stored facts of a download key: (file name, type, size, sha256).
    pub(crate) fn download(&self, key: &str) -> Option<Value> {
        let inner = self.lock();
        let (token, id) = inner.downloads.get(key)?;
        let a = inner.sessions.get(token)?.attachments.iter().find(|a| &a.id == id)?;
        match &a.state {
            AttachmentState::Uploaded { size, sha256, .. } => Some(json!({
                "attachmentId": a.id, "fileName": a.file_name, "fileType": a.file_type,
                "size": size, "sha256": sha256, "note": "the emulator keeps digests, not content"
            })),
            _ => None,
        }
    }
}

fn md5_matches(declared: &str, actual_hex: &str) -> bool {
    use base64::Engine as _;
    if declared.eq_ignore_ascii_case(actual_hex) {
        return true;
    }
    base64::engine::general_purpose::STANDARD
        .decode(declared.trim())
        .is_ok_and(|raw| hex::encode(raw) == actual_hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_md5_in_base64_or_hex() {
        assert!(md5_matches("kAFQmDzST7DWlj99KOF/cg==", "900150983cd24fb0d6963f7d28e17f72"));
        assert!(md5_matches("900150983cd24fb0d6963f7d28e17f72", "900150983cd24fb0d6963f7d28e17f72"));
        assert!(!md5_matches("AAAA", "900150983cd24fb0d6963f7d28e17f72"));
    }
}
