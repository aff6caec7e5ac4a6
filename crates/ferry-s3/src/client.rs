//! Building an `aws_sdk_s3::Client` the way ferry needs it.
//!
//! - checksums only when ferry sets them (`RequestChecksumCalculation::WhenRequired`): the SDK's
//!   default CRC32 is rejected by several S3-compatible stores, and ferry sends its own values;
//! - the SDK's own retries off: ferry retries with its policy, so attempts are counted in one place;
//! - timeouts per attempt and per connection.

use crate::config::S3Config;
use aws_config::BehaviorVersion;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};

/// A client for `config`. Loads the standard AWS credential chain when `config.credentials` is
/// `None` (which may read the environment and profile files: that is the AWS SDK's behaviour, and the
/// only place ferry-s3 lets anything be read from outside its config).
pub async fn build_client(config: &S3Config) -> aws_sdk_s3::Client {
    let mut loader =
        aws_config::defaults(BehaviorVersion::latest()).region(Region::new(config.region.clone()));
    if let Some(creds) = &config.credentials {
        loader = loader.credentials_provider(aws_credential_types::Credentials::new(
            creds.access_key_id.clone(),
            creds.secret_access_key.0.clone(),
            creds.session_token.as_ref().map(|t| t.0.clone()),
            None,
            "ferry-static",
        ));
    }
    let shared = loader.load().await;
    let mut builder = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(config.force_path_style)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(config.connect_timeout)
                .operation_attempt_timeout(config.attempt_timeout)
                .build(),
        );
    if let Some(endpoint) = &config.endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    aws_sdk_s3::Client::from_conf(builder.build())
}
