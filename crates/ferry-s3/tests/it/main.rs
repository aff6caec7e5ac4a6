//! Integration tests of ferry-s3 against real S3 servers on loopback: s3s-fs in process for the
//! happy paths, LocalStack for what S3 must reject or verify, and the ferry-sandbox fault proxy in
//! front of either for injected faults.

mod support;

mod faults;
mod happy;
mod memory;
mod resumable;
mod stream;
mod strict;
mod tap;
