//! The `guardrails` command's way to a running Guardrails: its function URL (the stack's
//! `CommandsUrl` output), each command a SigV4-signed POST for the `lambda` service, as Lambda's
//! `AWS_IAM` auth type requires (Lambda Developer Guide, "Invoking Lambda function URLs"). The
//! credentials and Region come from the standard chain (`--profile`, `--region`, the
//! environment); IAM and the stack's `*Principals` decide what the signer may do.

use std::time::SystemTime;

use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_smithy_runtime_api::client::identity::Identity;
use serde_json::Value;

/// The signer and where to send.
pub struct Remote {
    url: String,
    region: String,
    identity: Identity,
    http: reqwest::Client,
}

/// Where the commands go: `--url`, else `GUARDRAILS_COMMANDS_URL`.
pub const URL_VARIABLE: &str = "GUARDRAILS_COMMANDS_URL";

/// The standard credential chain's configuration, with `--profile` and `--region` if given
/// (and the `AWS_ENDPOINT_URL*` variables, as every SDK client reads them).
pub async fn sdk_config(profile: Option<&str>, region: Option<&str>) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(profile) = profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = region {
        loader = loader.region(aws_config::Region::new(region.to_owned()));
    }
    loader.load().await
}

impl Remote {
    /// The remote at `url` (or `GUARDRAILS_COMMANDS_URL`), signing with the credential chain's
    /// credentials.
    pub async fn new(
        url: Option<String>,
        profile: Option<&str>,
        region: Option<&str>,
    ) -> Result<Remote, String> {
        let url = url
            .or_else(|| std::env::var(URL_VARIABLE).ok())
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                format!(
                    "no commands URL: pass --url or set {URL_VARIABLE} (the stack's CommandsUrl \
                     output)"
                )
            })?;
        let config = sdk_config(profile, region).await;
        let region = config
            .region()
            .map(ToString::to_string)
            .ok_or("no AWS Region: pass --region or set AWS_REGION")?;
        let credentials = config
            .credentials_provider()
            .ok_or("no AWS credentials found")?
            .provide_credentials()
            .await
            .map_err(|e| format!("no AWS credentials: {e}"))?;
        Ok(Remote {
            url,
            region,
            identity: credentials.into(),
            http: reqwest::Client::new(),
        })
    }

    /// Sends `body` as a command; the HTTP status and the JSON answer. A signature carries the
    /// time it was made, so signing reads the clock.
    #[allow(clippy::disallowed_methods)]
    pub async fn send(&self, body: &Value) -> Result<(u16, Value), String> {
        let text = body.to_string();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name("lambda")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| format!("signing: {e}"))?
            .into();
        let parsed = reqwest::Url::parse(&self.url).map_err(|e| format!("{}: {e}", self.url))?;
        let host = match (parsed.host_str(), parsed.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            _ => return Err(format!("{}: no host", self.url)),
        };
        let headers = [
            ("host", host.as_str()),
            ("content-type", "application/json"),
        ];
        let signable = SignableRequest::new(
            "POST",
            &self.url,
            headers.iter().copied(),
            SignableBody::Bytes(text.as_bytes()),
        )
        .map_err(|e| format!("signing: {e}"))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| format!("signing: {e}"))?
            .into_parts();
        let mut request = self
            .http
            .post(parsed)
            .header("content-type", "application/json")
            .body(text);
        for (name, value) in instructions.headers() {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("{}: {e}", self.url))?;
        let status = response.status().as_u16();
        let answer = response
            .text()
            .await
            .map_err(|e| format!("{}: {e}", self.url))?;
        let value = serde_json::from_str(&answer).unwrap_or(Value::String(answer));
        Ok((status, value))
    }

    /// Sends `body`; the answer when it is a 200, else the refusal's reason as the error.
    pub async fn ok(&self, body: &Value) -> Result<Value, String> {
        let (status, answer) = self.send(body).await?;
        if status == 200 {
            return Ok(answer);
        }
        let reason = answer
            .get("reason")
            .or_else(|| answer.get("Message"))
            .and_then(Value::as_str)
            .map_or_else(|| answer.to_string(), str::to_owned);
        Err(format!("refused ({status}): {reason}"))
    }
}
