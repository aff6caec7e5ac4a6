//! The shape of the frames the emulator sends: `{"type","class","code","body","tracingId"?}`,
//! the plain-string errors, and the timestamps upload events carry.

use serde_json::{Value, json};
use std::num::NonZeroU8;
use time::OffsetDateTime;
use time::format_description::well_known::Iso8601;
use time::format_description::well_known::iso8601::{Config, EncodedConfig, TimePrecision};

/// The frame shape: `{"type","class","code","body","tracingId"?}`.
pub(super) fn frame(kind: &str, class: &str, code: u32, body: Value, tracing_id: Option<&str>) -> String {
    let mut frame = json!({"type": kind, "class": class, "code": code, "body": body});
    if let Some(tid) = tracing_id {
        frame["tracingId"] = json!(tid);
    }
    frame.to_string()
}

pub(super) fn string_error(code: u32, text: &str, tracing_id: Option<&str>) -> String {
    frame("response", "string", code, json!(text), tracing_id)
}

/// RFC 3339 in UTC with milliseconds, as Genesys writes them: `2024-02-29T23:59:59.123Z`.
const MILLIS: EncodedConfig =
    Config::DEFAULT.set_time_precision(TimePrecision::Second { decimal_digits: NonZeroU8::new(3) }).encode();

/// The current time as an event timestamp.
pub(super) fn timestamp() -> String {
    format_timestamp(OffsetDateTime::now_utc())
}

fn format_timestamp(at: OffsetDateTime) -> String {
    // Formatting a UTC date-time with a four-digit year cannot fail.
    at.format(&Iso8601::<MILLIS>).unwrap_or_default()
}

/// The first 8 characters of a token: enough to tell sessions apart, never the whole token.
pub(super) fn token_hint(token: &str) -> String {
    token.chars().take(8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_with_milliseconds() {
        let leap_day = OffsetDateTime::from_unix_timestamp_nanos(1_709_251_199_123_456_789).unwrap();
        assert_eq!(format_timestamp(leap_day), "2024-02-29T23:59:59.123Z");
        assert_eq!(format_timestamp(OffsetDateTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let ts = timestamp();
        assert_eq!(ts.len(), 24, "{ts}");
        assert!(ts.ends_with('Z'));
    }

    #[test]
    fn frames() {
        let text = frame("response", "SessionResponse", 200, json!({"connected": true}), Some("t-1"));
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            value,
            json!({"type": "response", "class": "SessionResponse", "code": 200,
                   "body": {"connected": true}, "tracingId": "t-1"})
        );
        let value: Value = serde_json::from_str(&string_error(4007, "Session not found", None)).unwrap();
        assert_eq!(
            value,
            json!({"type": "response", "class": "string", "code": 4007, "body": "Session not found"})
        );
        assert_eq!(token_hint("0123456789abcdef"), "01234567");
    }
}
