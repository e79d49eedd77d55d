//! Application Auto Scaling, as a deployment needs it: a variant's scalable target (dimension
//! `sagemaker:variant:DesiredInstanceCount`, resource `endpoint/<endpoint>/variant/<variant>`)
//! and its scaling policies, read before any change; its `SuspendedState` set while traffic
//! moves and restored after (RegisterScalableTarget on an existing target changes only what it
//! is given: API reference).

use aws_sdk_applicationautoscaling::Client;
use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace, SuspendedState};

use super::classify;
use crate::plan::{ScalableTarget, Suspended};
use crate::ports::PortResult;

fn resource_id(endpoint: &str, variant: &str) -> String {
    format!("endpoint/{endpoint}/variant/{variant}")
}

/// The variant's scalable target and the names of its policies; `None` when it has none.
pub async fn target(
    client: &Client,
    endpoint: &str,
    variant: &str,
) -> PortResult<Option<ScalableTarget>> {
    let id = resource_id(endpoint, variant);
    let found = client
        .describe_scalable_targets()
        .service_namespace(ServiceNamespace::Sagemaker)
        .scalable_dimension(ScalableDimension::SageMakerVariantDesiredInstanceCount)
        .resource_ids(&id)
        .send()
        .await
        .map_err(|e| classify("application-autoscaling:DescribeScalableTargets", &e))?;
    let Some(t) = found
        .scalable_targets()
        .iter()
        .find(|t| t.resource_id() == id)
    else {
        return Ok(None);
    };
    let policies = client
        .describe_scaling_policies()
        .service_namespace(ServiceNamespace::Sagemaker)
        .scalable_dimension(ScalableDimension::SageMakerVariantDesiredInstanceCount)
        .resource_id(&id)
        .send()
        .await
        .map_err(|e| classify("application-autoscaling:DescribeScalingPolicies", &e))?;
    let state = t.suspended_state();
    let flag = |f: fn(&SuspendedState) -> Option<bool>| state.and_then(f).unwrap_or(false);
    let count = |n: i32| u32::try_from(n).unwrap_or(0);
    Ok(Some(ScalableTarget {
        min_capacity: count(t.min_capacity()),
        max_capacity: count(t.max_capacity()),
        suspended: Suspended {
            dynamic_scaling_in: flag(SuspendedState::dynamic_scaling_in_suspended),
            dynamic_scaling_out: flag(SuspendedState::dynamic_scaling_out_suspended),
            scheduled_scaling: flag(SuspendedState::scheduled_scaling_suspended),
        },
        policies: policies
            .scaling_policies()
            .iter()
            .map(|p| p.policy_name().to_owned())
            .collect(),
    }))
}

/// RegisterScalableTarget of the variant's existing target with `suspended` (its capacity
/// range and policies unchanged).
pub async fn set_suspended(
    client: &Client,
    endpoint: &str,
    variant: &str,
    suspended: Suspended,
) -> PortResult<()> {
    client
        .register_scalable_target()
        .service_namespace(ServiceNamespace::Sagemaker)
        .scalable_dimension(ScalableDimension::SageMakerVariantDesiredInstanceCount)
        .resource_id(resource_id(endpoint, variant))
        .suspended_state(
            SuspendedState::builder()
                .dynamic_scaling_in_suspended(suspended.dynamic_scaling_in)
                .dynamic_scaling_out_suspended(suspended.dynamic_scaling_out)
                .scheduled_scaling_suspended(suspended.scheduled_scaling)
                .build(),
        )
        .send()
        .await
        .map(|_| ())
        .map_err(|e| classify("application-autoscaling:RegisterScalableTarget", &e))
}
