//! The Web Messaging error codes (4000–4029) as [`ErrorCode`], unknown codes kept.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A Web Messaging error code (`errorCode` in bodies, `code` on error frames). Unknown codes are
/// preserved in [`ErrorCode::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 4000: feature unavailable.
    FeatureUnavailable,
    /// 4001: file type invalid.
    FileTypeInvalid,
    /// 4002: file size invalid.
    FileSizeInvalid,
    /// 4003: file content invalid.
    FileContentInvalid,
    /// 4004: file name invalid.
    FileNameInvalid,
    /// 4005: file name too long.
    FileNameTooLong,
    /// 4006: session expired.
    SessionExpired,
    /// 4007: session not found.
    SessionNotFound,
    /// 4008: attachment expired.
    AttachmentExpired,
    /// 4009: attachment not found.
    AttachmentNotFound,
    /// 4010: attachment not successfully uploaded.
    AttachmentNotUploaded,
    /// 4011: message too long.
    MessageTooLong,
    /// 4013: custom attributes too large.
    CustomAttributesTooLarge,
    /// 4020: missing parameter.
    MissingParameter,
    /// 4029: request rate too high.
    RequestRateTooHigh,
    /// Any other code, kept as sent.
    Other(u32),
}

impl ErrorCode {
    /// The numeric code.
    pub fn as_u32(self) -> u32 {
        match self {
            Self::FeatureUnavailable => 4000,
            Self::FileTypeInvalid => 4001,
            Self::FileSizeInvalid => 4002,
            Self::FileContentInvalid => 4003,
            Self::FileNameInvalid => 4004,
            Self::FileNameTooLong => 4005,
            Self::SessionExpired => 4006,
            Self::SessionNotFound => 4007,
            Self::AttachmentExpired => 4008,
            Self::AttachmentNotFound => 4009,
            Self::AttachmentNotUploaded => 4010,
            Self::MessageTooLong => 4011,
            Self::CustomAttributesTooLarge => 4013,
            Self::MissingParameter => 4020,
            Self::RequestRateTooHigh => 4029,
            Self::Other(code) => code,
        }
    }

    /// The code for a number.
    pub fn from_u32(code: u32) -> Self {
        match code {
            4000 => Self::FeatureUnavailable,
            4001 => Self::FileTypeInvalid,
            4002 => Self::FileSizeInvalid,
            4003 => Self::FileContentInvalid,
            4004 => Self::FileNameInvalid,
            4005 => Self::FileNameTooLong,
            4006 => Self::SessionExpired,
            4007 => Self::SessionNotFound,
            4008 => Self::AttachmentExpired,
            4009 => Self::AttachmentNotFound,
            4010 => Self::AttachmentNotUploaded,
            4011 => Self::MessageTooLong,
            4013 => Self::CustomAttributesTooLarge,
            4020 => Self::MissingParameter,
            4029 => Self::RequestRateTooHigh,
            other => Self::Other(other),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_u32())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u32(self.as_u32())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        u32::deserialize(deserializer).map(Self::from_u32)
    }
}
