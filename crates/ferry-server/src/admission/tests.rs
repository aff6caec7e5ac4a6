//! Unit tests of admission: address limits, the trusted header, guest quotas, session checks.

use super::*;

fn admission(settings: AdmissionSettings) -> Admission {
    Admission::new(&settings, [&"dep".to_owned()])
}

#[test]
fn clients_are_limited_per_address_and_told_when_to_return() {
    let a =
        admission(AdmissionSettings { per_client_per_minute: 1, per_client_burst: 2, ..Default::default() });
    let one: IpAddr = "10.0.0.1".parse().unwrap();
    let two: IpAddr = "10.0.0.2".parse().unwrap();
    assert!(a.check_client(Some(one)).is_ok());
    assert!(a.check_client(Some(one)).is_ok());
    let refused = a.check_client(Some(one)).unwrap_err();
    assert_eq!(refused.code(), ErrorCode::RateLimited);
    assert!(refused.retry_after_secs().is_some_and(|s| (1..=60).contains(&s)), "{refused}");
    assert!(a.check_client(Some(two)).is_ok(), "another address has its own budget");
}

#[test]
fn the_client_address_comes_from_the_trusted_header_only_when_configured() {
    let mut headers = http::HeaderMap::new();
    headers.insert("x-forwarded-for", "203.0.113.9, 10.1.2.3".parse().unwrap());
    let peer = Some(ClientAddr("127.0.0.1:5000".parse().unwrap()));
    let plain = admission(AdmissionSettings::default());
    assert_eq!(plain.client_ip(&headers, peer), Some("127.0.0.1".parse().unwrap()));
    let behind = admission(AdmissionSettings {
        trusted_client_header: Some("x-forwarded-for".into()),
        ..Default::default()
    });
    assert_eq!(behind.client_ip(&headers, peer), Some("10.1.2.3".parse().unwrap()));
    assert_eq!(behind.client_ip(&http::HeaderMap::new(), peer), Some("127.0.0.1".parse().unwrap()));
}

#[test]
fn guest_quotas_count_uploads_bytes_and_concurrency() {
    let a = admission(AdmissionSettings::default());
    let guests = GuestSettings {
        uploads_per_hour: 3,
        bytes_per_hour: 100,
        concurrent_uploads: 2,
        ..Default::default()
    };
    let first = a.reserve_guest("dep", "t", &guests, 10).unwrap();
    let second = a.reserve_guest("dep", "t", &guests, 10).unwrap();
    let busy = a.check_guest("dep", "t", &guests, 10).unwrap_err();
    assert_eq!(busy.code(), ErrorCode::GuestQuotaExceeded);
    assert_eq!(busy.retry_after_secs(), Some(5));
    assert!(a.check_guest("dep", "other", &guests, 10).is_ok(), "sessions are counted apart");
    drop(first);
    second.charge(75);
    let bytes = a.check_guest("dep", "t", &guests, 10).unwrap_err();
    assert!(bytes.message().contains("bytes"), "{bytes}");
    assert!(bytes.retry_after_secs().is_some_and(|s| s > 3000));
    let _third = a.reserve_guest("dep", "t", &guests, 5).unwrap();
    drop(second);
    let uploads = a.check_guest("dep", "t", &guests, 0).unwrap_err();
    assert!(uploads.message().contains("uploads for the hour"), "{uploads}");
}

#[test]
fn guest_uploads_can_be_switched_off() {
    let a = admission(AdmissionSettings::default());
    let off = GuestSettings { uploads: false, ..Default::default() };
    assert_eq!(a.check_guest("dep", "t", &off, 0).unwrap_err().code(), ErrorCode::GuestUploadsDisabled);
}

#[test]
fn a_good_session_check_is_remembered_for_a_while() {
    let a = admission(AdmissionSettings { session_cache_size: 2, ..Default::default() });
    assert!(!a.session_known("dep", "t1"));
    a.remember_session("dep", "t1");
    assert!(a.session_known("dep", "t1"));
    assert!(!a.session_known("other", "t1"), "keyed by deployment too");
    a.remember_session("dep", "t2");
    a.remember_session("dep", "t3");
    assert_eq!(lock(&a.cache).len(), 2, "the cache is bounded");
    assert!(a.session_known("dep", "t3"));
    let off = admission(AdmissionSettings { session_cache_secs: 0, ..Default::default() });
    off.remember_session("dep", "t1");
    assert!(!off.session_known("dep", "t1"));
}

#[test]
fn session_checks_are_limited_by_rate_and_by_checks_in_flight() {
    let a = admission(AdmissionSettings {
        session_checks_per_minute: 1,
        session_checks_burst: 3,
        session_checks_concurrent: 2,
        ..Default::default()
    });
    let first = a.session_check_slot("dep").unwrap();
    let second = a.session_check_slot("dep").unwrap();
    let crowded = a.session_check_slot("dep").unwrap_err();
    assert_eq!((crowded.code(), crowded.retry_after_secs()), (ErrorCode::SessionChecksLimited, Some(1)));
    drop(first);
    let _third = a.session_check_slot("dep").unwrap();
    drop(second);
    let rate = a.session_check_slot("dep").unwrap_err();
    assert_eq!(rate.code(), ErrorCode::SessionChecksLimited);
    assert!(rate.retry_after_secs().is_some_and(|s| s > 1), "{rate}");
    assert!(a.session_check_slot("unknown").unwrap().is_none());
}

#[test]
fn a_deferred_length_is_charged_to_the_hour_when_declared() {
    let a = admission(AdmissionSettings::default());
    let guests = GuestSettings { bytes_per_hour: 1000, ..Default::default() };
    // Created with a deferred length: admitted and counted with no bytes.
    drop(a.reserve_guest("dep", "t", &guests, 0).unwrap());
    a.charge_guest("dep", "t", &guests, 600).unwrap();
    let over = a.charge_guest("dep", "t", &guests, 600).unwrap_err();
    assert_eq!(over.code(), ErrorCode::GuestQuotaExceeded);
    assert!(over.message().contains("bytes for the hour"), "{over}");
    // The refusal charged nothing: what is left still fits, and the next upload sees it all.
    a.charge_guest("dep", "t", &guests, 400).unwrap();
    assert!(a.check_guest("dep", "t", &guests, 1).is_err(), "the hour's bytes are spent");
    assert!(a.check_guest("dep", "other", &guests, 1000).is_ok(), "per session");
}
