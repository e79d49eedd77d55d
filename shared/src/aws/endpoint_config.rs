//! The endpoint configs Guardrails creates are the user's config with only what the deployment
//! changes: which variants it holds, and, for the new model's variant, its name, model, instance
//! type and count and weight. Every other field, of the config and of the variants, is the
//! user's, so that data capture (Model Monitor), the KMS key, asynchronous inference, the VPC,
//! shadow variants, serverless settings, volume sizes, timeouts, routing and tags survive a
//! deployment on either engine.
//!
//! `CONFIG_FIELDS` lists every field of CreateEndpointConfig (SageMaker API reference) with what
//! Guardrails puts in it; a test checks it against the SDK's `CreateEndpointConfigInput`, and
//! that `copy_settings` sets each copied field. Variants are cloned whole (the SDK's
//! `ProductionVariant`), then the fields in `VARIANT_FIELDS_CHANGED` are set.

use aws_sdk_sagemaker::operation::create_endpoint_config::builders::CreateEndpointConfigFluentBuilder;
use aws_sdk_sagemaker::operation::describe_endpoint_config::DescribeEndpointConfigOutput;
use aws_sdk_sagemaker::types::{ProductionVariant, ProductionVariantInstanceType, Tag};

use crate::core::ConfigVariant;
use crate::ports::{ErrorKind, PortError, PortResult};

/// Where a field of a config Guardrails creates comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Guardrails' own: the config's name.
    Guardrails,
    /// The user's variants, cloned, with `VARIANT_FIELDS_CHANGED` set for the new model.
    Changed,
    /// The user's config's, unchanged.
    Copied,
}

/// Every field of CreateEndpointConfig, in the API reference's order.
pub const CONFIG_FIELDS: &[(&str, Source)] = &[
    ("EndpointConfigName", Source::Guardrails),
    ("ProductionVariants", Source::Changed),
    ("DataCaptureConfig", Source::Copied),
    // ListTags of the user's config, but for `aws:` tags, which only AWS may set.
    ("Tags", Source::Copied),
    ("KmsKeyId", Source::Copied),
    ("AsyncInferenceConfig", Source::Copied),
    ("ExplainerConfig", Source::Copied),
    ("ShadowProductionVariants", Source::Copied),
    ("ExecutionRoleArn", Source::Copied),
    ("VpcConfig", Source::Copied),
    ("EnableNetworkIsolation", Source::Copied),
    ("MetricsConfig", Source::Copied),
];

/// The fields of a `ProductionVariant` that the new model's variant changes.
pub const VARIANT_FIELDS_CHANGED: &[&str] = &[
    "VariantName",
    "ModelName",
    "InstanceType",
    "InitialInstanceCount",
    "InitialVariantWeight",
];

/// `builder` with every copied field of `source` but the tags (`CONFIG_FIELDS`).
pub fn copy_settings(
    builder: CreateEndpointConfigFluentBuilder,
    source: &DescribeEndpointConfigOutput,
) -> CreateEndpointConfigFluentBuilder {
    builder
        .set_data_capture_config(source.data_capture_config.clone())
        .set_kms_key_id(source.kms_key_id.clone())
        .set_async_inference_config(source.async_inference_config.clone())
        .set_explainer_config(source.explainer_config.clone())
        .set_shadow_production_variants(source.shadow_production_variants.clone())
        .set_execution_role_arn(source.execution_role_arn.clone())
        .set_vpc_config(source.vpc_config.clone())
        .set_enable_network_isolation(source.enable_network_isolation)
        .set_metrics_config(source.metrics_config.clone())
}

/// The tags a config may be created with: the user's, but for `aws:` ones.
pub fn copyable_tags(tags: &[Tag]) -> Option<Vec<Tag>> {
    let kept: Vec<Tag> = tags
        .iter()
        .filter(|t| !t.key().is_some_and(|k| k.starts_with("aws:")))
        .cloned()
        .collect();
    (!kept.is_empty()).then_some(kept)
}

/// The production variants of a new config, from `source` (the user's config).
pub fn variants(
    source: &DescribeEndpointConfigOutput,
    from_config: &str,
    wanted: &[ConfigVariant],
) -> PortResult<Vec<ProductionVariant>> {
    let find = |name: &str| {
        source
            .production_variants()
            .iter()
            .find(|p| p.variant_name() == Some(name))
            .cloned()
            .ok_or_else(|| {
                PortError::new(
                    ErrorKind::Refused,
                    format!("endpoint config {from_config} has no variant {name}"),
                )
            })
    };
    let mut built = Vec::with_capacity(wanted.len());
    for v in wanted {
        built.push(match v {
            ConfigVariant::Copy {
                variant_name,
                initial_weight,
                instance_count,
            } => {
                let mut copy = find(variant_name)?;
                copy.initial_variant_weight = Some(weight(*initial_weight));
                if let Some(n) = instance_count
                    && copy.serverless_config.is_none()
                {
                    copy.initial_instance_count = Some(i32::try_from(*n).unwrap_or(i32::MAX));
                }
                copy
            }
            ConfigVariant::New {
                like,
                variant_name,
                model_name,
                instance_type,
                instance_count,
                initial_weight,
            } => {
                let mut green = find(like)?;
                green.variant_name = Some(variant_name.clone());
                green.model_name = Some(model_name.clone());
                if !instance_type.is_empty() {
                    green.instance_type =
                        Some(ProductionVariantInstanceType::from(instance_type.as_str()));
                }
                // A serverless variant has no instances of its own.
                if green.serverless_config.is_none() {
                    green.initial_instance_count =
                        Some(i32::try_from(*instance_count).unwrap_or(i32::MAX));
                }
                green.initial_variant_weight = Some(weight(*initial_weight));
                green
            }
        });
    }
    Ok(built)
}

/// The first field in which `existing` (a config found under the name Guardrails was about to
/// create) differs from what it would have created from `source` with `built` variants; `None`
/// when it is exactly that config. Tags are not compared: ListTags is a separate call, and
/// the variants name the models.
pub fn difference(
    existing: &DescribeEndpointConfigOutput,
    source: &DescribeEndpointConfigOutput,
    built: &[ProductionVariant],
) -> Option<&'static str> {
    let same = [
        (
            "ProductionVariants",
            existing.production_variants() == built,
        ),
        (
            "DataCaptureConfig",
            existing.data_capture_config == source.data_capture_config,
        ),
        ("KmsKeyId", existing.kms_key_id == source.kms_key_id),
        (
            "AsyncInferenceConfig",
            existing.async_inference_config == source.async_inference_config,
        ),
        (
            "ExplainerConfig",
            existing.explainer_config == source.explainer_config,
        ),
        (
            "ShadowProductionVariants",
            existing.shadow_production_variants == source.shadow_production_variants,
        ),
        (
            "ExecutionRoleArn",
            existing.execution_role_arn == source.execution_role_arn,
        ),
        ("VpcConfig", existing.vpc_config == source.vpc_config),
        (
            "EnableNetworkIsolation",
            existing.enable_network_isolation == source.enable_network_isolation,
        ),
        (
            "MetricsConfig",
            existing.metrics_config == source.metrics_config,
        ),
    ];
    same.into_iter()
        .find(|(_, same)| !same)
        .map(|(field, _)| field)
}

fn weight(w: f64) -> f32 {
    #[allow(clippy::cast_possible_truncation)]
    let w = w as f32;
    w
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::collections::BTreeSet;
    use std::path::PathBuf;

    use super::*;

    /// The source directory of the aws-sdk-sagemaker this crate builds with: the version in
    /// the workspace's Cargo.lock, unpacked in Cargo's registry.
    fn sdk_dir() -> PathBuf {
        let lock =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock")).unwrap();
        let entry = &lock[lock.find("name = \"aws-sdk-sagemaker\"\n").expect("locked")..];
        let version = entry
            .lines()
            .nth(1)
            .and_then(|l| l.strip_prefix("version = \""))
            .and_then(|v| v.strip_suffix('"'))
            .expect("a version line follows the name");
        let home = std::env::var("CARGO_HOME").map_or_else(
            |_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cargo"),
            PathBuf::from,
        );
        let wanted = format!("aws-sdk-sagemaker-{version}");
        std::fs::read_dir(home.join("registry/src"))
            .unwrap()
            .filter_map(Result::ok)
            .map(|index| index.path().join(&wanted))
            .find(|dir| dir.is_dir())
            .unwrap_or_else(|| panic!("{wanted} is not unpacked under {}", home.display()))
    }

    /// The fields of the struct `name` in `file` of the SDK, in AWS's (PascalCase) words.
    fn sdk_fields(file: &str, name: &str) -> BTreeSet<String> {
        let text = std::fs::read_to_string(sdk_dir().join(file)).unwrap();
        let start = text
            .find(&format!("pub struct {name} {{"))
            .unwrap_or_else(|| panic!("{name} in {file}"));
        let body = &text[start..start + text[start..].find("\n}").unwrap()];
        body.lines()
            .filter_map(|l| l.trim().strip_prefix("pub "))
            .filter_map(|l| l.split_once(':').map(|(f, _)| f))
            .map(pascal)
            .collect()
    }

    fn pascal(snake: &str) -> String {
        snake
            .split('_')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect()
    }

    fn snake(pascal: &str) -> String {
        let mut out = String::new();
        for (i, c) in pascal.chars().enumerate() {
            if c.is_ascii_uppercase() && i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        }
        out
    }

    #[test]
    fn every_field_of_create_endpoint_config_is_listed_and_copied() {
        let sdk = sdk_fields(
            "src/operation/create_endpoint_config/_create_endpoint_config_input.rs",
            "CreateEndpointConfigInput",
        );
        let listed: BTreeSet<String> = CONFIG_FIELDS.iter().map(|(f, _)| (*f).to_owned()).collect();
        assert_eq!(
            listed, sdk,
            "CONFIG_FIELDS must list exactly the SDK's fields of CreateEndpointConfig"
        );
        // Each copied field (the tags aside: ListTags has them) is set by `copy_settings`.
        let code = include_str!("endpoint_config.rs");
        let copy = &code[code.find("pub fn copy_settings").unwrap()
            ..code.find("pub fn copyable_tags").unwrap()];
        for (field, source) in CONFIG_FIELDS {
            if *source == Source::Copied && *field != "Tags" {
                let setter = format!(".set_{}(", snake(field));
                assert!(copy.contains(&setter), "copy_settings does not set {field}");
            }
        }
        // ... and compared by `difference`, which decides whether a config found under
        // Guardrails' name is the one it would have made.
        let compare =
            &code[code.find("pub fn difference").unwrap()..code.find("fn weight(").unwrap()];
        for (field, source) in CONFIG_FIELDS {
            if *source != Source::Guardrails && *field != "Tags" {
                let field_name = format!("\"{field}\"");
                assert!(
                    compare.contains(&field_name),
                    "difference does not compare {field}"
                );
            }
        }
        // What DescribeEndpointConfig returns covers what is copied.
        let described = sdk_fields(
            "src/operation/describe_endpoint_config/_describe_endpoint_config_output.rs",
            "DescribeEndpointConfigOutput",
        );
        for (field, source) in CONFIG_FIELDS {
            if *source == Source::Copied && *field != "Tags" {
                assert!(
                    described.contains(*field),
                    "DescribeEndpointConfig has no {field}"
                );
            }
        }
    }

    #[test]
    fn the_variant_fields_changed_are_fields_of_production_variant() {
        let sdk = sdk_fields("src/types/_production_variant.rs", "ProductionVariant");
        for field in VARIANT_FIELDS_CHANGED {
            assert!(
                sdk.contains(*field),
                "ProductionVariant has no {field}: {sdk:?}"
            );
        }
    }

    #[test]
    fn the_new_variant_keeps_every_other_setting_of_blue() {
        use aws_sdk_sagemaker::types::{ProductionVariantRoutingConfig, RoutingStrategy};
        let blue = ProductionVariant::builder()
            .variant_name("AllTraffic")
            .model_name("fraud-v1")
            .instance_type(ProductionVariantInstanceType::MlM5Xlarge)
            .initial_instance_count(2)
            .initial_variant_weight(1.0)
            .volume_size_in_gb(64)
            .model_data_download_timeout_in_seconds(900)
            .container_startup_health_check_timeout_in_seconds(600)
            .routing_config(
                ProductionVariantRoutingConfig::builder()
                    .routing_strategy(RoutingStrategy::LeastOutstandingRequests)
                    .build(),
            )
            .build();
        let source = DescribeEndpointConfigOutput::builder()
            .endpoint_config_name("fraud-v1")
            .production_variants(blue.clone())
            .build();
        let wanted = [
            ConfigVariant::Copy {
                variant_name: "AllTraffic".to_owned(),
                initial_weight: 1.0,
                instance_count: None,
            },
            ConfigVariant::New {
                like: "AllTraffic".to_owned(),
                variant_name: "fraud-v2".to_owned(),
                model_name: "fraud-v2".to_owned(),
                instance_type: "ml.c5.xlarge".to_owned(),
                instance_count: 1,
                initial_weight: 0.0,
            },
        ];
        let built = variants(&source, "fraud-v1", &wanted).unwrap();
        assert_eq!(built[0], blue);
        let mut expected = blue;
        expected.variant_name = Some("fraud-v2".to_owned());
        expected.model_name = Some("fraud-v2".to_owned());
        expected.instance_type = Some(ProductionVariantInstanceType::MlC5Xlarge);
        expected.initial_instance_count = Some(1);
        expected.initial_variant_weight = Some(0.0);
        assert_eq!(built[1], expected);
        let missing = variants(
            &source,
            "fraud-v1",
            &[ConfigVariant::Copy {
                variant_name: "nope".to_owned(),
                initial_weight: 1.0,
                instance_count: None,
            }],
        );
        assert!(
            missing
                .unwrap_err()
                .message
                .contains("fraud-v1 has no variant nope")
        );
    }

    #[test]
    fn a_config_found_under_guardrails_name_is_used_only_if_it_is_the_one_it_makes() {
        let blue = ProductionVariant::builder()
            .variant_name("AllTraffic")
            .model_name("fraud-v1")
            .instance_type(ProductionVariantInstanceType::MlM5Xlarge)
            .initial_instance_count(2)
            .build();
        let source = DescribeEndpointConfigOutput::builder()
            .endpoint_config_name("fraud-v1")
            .production_variants(blue.clone())
            .kms_key_id("alias/models")
            .build();
        let built = vec![blue.clone()];
        let earlier_try = source.clone();
        assert_eq!(difference(&earlier_try, &source, &built), None);
        // Another endpoint's config under the same name: another model.
        let mut other = blue.clone();
        other.model_name = Some("someone-elses".to_owned());
        let theirs = DescribeEndpointConfigOutput::builder()
            .production_variants(other)
            .kms_key_id("alias/models")
            .build();
        assert_eq!(
            difference(&theirs, &source, &built),
            Some("ProductionVariants")
        );
        let unencrypted = DescribeEndpointConfigOutput::builder()
            .production_variants(blue)
            .build();
        assert_eq!(difference(&unencrypted, &source, &built), Some("KmsKeyId"));
    }

    #[test]
    fn tags_only_aws_may_set_are_not_copied() {
        let tags = [
            Tag::builder().key("team").value("fraud").build(),
            Tag::builder()
                .key("aws:cloudformation:stack-name")
                .value("s")
                .build(),
        ];
        let kept = copyable_tags(&tags).unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].key(), Some("team"));
        assert_eq!(copyable_tags(&tags[1..]), None);
    }
}
