//! The published API description agrees with the code: `assets/openapi.json` (served at
//! `/openapi.json`) is OpenAPI 3.1 whose references resolve, documents every route registered in
//! `src/app.rs` and `src/dev.rs` (and no other), and every error code (`ErrorCode::ALL`) at its
//! status; `docs/api.md` lists every code too, and its worked ticket example is one ferry accepts;
//! the configuration in `docs/messenger.md` is one ferry reads. The routes are read from the
//! sources at test time, so adding a route or an error code without documenting it fails here.

use ferry_server::error::ErrorCode;
use ferry_server::tickets::{TicketVerifier, mint};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn openapi() -> Value {
    serde_json::from_str(ferry_server::app::OPENAPI).expect("assets/openapi.json is JSON")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The string literal starting at `text[0]` (a `"`), if any.
fn literal(text: &str) -> Option<&str> {
    let rest = text.strip_prefix('"')?;
    rest.find('"').map(|end| &rest[..end])
}

/// `(path, method)` of every `.route("path", method(…))` in `text`.
fn routes(text: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (at, _) in text.match_indices(".route(") {
        let rest = text[at + ".route(".len()..].trim_start();
        let Some(path) = literal(rest) else { continue };
        let rest = rest[path.len() + 2..].trim_start().strip_prefix(',').unwrap_or("").trim_start();
        let call: String =
            rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
        let method = call.rsplit("::").next().unwrap_or_default().to_owned();
        assert!(
            ["get", "post", "put", "delete", "patch", "head", "options"].contains(&method.as_str()),
            "could not read the method of route {path:?} (found {call:?})"
        );
        found.push((path.to_owned(), method));
    }
    found
}

/// Every error code ferry answers with, and its status: `ErrorCode::ALL`.
fn error_codes() -> BTreeMap<String, u16> {
    let codes: BTreeMap<String, u16> =
        ErrorCode::ALL.iter().map(|c| (c.as_str().to_owned(), c.status().as_u16())).collect();
    assert_eq!(codes.len(), ErrorCode::ALL.len(), "no two codes share a string");
    assert!(codes.len() >= 10, "found the error codes: {codes:?}");
    codes
}

/// The documented codes: `ErrorCode`'s `{const, x-status}` entries.
fn documented_codes(doc: &Value) -> BTreeMap<String, u16> {
    doc["components"]["schemas"]["ErrorCode"]["oneOf"]
        .as_array()
        .expect("ErrorCode is a oneOf")
        .iter()
        .map(|entry| {
            let code = entry["const"].as_str().expect("each ErrorCode entry has a const").to_owned();
            let status = entry["x-status"].as_u64().expect("each ErrorCode entry has an x-status");
            assert!(entry["description"].as_str().is_some_and(|d| !d.is_empty()), "{code} is described");
            (code, u16::try_from(status).expect("a status"))
        })
        .collect()
}

/// `(status, code)` pairs the operations' responses list in `x-ferry-codes`.
fn codes_in_responses(doc: &Value) -> BTreeSet<(u16, String)> {
    let mut out = BTreeSet::new();
    for item in doc["paths"].as_object().expect("paths").values() {
        for operation in item.as_object().expect("path item").values() {
            let Some(responses) = operation["responses"].as_object() else { continue };
            for (status, response) in responses {
                for code in response["x-ferry-codes"].as_array().into_iter().flatten() {
                    out.insert((status.parse().expect("numeric status"), code.as_str().unwrap().to_owned()));
                }
            }
        }
    }
    out
}

fn resolve<'a>(doc: &'a Value, pointer: &str) -> Option<&'a Value> {
    doc.pointer(pointer.strip_prefix('#')?)
}

fn check_refs(doc: &Value, node: &Value, seen: &mut usize) {
    match node {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                assert!(resolve(doc, target).is_some(), "$ref {target} does not resolve");
                *seen += 1;
            }
            map.values().for_each(|v| check_refs(doc, v, seen));
        }
        Value::Array(items) => items.iter().for_each(|v| check_refs(doc, v, seen)),
        _ => {}
    }
}

#[test]
fn the_description_is_openapi_3_1_and_its_references_resolve() {
    let doc = openapi();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1.")), "OpenAPI 3.1");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let mut refs = 0;
    check_refs(&doc, &doc, &mut refs);
    assert!(refs > 10, "the document uses its components ({refs} references)");
    let schemes = doc["components"]["securitySchemes"].as_object().expect("security schemes");
    assert_eq!(schemes["guestSession"]["scheme"], "bearer");
    assert_eq!(schemes["uploadTicket"]["scheme"], "Ferry-Ticket");
    let upload = &doc["paths"]["/v1/uploads"]["post"];
    assert_eq!(upload["security"], json!([{"guestSession": []}, {"uploadTicket": []}]));
    for media in ["multipart/form-data", "*/*"] {
        assert!(upload["requestBody"]["content"][media].is_object(), "uploads accept {media}");
    }
    let names: BTreeSet<&str> = upload["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .map(|p| {
            let p = resolve(&doc, p["$ref"].as_str().expect("parameters are components")).expect("resolves");
            p["name"].as_str().expect("named")
        })
        .collect();
    for header in ["X-Genesys-Deployment-Id", "X-File-Name", "X-Caption", "Content-MD5", "Repr-Digest"] {
        assert!(names.contains(header), "{header} is documented");
    }
    let reference = &doc["components"]["schemas"]["AttachmentReference"];
    for field in ["type", "id", "name", "size", "contentType", "downloadUrl", "status", "uploadedAt"] {
        assert!(reference["properties"][field].is_object(), "the reference documents {field}");
    }
    let files = &doc["paths"]["/v1/files/{id}"]["get"]["responses"];
    assert!(files["302"].is_object() && files["403"].is_object(), "downloads: 302 and 403");
}

#[test]
fn every_route_is_documented_and_every_documented_route_exists() {
    let doc = openapi();
    let mut routed = BTreeSet::new();
    for file in ["app.rs", "dev.rs", "tus/mod.rs"] {
        routed.extend(routes(&read(&crate_dir().join("src").join(file))));
    }
    for path in ["/v1/uploads", "/v1/files/{id}", "/healthz", "/readyz", "/metrics", "/openapi.json"] {
        assert!(routed.iter().any(|(p, _)| p == path), "found the route {path} in app.rs");
    }
    for (path, method) in &routed {
        assert!(
            doc["paths"][path][method].is_object(),
            "{} {path} is routed but not in assets/openapi.json",
            method.to_uppercase()
        );
    }
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            assert!(
                routed.contains(&(path.clone(), method.clone())),
                "assets/openapi.json documents {} {path}, which no route serves",
                method.to_uppercase()
            );
        }
    }
}

#[test]
fn every_error_code_is_documented_with_its_status() {
    let doc = openapi();
    let documented = documented_codes(&doc);
    let in_responses = codes_in_responses(&doc);
    let api_md = read(&crate_dir().join("../../docs/api.md"));
    for (code, used) in error_codes() {
        let status = documented
            .get(&code)
            .unwrap_or_else(|| panic!("error code `{code}` is in ErrorCode but not in assets/openapi.json"));
        assert_eq!(used, *status, "`{code}` is answered with {used} but documented with {status}");
        assert!(
            in_responses.contains(&(*status, code.clone())),
            "`{code}` is not listed under a {status} response of any operation"
        );
        assert!(api_md.contains(&format!("`{code}`")), "docs/api.md does not mention `{code}`");
    }
    let used = error_codes();
    for code in documented.keys() {
        assert!(used.contains_key(code), "assets/openapi.json documents `{code}`, which ErrorCode lacks");
    }
    for (_, code) in &in_responses {
        assert!(documented.contains_key(code), "a response lists `{code}`, which ErrorCode lacks");
    }
}

/// The worked example in `docs/api.md`, section "Upload tickets".
const EXAMPLE_SECRET: &str = "example-ticket-secret-0123456789abcdef";
const EXAMPLE_CLAIMS: &str = r#"{"dep":"ferry-demo-deployment","exp":1893456000,"jti":"5f0c4a9e-0d4b-4c38-9a57-3c2b8e4d1a77","max":104857600,"types":["image/*","application/pdf"],"ref":"case-1234"}"#;
const EXAMPLE_PAYLOAD: &str = "eyJkZXAiOiJmZXJyeS1kZW1vLWRlcGxveW1lbnQiLCJleHAiOjE4OTM0NTYwMDAsImp0aSI6IjVmMGM0YTllLTBkNGItNGMzOC05YTU3LTNjMmI4ZTRkMWE3NyIsIm1heCI6MTA0ODU3NjAwLCJ0eXBlcyI6WyJpbWFnZS8qIiwiYXBwbGljYXRpb24vcGRmIl0sInJlZiI6ImNhc2UtMTIzNCJ9";
const EXAMPLE_SIGNATURE: &str = "MkBXpBV12ctSXmFEADgyvPC_3SZgTPZ7s1EyisZhAG4";

#[test]
fn the_worked_ticket_example_in_the_docs_is_one_ferry_accepts() {
    let api_md = read(&crate_dir().join("../../docs/api.md"));
    let ticket = format!("v1.{EXAMPLE_PAYLOAD}.{EXAMPLE_SIGNATURE}");
    for piece in [EXAMPLE_SECRET, EXAMPLE_CLAIMS, EXAMPLE_PAYLOAD, EXAMPLE_SIGNATURE, ticket.as_str()] {
        assert!(api_md.contains(piece), "docs/api.md shows {piece}");
    }
    let verifier = TicketVerifier::new(EXAMPLE_SECRET.as_bytes());
    let claims = verifier.check(&ticket, 1_893_455_999).expect("the documented ticket verifies");
    let expected: Value = serde_json::from_str(EXAMPLE_CLAIMS).unwrap();
    assert_eq!(
        serde_json::to_value(&claims).unwrap(),
        expected,
        "the documented claims are what ferry reads"
    );
    assert_eq!(mint(EXAMPLE_SECRET.as_bytes(), &claims), ticket, "ferry mints the same ticket");
    assert!(verifier.check(&ticket, 1_893_456_000).is_err(), "and it expires at exp");
    let wrong = TicketVerifier::new(b"another secret, also at least 32 bytes");
    assert!(wrong.check(&ticket, 1).is_err(), "only the shared secret verifies it");
}

#[test]
fn the_configuration_in_the_messenger_guide_is_one_ferry_reads() {
    let guide = read(&crate_dir().join("../../docs/messenger.md"));
    let start = guide.find("```toml\n").expect("docs/messenger.md has a TOML example") + "```toml\n".len();
    let end = start + guide[start..].find("```").expect("the TOML example ends");
    let config = ferry_server::config::Config::from_toml(&guide[start..end]).expect("the example parses");
    assert_eq!(config.public_url, "https://files.example.com");
    assert!(config.ticket_secret.is_some(), "the example enables tickets");
    assert_eq!(config.cors_origins, ["https://www.example.com"]);
    assert_eq!(config.deployments.len(), 1);
}
