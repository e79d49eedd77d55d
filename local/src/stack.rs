//! The whole local stack: moto server (DynamoDB, SNS, SQS, EventBridge, Scheduler) from the
//! project's Python venv, and this emulator (SageMaker, CloudWatch) sending its events to moto's
//! EventBridge. Both listen on free 127.0.0.1 ports; dropping the stack stops both.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_eventbridge::config::{Credentials, SharedCredentialsProvider};

use crate::events::Publisher;
use crate::{Config, Running};

/// The region and test credentials every local client uses.
pub const REGION: &str = "us-east-1";
pub const ACCESS_KEY: &str = "testing";
pub const SECRET_KEY: &str = "testing";

/// How long moto may take to answer after starting.
const MOTO_START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running moto server.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the set-up command put moto: `$GUARDRAILS_MOTO_SERVER`, else `.venv/bin/moto_server`
/// in the repository.
pub fn moto_server_path() -> PathBuf {
    if let Some(path) = std::env::var_os("GUARDRAILS_MOTO_SERVER") {
        return PathBuf::from(path);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(".venv/bin/moto_server")
}

fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// Starts moto on a free port and waits until it accepts connections.
pub fn start_moto() -> Result<Moto, String> {
    let path = moto_server_path();
    if !path.exists() {
        return Err(format!(
            "{} not found: run ./scripts/setup.sh (it creates .venv with moto[server])",
            path.display()
        ));
    }
    let port = free_port().map_err(|e| format!("no free port: {e}"))?;
    let child = Command::new(&path)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", path.display()))?;
    let moto = Moto { child, port };
    let deadline = Instant::now() + MOTO_START_TIMEOUT;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if Instant::now() > deadline {
            return Err(format!(
                "moto did not answer on port {port} within {MOTO_START_TIMEOUT:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(moto)
}

/// An SDK configuration for the local stack: test credentials, `us-east-1`, and every service
/// at `endpoint` (moto); SageMaker and CloudWatch clients override it with the emulator's URL.
pub fn sdk_config(endpoint: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            ACCESS_KEY,
            SECRET_KEY,
            None,
            None,
            "guardrails-local",
        )))
        .endpoint_url(endpoint)
        .build()
}

/// moto and the emulator, running together.
#[derive(Debug)]
pub struct LocalStack {
    pub moto: Moto,
    pub emulator: Running,
}

impl LocalStack {
    /// Starts moto, then the emulator publishing its events to moto's default event bus.
    pub async fn start(mut config: Config) -> Result<LocalStack, String> {
        let moto = start_moto()?;
        let sdk = sdk_config(&moto.url());
        config.publisher = Some(Publisher::new(
            aws_sdk_eventbridge::Client::new(&sdk),
            "default".to_owned(),
        ));
        let emulator = crate::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config)
            .await
            .map_err(|e| format!("cannot start the emulator: {e}"))?;
        Ok(LocalStack { moto, emulator })
    }

    /// The environment that points the AWS SDK at this stack, as `export` lines use it.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.moto.url()),
            ("AWS_ENDPOINT_URL_SAGEMAKER", self.emulator.url()),
            ("AWS_ENDPOINT_URL_CLOUDWATCH", self.emulator.url()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
            ("AWS_REGION", REGION.to_owned()),
            ("GUARDRAILS_LOCAL_CONTROL", self.emulator.url()),
        ]
    }

    /// The SDK configuration for moto's services.
    pub fn sdk_config(&self) -> SdkConfig {
        sdk_config(&self.moto.url())
    }
}
