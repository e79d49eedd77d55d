//! `PackageTargets` in Systems Manager Parameter Store: the target of model package group `G`
//! is the JSON of parameter `<path>G` (`/guardrails/package-targets/G` by default), so that the
//! targets have room (a standard parameter holds 4 KB, an advanced one 8 KB; Lambda's
//! environment holds 4 KB for all of a function's variables) and are set without redeploying:
//!
//! ```sh
//! aws ssm put-parameter --name /guardrails/package-targets/fraud-models --type String \
//!   --value '{"endpointName": "fraud-scorer", "policy": {...}}'
//! ```

use async_trait::async_trait;
use aws_sdk_ssm::Client;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::classify;
use crate::ports::{ErrorKind, PackageTarget, PackageTargets, PortError, PortResult};

/// The targets under one parameter path.
#[derive(Debug, Clone)]
pub struct ParameterTargets {
    client: Client,
    /// Ends with `/`.
    path: String,
}

impl ParameterTargets {
    pub fn new(client: Client, path: &str) -> ParameterTargets {
        let mut path = path.to_owned();
        if !path.ends_with('/') {
            path.push('/');
        }
        ParameterTargets { client, path }
    }

    pub fn parameter(&self, group: &str) -> String {
        format!("{}{group}", self.path)
    }
}

#[async_trait]
impl PackageTargets for ParameterTargets {
    async fn target(&self, group: &str) -> PortResult<Option<PackageTarget>> {
        let name = self.parameter(group);
        let out = match self.client.get_parameter().name(&name).send().await {
            Ok(out) => out,
            Err(e) if e.code() == Some("ParameterNotFound") => return Ok(None),
            Err(e) => return Err(classify("ssm:GetParameter", &e)),
        };
        let text = out.parameter().and_then(|p| p.value()).unwrap_or_default();
        serde_json::from_str(text).map(Some).map_err(|e| {
            PortError::new(
                ErrorKind::Refused,
                format!(
                    "parameter {name} is not a package target ({{\"endpointName\": ..., \
                     \"policy\": ..., \"instanceType\"?: ..., \"instanceCount\"?: ...}}): {e}"
                ),
            )
        })
    }
}
