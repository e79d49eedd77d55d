//! The SDK's configuration, loaded once per function: every client of a function shares its
//! HTTPS client and credentials (each `aws_config` load resolves the chain and builds a client
//! again). Trust roots compiled in, through the SDK's `TrustStore`, were measured and left out:
//! no faster here (README, "Cold starts").

/// The SDK's configuration from the environment.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}
