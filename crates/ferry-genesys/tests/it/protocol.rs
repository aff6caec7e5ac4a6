//! Every request action and frame class round-trips through serde, from JSON shaped like the
//! reference's examples.

use ferry_genesys::SessionToken;
use ferry_genesys::protocol::{
    ErrorCode, False, Frame, FrameBody, FrameType, MessageContent, OutgoingMessage, Request,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// Parses `value` as a frame, checks it re-serialises to the same JSON, and returns it.
fn round_trip(value: Value) -> Frame {
    let frame: Frame = serde_json::from_value(value.clone()).expect("frame parses");
    let back = serde_json::to_value(&frame).expect("frame serialises");
    assert_eq!(back, value, "round trip changed the frame");
    frame
}

#[test]
fn session_response() {
    let frame = round_trip(json!({
        "type": "response", "class": "SessionResponse", "code": 200,
        "body": {"connected": true, "newSession": false, "readOnly": false,
                 "allowedMedia": {"inbound": {"fileTypes": [{"type": "*/*"}, {"type": "image/*"}], "maxFileSizeKB": 10240}},
                 "blockedExtensions": [".exe", ".bat"], "maxCustomDataBytes": 2048},
        "tracingId": "t-1"
    }));
    assert_eq!(frame.kind, FrameType::Response);
    assert_eq!(frame.tracing_id.as_deref(), Some("t-1"));
    let FrameBody::SessionResponse(s) = frame.body else { panic!("wrong class") };
    assert!(s.connected && !s.new_session && !s.read_only);
    let inbound = s.allowed_media.unwrap().inbound.unwrap();
    assert_eq!(inbound.max_file_size_kb, Some(10240));
    assert_eq!(inbound.file_types[1].mime, "image/*");
    assert_eq!(s.blocked_extensions.unwrap(), vec![".exe", ".bat"]);
    assert_eq!(s.extra["maxCustomDataBytes"], 2048);
}

#[test]
fn attachment_frames() {
    let frame = round_trip(json!({
        "type": "response", "class": "PresignedUrlResponse", "code": 200,
        "body": {"attachmentId": "a-1", "url": "https://uploads.example/a-1?X-Amz-Signature=s", "headers": {"x-amz-tagging": "abc=xyz"}}
    }));
    assert_eq!(frame.attachment_id(), Some("a-1"));
    let FrameBody::PresignedUrlResponse(p) = &frame.body else { panic!("wrong class") };
    assert_eq!(p.headers["x-amz-tagging"], "abc=xyz");
    assert!(!format!("{frame:?}").contains("Signature"), "presigned URLs are redacted in Debug");

    let frame = round_trip(json!({
        "type": "response", "class": "GenerateUrlError", "code": 200,
        "body": {"attachmentId": "a-2", "errorCode": 4001, "errorMessage": "File type invalid"}
    }));
    let FrameBody::GenerateUrlError(e) = frame.body else { panic!("wrong class") };
    assert_eq!(e.error_code, ErrorCode::FileTypeInvalid);

    let frame = round_trip(json!({
        "type": "message", "class": "UploadSuccessEvent", "code": 200,
        "body": {"attachmentId": "a-1", "downloadUrl": "https://downloads.example/a-1", "timestamp": "2024-05-01T10:00:00.000Z"}
    }));
    assert_eq!(frame.kind, FrameType::Message);
    let FrameBody::UploadSuccessEvent(e) = frame.body else { panic!("wrong class") };
    assert_eq!(e.download_url.expose(), "https://downloads.example/a-1");

    let frame = round_trip(json!({
        "type": "message", "class": "UploadFailureEvent", "code": 200,
        "body": {"attachmentId": "a-3", "errorCode": 4003, "errorMessage": "bad", "timestamp": "2024-05-01T10:00:00.000Z"}
    }));
    let FrameBody::UploadFailureEvent(e) = frame.body else { panic!("wrong class") };
    assert_eq!(e.error_code, ErrorCode::FileContentInvalid);

    let frame = round_trip(json!({
        "type": "response", "class": "AttachmentDeletedResponse", "code": 200, "body": {"attachmentId": "a-4"}
    }));
    assert_eq!(frame.attachment_id(), Some("a-4"));
}

#[test]
fn message_and_misc_frames() {
    let frame = round_trip(json!({
        "type": "message", "class": "StructuredMessage", "code": 200,
        "body": {"id": "m-1", "type": "Text", "text": "caption", "direction": "Inbound",
                 "content": [{"contentType": "Attachment", "attachment": {"id": "a-1", "url": "https://x", "filename": "a.pdf"}}],
                 "channel": {"metadata": {"customAttributes": {"ferryFileId": "f-1"}}},
                 "originatingEntity": "Human"}
    }));
    let FrameBody::StructuredMessage(m) = frame.body else { panic!("wrong class") };
    assert_eq!(m.content.unwrap()[0].attachment.as_ref().unwrap().id, "a-1");
    assert_eq!(m.channel.unwrap().metadata.unwrap().custom_attributes["ferryFileId"], "f-1");

    let frame = round_trip(json!({
        "type": "response", "class": "TooManyRequestsErrorMessage", "code": 429,
        "body": {"retryAfter": 3, "errorCode": 4029, "errorMessage": "Message rate too high"}
    }));
    let FrameBody::TooManyRequests(t) = frame.body else { panic!("wrong class") };
    assert_eq!(t.retry_after(), Duration::from_secs(3));
    assert_eq!(t.error_code, ErrorCode::RequestRateTooHigh);

    let frame = round_trip(json!({
        "type": "response", "class": "JwtResponse", "code": 200, "body": {"jwt": "eyJ.x.y", "exp": 1_700_000_000}
    }));
    let FrameBody::JwtResponse(j) = &frame.body else { panic!("wrong class") };
    assert_eq!(j.exp, 1_700_000_000);
    assert!(!format!("{frame:?}").contains("eyJ"));

    let frame = round_trip(json!({
        "type": "message", "class": "ConnectionClosedEvent", "code": 200, "body": {"reason": "SessionLimitReached"}
    }));
    let FrameBody::ConnectionClosedEvent(c) = frame.body else { panic!("wrong class") };
    assert_eq!(c.reason.as_deref(), Some("SessionLimitReached"));

    let frame = round_trip(json!({
        "type": "response", "class": "string", "code": 4007, "body": "Session not found", "tracingId": "t-9"
    }));
    assert_eq!(frame.body, FrameBody::Text("Session not found".into()));
    assert_eq!(ErrorCode::from_u32(frame.code), ErrorCode::SessionNotFound);
}

#[test]
fn unknown_classes_and_types_are_kept_raw() {
    let value = json!({"type": "event", "class": "SessionExpiredEvent", "code": 200, "body": {"x": [1, 2]}, "extraTop": true});
    let frame = round_trip(value);
    assert_eq!(frame.kind, FrameType::Other("event".into()));
    assert_eq!(frame.class(), "SessionExpiredEvent");
    assert!(matches!(&frame.body, FrameBody::Unknown { body, .. } if body["x"][1] == 2));
    // A known class with a body of the wrong shape is an error, not silently unknown.
    let bad = json!({"type": "message", "class": "UploadSuccessEvent", "code": 200, "body": "oops"});
    assert!(serde_json::from_value::<Frame>(bad).is_err());
}

#[test]
fn error_codes_keep_unknown_values() {
    for code in [4000, 4001, 4002, 4003, 4004, 4005, 4006, 4007, 4008, 4009, 4010, 4011, 4013, 4020, 4029] {
        let parsed = ErrorCode::from_u32(code);
        assert!(!matches!(parsed, ErrorCode::Other(_)), "{code} is known");
        assert_eq!(parsed.as_u32(), code);
    }
    assert_eq!(ErrorCode::from_u32(4012), ErrorCode::Other(4012));
    assert_eq!(serde_json::to_value(ErrorCode::Other(4999)).unwrap(), json!(4999));
}

fn request_round_trip(request: Request, expected: Value) {
    assert_eq!(serde_json::to_value(&request).unwrap(), expected);
    let back: Request = serde_json::from_value(expected).unwrap();
    assert_eq!(back, request);
}

#[test]
fn requests_serialise_as_the_reference_shows() {
    let token = SessionToken::new("tok");
    request_round_trip(
        Request::ConfigureSession {
            token: token.clone(),
            deployment_id: "dep".into(),
            start_new: False,
            tracing_id: Some("t".into()),
        },
        json!({"action": "configureSession", "token": "tok", "deploymentId": "dep", "startNew": false, "tracingId": "t"}),
    );
    request_round_trip(
        Request::OnAttachment {
            token: token.clone(),
            attachment_id: "a".into(),
            file_name: "a.pdf".into(),
            file_type: "application/pdf".into(),
            file_size: 1234,
            file_md5: Some("md5".into()),
            errors_as_json: true,
            tracing_id: None,
        },
        json!({"action": "onAttachment", "token": "tok", "attachmentId": "a", "fileName": "a.pdf",
               "fileType": "application/pdf", "fileSize": 1234, "fileMd5": "md5", "errorsAsJson": true}),
    );
    let mut message = OutgoingMessage::text("optional caption")
        .with_custom_attributes(BTreeMap::from([("k".to_owned(), "v".to_owned())]));
    message.content.push(MessageContent::attachment("a"));
    request_round_trip(
        Request::OnMessage { token: token.clone(), message, tracing_id: None },
        json!({"action": "onMessage", "token": "tok", "message": {"type": "Text", "text": "optional caption",
               "content": [{"contentType": "Attachment", "attachment": {"id": "a"}}],
               "channel": {"metadata": {"customAttributes": {"k": "v"}}}}}),
    );
    request_round_trip(
        Request::GetAttachment { token: token.clone(), attachment_id: "a".into(), tracing_id: None },
        json!({"action": "getAttachment", "token": "tok", "attachmentId": "a"}),
    );
    request_round_trip(
        Request::DeleteAttachment { token: token.clone(), attachment_id: "a".into(), tracing_id: None },
        json!({"action": "deleteAttachment", "token": "tok", "attachmentId": "a"}),
    );
    request_round_trip(
        Request::Echo { token: token.clone(), message: OutgoingMessage::text("ping"), tracing_id: None },
        json!({"action": "echo", "token": "tok", "message": {"type": "Text", "text": "ping"}}),
    );
    request_round_trip(
        Request::GetJwt { token: token.clone(), tracing_id: None },
        json!({"action": "getJwt", "token": "tok"}),
    );
    request_round_trip(
        Request::CloseSession { token, close_all_connections: False, tracing_id: None },
        json!({"action": "closeSession", "token": "tok", "closeAllConnections": false}),
    );
}

#[test]
fn harmful_flags_cannot_be_expressed() {
    let start_new =
        json!({"action": "configureSession", "token": "t", "deploymentId": "d", "startNew": true});
    assert!(serde_json::from_value::<Request>(start_new).is_err());
    let close_all = json!({"action": "closeSession", "token": "t", "closeAllConnections": true});
    assert!(serde_json::from_value::<Request>(close_all).is_err());
    let clear = json!({"action": "clearConversation", "token": "t"});
    assert!(serde_json::from_value::<Request>(clear).is_err());
    let debug =
        format!("{:?}", Request::GetJwt { token: SessionToken::new("secret-token"), tracing_id: None });
    assert!(!debug.contains("secret-token"), "{debug}");
}

/// Every server frame shape of the official SDKs' fixtures (as summarised in the reference): each
/// parses into its class, most without a `tracingId`, and re-serialises unchanged.
#[test]
fn official_fixture_shapes_parse() {
    let shapes = [
        (
            "SessionResponse",
            json!({"type": "response", "class": "SessionResponse", "code": 200,
            "body": {"connected": true, "newSession": true, "readOnly": false,
                     "allowedMedia": {"inbound": {"fileTypes": [{"type": "*/*"}], "maxFileSizeKB": 10240}},
                     "blockedExtensions": [".ade", ".exe"], "maxCustomDataBytes": 100}}),
        ),
        (
            "PresignedUrlResponse",
            json!({"type": "response", "class": "PresignedUrlResponse", "code": 200,
            "body": {"attachmentId": "88888888-8888-8888-8888-888888888888", "headers": {"x-amz-tagging": "abc"},
                     "url": "https://uploads.example/a"}}),
        ),
        (
            "GenerateUrlError",
            json!({"type": "message", "class": "GenerateUrlError", "code": 200,
            "body": {"attachmentId": "a", "errorCode": 4001, "errorMessage": "File type not supported"}}),
        ),
        (
            "UploadSuccessEvent",
            json!({"type": "message", "class": "UploadSuccessEvent", "code": 200,
            "body": {"attachmentId": "a", "downloadUrl": "https://downloads.example/a",
                     "timestamp": "2021-08-17T17:00:08.746Z"}}),
        ),
        (
            "UploadFailureEvent",
            json!({"type": "message", "class": "UploadFailureEvent", "code": 200,
            "body": {"attachmentId": "a", "errorCode": 4003, "errorMessage": "Content invalid",
                     "timestamp": "2021-08-17T17:00:08.746Z"}}),
        ),
        (
            "AttachmentDeletedResponse",
            json!({"type": "response", "class": "AttachmentDeletedResponse",
            "code": 200, "body": {"attachmentId": "a"}}),
        ),
        (
            "StructuredMessage",
            json!({"type": "message", "class": "StructuredMessage", "code": 200,
            "body": {"text": "Hi", "type": "Text", "direction": "Inbound", "id": "m",
                     "channel": {"time": "2022-08-22T19:24:26.704Z", "messageId": "m"},
                     "metadata": {"correlationId": "c"}}}),
        ),
        (
            "StructuredMessage",
            json!({"type": "message", "class": "StructuredMessage", "code": 200,
            "body": {"direction": "Outbound", "id": "e", "type": "Event",
                     "channel": {"time": "2022-08-22T19:24:26.704Z", "type": "Private"},
                     "events": [{"eventType": "Presence", "presence": {"type": "Disconnect"}}],
                     "metadata": {"readOnly": "true"}}}),
        ),
        (
            "TooManyRequestsErrorMessage",
            json!({"type": "response", "class": "TooManyRequestsErrorMessage",
            "code": 429, "body": {"retryAfter": 3, "errorCode": 4029, "errorMessage": "Message rate too high"}}),
        ),
        (
            "JwtResponse",
            json!({"type": "response", "class": "JwtResponse", "code": 200,
            "body": {"jwt": "some.jwt.value", "exp": 1_661_201_361}}),
        ),
        (
            "ConnectionClosedEvent",
            json!({"type": "message", "class": "ConnectionClosedEvent", "code": 200,
            "body": {}}),
        ),
        (
            "ConnectionClosedEvent",
            json!({"type": "message", "class": "ConnectionClosedEvent", "code": 200,
            "body": {"reason": "signedIn"}}),
        ),
        (
            "SessionExpiredEvent",
            json!({"type": "message", "class": "SessionExpiredEvent", "code": 4006,
            "body": {}}),
        ),
        ("LogoutEvent", json!({"type": "message", "class": "LogoutEvent", "code": 200, "body": {}})),
        (
            "SessionClearedEvent",
            json!({"type": "message", "class": "SessionClearedEvent", "code": 200,
            "body": {}}),
        ),
        ("string", json!({"type": "response", "class": "string", "code": 4007, "body": "Session not found"})),
        (
            "string",
            json!({"type": "message", "class": "string", "code": 4020,
            "body": "Request failed: missing parameter"}),
        ),
    ];
    for (class, value) in shapes {
        let frame = round_trip(value);
        assert_eq!(frame.class(), class);
        assert_eq!(frame.tracing_id, None);
    }
}
