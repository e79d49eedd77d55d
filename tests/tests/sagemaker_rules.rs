//! The local SageMaker refuses what SageMaker refuses, synchronously and in its words, and
//! provisions fleets as it does: GIVEN an endpoint serving 2 instances, WHEN a request breaks a
//! rule (an instance quota, an instance type, a name, an asynchronous endpoint's config), THEN
//! the SDK gets SageMaker's error; WHEN it updates, THEN a new fleet runs beside the old until
//! the switch, and a weights call resizes in place.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_sdk_sagemaker::types::{
    AsyncInferenceConfig, AsyncInferenceOutputConfig, DesiredWeightAndCapacity, ProductionVariant,
    ProductionVariantInstanceType, Tag,
};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use guardrails_local::sagemaker::fleets::Fleets;
use guardrails_tests::local::{self, Clients, endpoint_serving, wait_for};

fn variant(model: &str, instance_type: &str, count: i32) -> ProductionVariant {
    ProductionVariant::builder()
        .variant_name("AllTraffic")
        .model_name(model)
        .instance_type(ProductionVariantInstanceType::from(instance_type))
        .initial_instance_count(count)
        .build()
}

async fn config(c: &Clients, name: &str, model: &str, count: i32) {
    c.sagemaker
        .create_endpoint_config()
        .endpoint_config_name(name)
        .production_variants(variant(model, "ml.m5.xlarge", count))
        .send()
        .await
        .unwrap();
}

async fn in_service(c: &Clients, endpoint: &str) {
    wait_for(async || {
        c.sagemaker
            .describe_endpoint()
            .endpoint_name(endpoint)
            .send()
            .await
            .ok()
            .and_then(|d| d.endpoint_status().map(|s| s.as_str() == "InService"))
            == Some(true)
    })
    .await;
}

fn fleets(stack: &guardrails_local::stack::LocalStack, endpoint: &str) -> Fleets {
    let e = stack
        .emulator
        .emulator
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    e.sagemaker.fleets(endpoint).cloned().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_over_the_instance_quota_is_refused_counting_old_and_new_fleets() {
    let stack = local::start().await;
    let c = Clients::new(&stack);
    endpoint_serving(&c, "fraud", "fraud-v1", "fraud-model-v1", 2).await;
    config(&c, "fraud-v2", "fraud-model-v1", 2).await;
    stack
        .emulator
        .emulator
        .lock()
        .unwrap()
        .sagemaker
        .quotas
        .insert("ml.m5.xlarge".to_owned(), 3);
    let e = c
        .sagemaker
        .update_endpoint()
        .endpoint_name("fraud")
        .endpoint_config_name("fraud-v2")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ResourceLimitExceeded"));
    assert!(
        e.message().unwrap().starts_with(
            "The account-level service limit 'ml.m5.xlarge for endpoint usage' is 3 Instances, with current utilization of 2 Instances and a request delta of 2 Instances."
        ),
        "{e:?}"
    );
    // In place, too: 2 -> 4 instances is a delta of 2.
    let e = c
        .sagemaker
        .update_endpoint_weights_and_capacities()
        .endpoint_name("fraud")
        .desired_weights_and_capacities(
            DesiredWeightAndCapacity::builder()
                .variant_name("AllTraffic")
                .desired_instance_count(4)
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ResourceLimitExceeded"));
    // Service Quotas says the same.
    let quotas = aws_sdk_servicequotas::Client::new(&stack.sdk_config());
    let mut token = None;
    let found = loop {
        let page = quotas
            .list_service_quotas()
            .service_code("sagemaker")
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        if let Some(q) = page
            .quotas()
            .iter()
            .find(|q| q.quota_name() == Some("ml.m5.xlarge for endpoint usage"))
        {
            break q.clone();
        }
        token = page.next_token().map(str::to_owned);
        assert!(token.is_some(), "the quota is listed");
    };
    assert_eq!(found.value(), Some(3.0));
    let got = quotas
        .get_service_quota()
        .service_code("sagemaker")
        .quota_code(found.quota_code().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(got.quota().unwrap().quota_name(), found.quota_name());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_instance_types_and_names_are_refused_as_sagemaker_validates_them() {
    let stack = local::start().await;
    let c = Clients::new(&stack);
    endpoint_serving(&c, "fraud", "fraud-v1", "fraud-model-v1", 1).await;
    let e = c
        .sagemaker
        .create_endpoint_config()
        .endpoint_config_name("typo")
        .production_variants(variant("fraud-model-v1", "ml.m5.xlargee", 1))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"));
    assert!(
        e.message().unwrap().starts_with("1 validation error detected: Value 'ml.m5.xlargee' at 'productionVariants.1.member.instanceType' failed to satisfy constraint: Member must satisfy enum value set:"),
        "{e:?}"
    );
    let e = c
        .sagemaker
        .create_endpoint()
        .endpoint_name("fraud_scorer")
        .endpoint_config_name("fraud-v1")
        .send()
        .await
        .unwrap_err();
    assert!(
        e.message().unwrap().contains("regular expression pattern"),
        "{e:?}"
    );
    // Unique without regard to case.
    let e = c
        .sagemaker
        .create_endpoint()
        .endpoint_name("FRAUD")
        .endpoint_config_name("fraud-v1")
        .send()
        .await
        .unwrap_err();
    assert!(
        e.message()
            .unwrap()
            .starts_with("Cannot create already existing endpoint"),
        "{e:?}"
    );
    let e = c
        .sagemaker
        .create_endpoint_config()
        .endpoint_config_name("a".repeat(64))
        .production_variants(variant("fraud-model-v1", "ml.m5.xlarge", 1))
        .send()
        .await
        .unwrap_err();
    assert!(
        e.message()
            .unwrap()
            .contains("length less than or equal to 63"),
        "{e:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_given_on_creation_are_kept_and_listed() {
    let stack = local::start().await;
    let c = Clients::new(&stack);
    endpoint_serving(&c, "fraud", "fraud-v1", "fraud-model-v1", 1).await;
    let arn = c
        .sagemaker
        .describe_endpoint()
        .endpoint_name("fraud")
        .send()
        .await
        .unwrap()
        .endpoint_arn()
        .unwrap()
        .to_owned();
    c.sagemaker
        .add_tags()
        .resource_arn(&arn)
        .tags(Tag::builder().key("team").value("fraud").build())
        .send()
        .await
        .unwrap();
    let tags = c
        .sagemaker
        .list_tags()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    let pairs: Vec<(&str, &str)> = tags
        .tags()
        .iter()
        .map(|t| (t.key().unwrap(), t.value().unwrap()))
        .collect();
    assert_eq!(
        pairs,
        vec![("guardrails:managed", "true"), ("team", "fraud")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_async_inference_config_from_an_asynchronous_endpoint_is_refused() {
    let stack = local::start().await;
    let c = Clients::new(&stack);
    endpoint_serving(&c, "other", "other-v1", "fraud-model-v1", 1).await;
    c.sagemaker
        .create_endpoint_config()
        .endpoint_config_name("async-v1")
        .production_variants(variant("fraud-model-v1", "ml.m5.xlarge", 1))
        .async_inference_config(
            AsyncInferenceConfig::builder()
                .output_config(
                    AsyncInferenceOutputConfig::builder()
                        .s3_output_path("s3://bucket/out")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    c.sagemaker
        .create_endpoint()
        .endpoint_name("queue")
        .endpoint_config_name("async-v1")
        .send()
        .await
        .unwrap();
    in_service(&c, "queue").await;
    let described = c
        .sagemaker
        .describe_endpoint_config()
        .endpoint_config_name("async-v1")
        .send()
        .await
        .unwrap();
    assert!(
        described.async_inference_config().is_some(),
        "every field is kept"
    );
    let e = c
        .sagemaker
        .update_endpoint()
        .endpoint_name("queue")
        .endpoint_config_name("other-v1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"));
    assert!(
        e.message().unwrap().starts_with(
            "The AsyncInferenceConfig parameter cannot be removed from this endpoint queue."
        ),
        "{e:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_runs_a_new_fleet_beside_the_old_and_weights_resize_in_place() {
    let stack = local::start().await;
    let c = Clients::new(&stack);
    endpoint_serving(&c, "fraud", "fraud-v1", "fraud-model-v1", 2).await;
    config(&c, "fraud-v2", "fraud-model-v1", 3).await;
    c.sagemaker
        .update_endpoint()
        .endpoint_name("fraud")
        .endpoint_config_name("fraud-v2")
        .send()
        .await
        .unwrap();
    let during = fleets(&stack, "fraud");
    assert_eq!(during.running(), 5, "old and new fleets during the update");
    in_service(&c, "fraud").await;
    c.sagemaker
        .update_endpoint_weights_and_capacities()
        .endpoint_name("fraud")
        .desired_weights_and_capacities(
            DesiredWeightAndCapacity::builder()
                .variant_name("AllTraffic")
                .desired_instance_count(4)
                .build(),
        )
        .send()
        .await
        .unwrap();
    in_service(&c, "fraud").await;
    let after = fleets(&stack, "fraud");
    assert_eq!(
        after.fleets.len(),
        2,
        "one fleet per config deployed; weights add none"
    );
    assert_eq!(after.running(), 4);
    assert_eq!(after.peak(), 5);
    assert!(
        after.fleets[0].removed_at.is_some(),
        "the old fleet went at the switch"
    );
}
