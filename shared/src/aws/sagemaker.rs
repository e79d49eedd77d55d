//! `Endpoints` on SageMaker: DescribeEndpoint, CreateEndpointConfig, UpdateEndpoint,
//! UpdateEndpointWeightsAndCapacities and DeleteEndpointConfig.

use async_trait::async_trait;
use aws_sdk_sagemaker::Client;
use aws_sdk_sagemaker::operation::describe_endpoint::DescribeEndpointOutput;
use aws_sdk_sagemaker::types::{
    Alarm, AutoRollbackConfig, BlueGreenUpdatePolicy, CapacitySize as SdkCapacitySize,
    CapacitySizeType, ContainerDefinition, DeploymentConfig as SdkDeploymentConfig,
    DesiredWeightAndCapacity, EndpointStatus as SdkStatus, ProductionVariantSummary,
    RollingUpdatePolicy, Tag, TrafficRoutingConfig, TrafficRoutingConfigType,
};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::{autoscaling, classify, endpoint_config};
use crate::core::{ConfigVariant, EndpointStatus, EndpointView, Progress, VariantView};
use crate::plan::{Fleet, FleetVariant, ScalableTarget, Suspended};
use crate::policy::{CapacitySize, CapacityType, DeploymentConfig, TrafficRoutingType};
use crate::ports::{EndpointKind, Endpoints, ErrorKind, PackageView, PortError, PortResult};
use crate::units::Share;

/// SageMaker, through the SDK (with Service Quotas for its instance quotas, when given).
#[derive(Debug, Clone)]
pub struct SageMakerEndpoints {
    client: Client,
    quotas: Option<aws_sdk_servicequotas::Client>,
    scaling: Option<aws_sdk_applicationautoscaling::Client>,
}

impl SageMakerEndpoints {
    pub fn new(client: Client) -> SageMakerEndpoints {
        SageMakerEndpoints {
            client,
            quotas: None,
            scaling: None,
        }
    }

    /// Reads and sets variants' Application Auto Scaling targets through `scaling`.
    pub fn with_scaling(
        mut self,
        scaling: aws_sdk_applicationautoscaling::Client,
    ) -> SageMakerEndpoints {
        self.scaling = Some(scaling);
        self
    }

    /// Reads SageMaker's endpoint instance quotas through `quotas` for the preflight.
    pub fn with_quotas(mut self, quotas: aws_sdk_servicequotas::Client) -> SageMakerEndpoints {
        self.quotas = Some(quotas);
        self
    }
}

/// ListServiceQuotas pages to read at most, looking for one quota (SageMaker has a few hundred).
const MAX_QUOTA_PAGES: usize = 20;

fn status(status: Option<&SdkStatus>) -> PortResult<EndpointStatus> {
    Ok(match status {
        Some(SdkStatus::OutOfService) => EndpointStatus::OutOfService,
        Some(SdkStatus::Creating) => EndpointStatus::Creating,
        Some(SdkStatus::Updating) => EndpointStatus::Updating,
        Some(SdkStatus::SystemUpdating) => EndpointStatus::SystemUpdating,
        Some(SdkStatus::RollingBack) => EndpointStatus::RollingBack,
        Some(SdkStatus::InService) => EndpointStatus::InService,
        Some(SdkStatus::Deleting) => EndpointStatus::Deleting,
        Some(SdkStatus::Failed) => EndpointStatus::Failed,
        Some(SdkStatus::UpdateRollbackFailed) => EndpointStatus::UpdateRollbackFailed,
        other => {
            return Err(PortError::new(
                ErrorKind::Refused,
                format!("DescribeEndpoint returned an unknown EndpointStatus {other:?}"),
            ));
        }
    })
}

fn count(n: Option<i32>) -> u32 {
    n.and_then(|n| u32::try_from(n).ok()).unwrap_or(0)
}

fn variant(v: &ProductionVariantSummary) -> VariantView {
    VariantView {
        variant_name: v.variant_name().unwrap_or_default().to_owned(),
        current_weight: f64::from(v.current_weight().unwrap_or(0.0)),
        current_instance_count: count(v.current_instance_count()),
        desired_instance_count: count(v.desired_instance_count().or(v.current_instance_count())),
    }
}

/// A share as SageMaker's f32 weight.
#[allow(clippy::cast_possible_truncation)]
fn weight(share: Share) -> f32 {
    share.fraction() as f32
}

fn to_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn capacity(size: CapacitySize) -> SdkCapacitySize {
    SdkCapacitySize::builder()
        .r#type(match size.r#type {
            CapacityType::InstanceCount => CapacitySizeType::InstanceCount,
            CapacityType::CapacityPercent => CapacitySizeType::CapacityPercent,
        })
        .value(to_i32(size.value))
        .build()
}

/// The policy's `DeploymentConfig` as the SDK spells it (the same document, field for field).
fn deployment_config(config: &DeploymentConfig) -> SdkDeploymentConfig {
    let blue_green = config.blue_green_update_policy.as_ref().map(|bg| {
        let routing = &bg.traffic_routing_configuration;
        let traffic = TrafficRoutingConfig::builder()
            .r#type(match routing.r#type {
                TrafficRoutingType::AllAtOnce => TrafficRoutingConfigType::AllAtOnce,
                TrafficRoutingType::Canary => TrafficRoutingConfigType::Canary,
                TrafficRoutingType::Linear => TrafficRoutingConfigType::Linear,
            })
            .wait_interval_in_seconds(to_i32(routing.wait_interval_in_seconds))
            .set_canary_size(routing.canary_size.map(capacity))
            .set_linear_step_size(routing.linear_step_size.map(capacity))
            .build();
        BlueGreenUpdatePolicy::builder()
            .traffic_routing_configuration(traffic)
            .set_termination_wait_in_seconds(bg.termination_wait_in_seconds.map(to_i32))
            .set_maximum_execution_timeout_in_seconds(
                bg.maximum_execution_timeout_in_seconds.map(to_i32),
            )
            .build()
    });
    let rolling = config.rolling_update_policy.as_ref().map(|r| {
        RollingUpdatePolicy::builder()
            .maximum_batch_size(capacity(r.maximum_batch_size))
            .wait_interval_in_seconds(to_i32(r.wait_interval_in_seconds))
            .set_maximum_execution_timeout_in_seconds(
                r.maximum_execution_timeout_in_seconds.map(to_i32),
            )
            .set_rollback_maximum_batch_size(r.rollback_maximum_batch_size.map(capacity))
            .build()
    });
    let rollback = config.auto_rollback_configuration.as_ref().map(|a| {
        let alarms = a
            .alarms
            .iter()
            .map(|alarm| Alarm::builder().alarm_name(&alarm.alarm_name).build())
            .collect();
        AutoRollbackConfig::builder()
            .set_alarms(Some(alarms))
            .build()
    });
    SdkDeploymentConfig::builder()
        .set_blue_green_update_policy(blue_green)
        .set_rolling_update_policy(rolling)
        .set_auto_rollback_configuration(rollback)
        .build()
}

/// The `VariantStatus` entries of the fleet being deployed.
fn progress(out: &DescribeEndpointOutput) -> Vec<Progress> {
    let Some(pending) = out.pending_deployment_summary() else {
        return Vec::new();
    };
    pending
        .production_variants()
        .iter()
        .flat_map(|v| {
            v.variant_status().iter().map(|s| Progress {
                variant_name: v.variant_name().unwrap_or_default().to_owned(),
                status: s
                    .status()
                    .map(|st| st.as_str().to_owned())
                    .unwrap_or_default(),
                message: s.status_message().unwrap_or_default().to_owned(),
            })
        })
        .collect()
}

impl SageMakerEndpoints {
    /// ListTags of `resource_arn`, every page.
    async fn tags(&self, resource_arn: &str) -> PortResult<Vec<Tag>> {
        let mut tags = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_tags()
                .resource_arn(resource_arn)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| classify("sagemaker:ListTags", &e))?;
            tags.extend(page.tags().iter().cloned());
            match page.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_owned()),
                _ => return Ok(tags),
            }
        }
    }

    /// DescribeEndpoint; `None` when SageMaker says `Could not find endpoint`.
    async fn described(&self, endpoint: &str) -> PortResult<Option<DescribeEndpointOutput>> {
        match self
            .client
            .describe_endpoint()
            .endpoint_name(endpoint)
            .send()
            .await
        {
            Ok(out) => Ok(Some(out)),
            Err(e)
                if e.message()
                    .is_some_and(|m| m.contains("Could not find endpoint")) =>
            {
                Ok(None)
            }
            Err(e) => Err(classify("sagemaker:DescribeEndpoint", &e)),
        }
    }
}

#[async_trait]
impl Endpoints for SageMakerEndpoints {
    async fn describe(&self, endpoint: &str) -> PortResult<Option<EndpointView>> {
        let Some(out) = self.described(endpoint).await? else {
            return Ok(None);
        };
        Ok(Some(EndpointView {
            status: status(out.endpoint_status())?,
            config_name: out.endpoint_config_name().unwrap_or_default().to_owned(),
            pending_config_name: out
                .pending_deployment_summary()
                .and_then(|p| p.endpoint_config_name())
                .map(str::to_owned),
            failure_reason: out.failure_reason().map(str::to_owned),
            variants: out.production_variants().iter().map(variant).collect(),
            progress: progress(&out),
        }))
    }

    async fn create_config(
        &self,
        config: &str,
        from_config: &str,
        variants: &[ConfigVariant],
    ) -> PortResult<()> {
        let source = self
            .client
            .describe_endpoint_config()
            .endpoint_config_name(from_config)
            .send()
            .await
            .map_err(|e| classify("sagemaker:DescribeEndpointConfig", &e))?;
        let built = endpoint_config::variants(&source, from_config, variants)?;
        let tags = match source.endpoint_config_arn() {
            Some(arn) => self.tags(arn).await?,
            None => Vec::new(),
        };
        let created = endpoint_config::copy_settings(self.client.create_endpoint_config(), &source)
            .endpoint_config_name(config)
            .set_production_variants(Some(built.clone()))
            .set_tags(endpoint_config::copyable_tags(&tags))
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            // Convergent only when the config that exists is the one this action makes (an
            // earlier try of it): anything else under this name is someone else's.
            Err(e) if e.message().is_some_and(|m| m.contains("already existing")) => {
                let existing = self
                    .client
                    .describe_endpoint_config()
                    .endpoint_config_name(config)
                    .send()
                    .await
                    .map_err(|e| classify("sagemaker:DescribeEndpointConfig", &e))?;
                match endpoint_config::difference(&existing, &source, &built) {
                    None => Ok(()),
                    Some(field) => Err(PortError::new(
                        ErrorKind::Refused,
                        format!(
                            "endpoint config {config} already exists and is not the one this \
                             deployment creates ({field} differs); Guardrails does not use a \
                             config it did not make"
                        ),
                    )
                    .from_api("sagemaker:CreateEndpointConfig")),
                }
            }
            Err(e) => Err(classify("sagemaker:CreateEndpointConfig", &e)),
        }
    }

    async fn update_endpoint(
        &self,
        endpoint: &str,
        config: &str,
        guardrails: Option<&DeploymentConfig>,
        retain_variant_properties: bool,
    ) -> PortResult<()> {
        self.client
            .update_endpoint()
            .endpoint_name(endpoint)
            .endpoint_config_name(config)
            .set_deployment_config(guardrails.map(deployment_config))
            .set_retain_all_variant_properties(retain_variant_properties.then_some(true))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("sagemaker:UpdateEndpoint", &e))
    }

    async fn set_weights(
        &self,
        endpoint: &str,
        blue: &str,
        green: &str,
        green_share: Share,
    ) -> PortResult<()> {
        let desired = [(blue, green_share.complement()), (green, green_share)].map(|(v, s)| {
            DesiredWeightAndCapacity::builder()
                .variant_name(v)
                .desired_weight(weight(s))
                .build()
        });
        self.client
            .update_endpoint_weights_and_capacities()
            .endpoint_name(endpoint)
            .set_desired_weights_and_capacities(Some(desired.to_vec()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("sagemaker:UpdateEndpointWeightsAndCapacities", &e))
    }

    async fn set_instance_count(
        &self,
        endpoint: &str,
        variant: &str,
        count: u32,
    ) -> PortResult<()> {
        let desired = DesiredWeightAndCapacity::builder()
            .variant_name(variant)
            .desired_instance_count(to_i32(count))
            .build();
        self.client
            .update_endpoint_weights_and_capacities()
            .endpoint_name(endpoint)
            .desired_weights_and_capacities(desired)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("sagemaker:UpdateEndpointWeightsAndCapacities", &e))
    }

    async fn delete_config(&self, config: &str) -> PortResult<()> {
        let deleted = self
            .client
            .delete_endpoint_config()
            .endpoint_config_name(config)
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(()),
            Err(e) if e.message().is_some_and(|m| m.contains("Could not find")) => Ok(()),
            Err(e) => Err(classify("sagemaker:DeleteEndpointConfig", &e)),
        }
    }

    async fn fleet(&self, endpoint: &str) -> PortResult<Option<Fleet>> {
        let Some(out) = self.described(endpoint).await? else {
            return Ok(None);
        };
        let config_name = out.endpoint_config_name().unwrap_or_default().to_owned();
        let config = self
            .client
            .describe_endpoint_config()
            .endpoint_config_name(&config_name)
            .send()
            .await
            .map_err(|e| classify("sagemaker:DescribeEndpointConfig", &e))?;
        // The serving instance counts (auto scaling may have moved them from the config's).
        let serving: Vec<VariantView> = out.production_variants().iter().map(variant).collect();
        let variants = config
            .production_variants()
            .iter()
            .map(|v| {
                let name = v.variant_name().unwrap_or_default().to_owned();
                let count = serving
                    .iter()
                    .find(|s| s.variant_name == name)
                    .map_or(count(v.initial_instance_count()), |s| {
                        s.current_instance_count
                    });
                FleetVariant {
                    variant_name: name,
                    model_name: v.model_name().unwrap_or_default().to_owned(),
                    instance_type: v
                        .instance_type()
                        .map(|t| t.as_str().to_owned())
                        .unwrap_or_default(),
                    instance_count: count,
                }
            })
            .collect();
        Ok(Some(Fleet {
            endpoint_name: endpoint.to_owned(),
            config_name,
            variants,
        }))
    }

    async fn model_exists(&self, model: &str) -> PortResult<Option<bool>> {
        match self.client.describe_model().model_name(model).send().await {
            Ok(_) => Ok(Some(true)),
            Err(e)
                if e.message()
                    .is_some_and(|m| m.contains("Could not find model")) =>
            {
                Ok(Some(false))
            }
            Err(e) => Err(classify("sagemaker:DescribeModel", &e)),
        }
    }

    async fn endpoint_tags(&self, endpoint: &str) -> PortResult<Option<Vec<(String, String)>>> {
        let Some(out) = self.described(endpoint).await? else {
            return Ok(None);
        };
        let Some(arn) = out.endpoint_arn() else {
            return Ok(None);
        };
        let tags = self.tags(arn).await?;
        Ok(Some(
            tags.iter()
                .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
                .collect(),
        ))
    }

    async fn endpoint_kind(&self, config: &str) -> PortResult<Option<EndpointKind>> {
        let out = self
            .client
            .describe_endpoint_config()
            .endpoint_config_name(config)
            .send()
            .await
            .map_err(|e| classify("sagemaker:DescribeEndpointConfig", &e))?;
        let variants = out.production_variants();
        Ok(Some(EndpointKind {
            asynchronous: out.async_inference_config().is_some(),
            serverless: variants.iter().any(|v| v.serverless_config().is_some()),
            inference_components: !variants.is_empty()
                && variants.iter().all(|v| v.model_name().is_none()),
        }))
    }

    async fn instance_quota(&self, instance_type: &str) -> PortResult<Option<u32>> {
        let Some(quotas) = &self.quotas else {
            return Ok(None);
        };
        // SageMaker's name for the quota; AWS does not document the quota codes by type.
        let name = format!("{instance_type} for endpoint usage");
        let mut token = None;
        for _ in 0..MAX_QUOTA_PAGES {
            let page = quotas
                .list_service_quotas()
                .service_code("sagemaker")
                .max_results(100)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| classify("servicequotas:ListServiceQuotas", &e))?;
            if let Some(q) = page
                .quotas()
                .iter()
                .find(|q| q.quota_name() == Some(name.as_str()))
            {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                return Ok(q.value().map(|v| v.max(0.0) as u32));
            }
            match page.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_owned()),
                _ => return Ok(None),
            }
        }
        Ok(None)
    }

    async fn scalable_target(
        &self,
        endpoint: &str,
        variant: &str,
    ) -> PortResult<Option<ScalableTarget>> {
        match &self.scaling {
            Some(client) => autoscaling::target(client, endpoint, variant).await,
            None => Ok(None),
        }
    }

    async fn set_scaling(
        &self,
        endpoint: &str,
        variant: &str,
        suspended: Suspended,
    ) -> PortResult<()> {
        match &self.scaling {
            Some(client) => autoscaling::set_suspended(client, endpoint, variant, suspended).await,
            None => Ok(()),
        }
    }

    async fn model_package(&self, arn: &str) -> PortResult<Option<PackageView>> {
        match self
            .client
            .describe_model_package()
            .model_package_name(arn)
            .send()
            .await
        {
            Ok(out) => Ok(Some(PackageView {
                arn: out.model_package_arn().unwrap_or(arn).to_owned(),
                approval_status: out
                    .model_approval_status()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
                status: out
                    .model_package_status()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
            })),
            Err(e) if e.message().is_some_and(|m| m.contains("does not exist")) => Ok(None),
            Err(e) => Err(classify("sagemaker:DescribeModelPackage", &e)),
        }
    }

    async fn create_model_from_package(
        &self,
        model: &str,
        package_arn: &str,
        role_arn: &str,
    ) -> PortResult<()> {
        let created = self
            .client
            .create_model()
            .model_name(model)
            .execution_role_arn(role_arn)
            .containers(
                ContainerDefinition::builder()
                    .model_package_name(package_arn)
                    .build(),
            )
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            // A model under this name is used only if it holds this package (an earlier try):
            // anyone may have created a model of that name before.
            Err(e) if e.message().is_some_and(|m| m.contains("already existing")) => {
                let existing = self
                    .client
                    .describe_model()
                    .model_name(model)
                    .send()
                    .await
                    .map_err(|e| classify("sagemaker:DescribeModel", &e))?;
                let packages: Vec<&str> = existing
                    .primary_container()
                    .into_iter()
                    .chain(existing.containers())
                    .map(|c| c.model_package_name().unwrap_or_default())
                    .collect();
                if !packages.is_empty() && packages.iter().all(|p| *p == package_arn) {
                    Ok(())
                } else {
                    Err(PortError::new(
                        ErrorKind::Refused,
                        format!(
                            "model {model} already exists and does not hold model package \
                             {package_arn}; deploy it under another modelName"
                        ),
                    )
                    .from_api("sagemaker:CreateModel"))
                }
            }
            Err(e) => Err(classify("sagemaker:CreateModel", &e)),
        }
    }
}
