//! Integration tests of the upload service: the router over real sockets and through `oneshot`,
//! against s3s-fs in process and the Genesys emulator.

mod support;

mod admission;
mod budget;
mod config_env;
mod deployment_config;
mod flows;
mod fuzz_link;
mod fuzz_multipart;
mod keys;
mod linger;
mod ops;
mod trickle;
mod validation;
