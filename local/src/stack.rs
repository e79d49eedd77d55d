//! The whole local stack: moto server (DynamoDB, SNS, SQS, EventBridge, Scheduler) from the
//! project's Python venv, and this emulator (SageMaker, CloudWatch, Service Quotas) in front of
//! it, authorizing every call with the IAM policies of `infra/template.yaml` and sending its
//! events to moto's EventBridge. Both listen on free 127.0.0.1 ports; dropping the stack stops
//! both. Clients reach everything through the emulator's address (`AWS_ENDPOINT_URL`).

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_eventbridge::config::{Credentials, SharedCredentialsProvider};

use crate::events::Publisher;
use crate::iam::{self, Iam};
use crate::{Config, Running};

/// The region every local client uses, and the local administrator's credentials.
pub const REGION: &str = iam::REGION;
pub const ACCESS_KEY: &str = iam::ADMIN_ACCESS_KEY;
pub const SECRET_KEY: &str = iam::ADMIN_SECRET_KEY;

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

/// An SDK configuration for the local stack: the administrator's credentials, `us-east-1`,
/// and every service at `endpoint`.
pub fn sdk_config(endpoint: &str) -> SdkConfig {
    signed_as(endpoint, ACCESS_KEY, SECRET_KEY)
}

fn signed_as(endpoint: &str, key: &str, secret: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            key,
            secret,
            None,
            None,
            "guardrails-local",
        )))
        .endpoint_url(endpoint)
        .build()
}

/// The IAM of the local account: the administrator and each function's role in `template`.
pub fn iam_of(template: &Path) -> Result<Iam, String> {
    let names = iam::template::Names::local();
    let roles = iam::template::roles(template, &names)?;
    let mut managed = iam::template::managed_policies(template, &names)?;
    let operator = ["OperatorPolicy", "FailedEventsPolicy"]
        .iter()
        .filter_map(|name| managed.remove(*name))
        .collect();
    Ok(Iam::with_roles(&roles).with_people(operator))
}

/// What the template gives every function beyond the names of its resources, with the local
/// stack's values: the account, and who may send which command (the operator, for all three).
pub fn function_env() -> Vec<(&'static str, String)> {
    vec![
        ("GUARDRAILS_ACCOUNT_ID", iam::ACCOUNT.to_owned()),
        (
            "GUARDRAILS_DEPLOY_PRINCIPALS",
            iam::OPERATOR_ROLE_ARN.to_owned(),
        ),
        (
            "GUARDRAILS_APPROVE_PRINCIPALS",
            iam::OPERATOR_ROLE_ARN.to_owned(),
        ),
        (
            "GUARDRAILS_ABORT_PRINCIPALS",
            iam::OPERATOR_ROLE_ARN.to_owned(),
        ),
    ]
}

/// The repository's SAM template.
pub fn default_template() -> PathBuf {
    crate::repo_root().join("infra/template.yaml")
}

/// moto and the emulator, running together.
#[derive(Debug)]
pub struct LocalStack {
    pub moto: Moto,
    pub emulator: Running,
}

impl LocalStack {
    /// Starts moto, then the emulator in front of it, authorizing with the roles of the
    /// repository's `infra/template.yaml`.
    pub async fn start(config: Config) -> Result<LocalStack, String> {
        LocalStack::start_with(config, &default_template()).await
    }

    /// Starts moto, then the emulator in front of it, authorizing with the roles of `template`
    /// and publishing its events to moto's default event bus (as AWS services do, with no IAM).
    pub async fn start_with(mut config: Config, template: &Path) -> Result<LocalStack, String> {
        config.iam = iam_of(template)?;
        let moto = start_moto()?;
        let sdk = sdk_config(&moto.url());
        config.moto = Some(moto.url());
        config.publisher = Some(Publisher::new(
            aws_sdk_eventbridge::Client::new(&sdk),
            "default".to_owned(),
        ));
        let emulator = crate::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config)
            .await
            .map_err(|e| format!("cannot start the emulator: {e}"))?;
        Ok(LocalStack { moto, emulator })
    }

    /// The environment that points the AWS SDK (and boto3, and the AWS CLI) at this stack as
    /// the local administrator, as `export` lines use it. Functions under `cargo lambda watch`
    /// replace the credentials with their own (their `Cargo.toml`).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.emulator.url()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_DEFAULT_REGION", REGION.to_owned()),
            ("GUARDRAILS_LOCAL_CONTROL", self.emulator.url()),
        ]
    }

    /// The SDK configuration of the local administrator, for every service.
    pub fn sdk_config(&self) -> SdkConfig {
        sdk_config(&self.emulator.url())
    }

    /// The SDK configuration of function `binary` (its role in the template).
    pub fn function_sdk_config(&self, binary: &str) -> SdkConfig {
        signed_as(
            &self.emulator.url(),
            &iam::access_key(binary),
            &iam::secret_key(binary),
        )
    }
}
