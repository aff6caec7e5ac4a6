//! Fuzz check of the guest protocol's JSON parsing (`ferry_genesys::protocol`): any bytes as a
//! server frame ([`Frame`]) or a guest request ([`Request`]). Parsing never panics; whatever parses
//! re-serialises, and that text parses back to an equal value. Shared by the fuzz target and by
//! ferry-genesys's regression test (`tests/it/fuzz_guest_frame.rs`).

use ferry_genesys::protocol::{Frame, FrameBody, Request};

/// Runs one input; panics when an invariant breaks.
pub(crate) fn check(input: &[u8]) {
    if let Ok(frame) = serde_json::from_slice::<Frame>(input) {
        // The accessors hold no surprises either.
        let _ = frame.attachment_id();
        assert_eq!(frame.class(), frame.body.class());
        if let FrameBody::TooManyRequests(body) = &frame.body {
            assert!(body.retry_after() <= std::time::Duration::from_secs(86_400));
        }
        let text = serde_json::to_string(&frame).expect("a parsed frame serialises");
        let again: Frame = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("a re-serialised frame does not parse ({e}): {text}"));
        assert_eq!(again, frame, "frame changed in a round trip through {text}");
        let value = serde_json::to_value(&frame).expect("a parsed frame is a JSON value");
        let from_value: Frame = serde_json::from_value(value).expect("a frame's JSON value parses");
        assert_eq!(from_value, frame);
    }
    if let Ok(request) = serde_json::from_slice::<Request>(input) {
        let _ = (request.action(), request.tracing_id());
        let text = serde_json::to_string(&request).expect("a parsed request serialises");
        let again: Request = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("a re-serialised request does not parse ({e}): {text}"));
        assert_eq!(again, request, "request changed in a round trip through {text}");
    }
}
