//! The local AWS stack for integration tests: moto and the emulator on free ports, SDK clients
//! pointed at them, and the control of the emulated world (model behaviour, injected faults).

use std::time::Duration;

use aws_config::SdkConfig;
use guardrails_local::sagemaker::{Delays, Outcome};
use guardrails_local::stack::LocalStack;
use guardrails_local::traffic::Behaviour;
use guardrails_local::{Config, Emulator};

/// The stack tests use: quick updates and a fast tick, so that stories take seconds.
pub async fn start() -> LocalStack {
    let config = Config {
        delays: Delays {
            create_ms: 600,
            update_ms: 1_200,
            weights_ms: 300,
        },
        tick: Duration::from_millis(100),
        ..Config::default()
    };
    match LocalStack::start(config).await {
        Ok(stack) => stack,
        Err(e) => panic!("cannot start the local stack: {e}"),
    }
}

/// Clients for one stack.
#[derive(Debug, Clone)]
pub struct Clients {
    pub sdk: SdkConfig,
    pub sagemaker: aws_sdk_sagemaker::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub eventbridge: aws_sdk_eventbridge::Client,
    pub scheduler: aws_sdk_scheduler::Client,
    pub sns: aws_sdk_sns::Client,
    pub sqs: aws_sdk_sqs::Client,
}

impl Clients {
    /// Every client on moto, but SageMaker and CloudWatch on the emulator, as the
    /// `AWS_ENDPOINT_URL_SAGEMAKER` and `AWS_ENDPOINT_URL_CLOUDWATCH` variables set them.
    pub fn new(stack: &LocalStack) -> Clients {
        let sdk = stack.sdk_config();
        let emulator = stack.emulator.url();
        let sagemaker = aws_sdk_sagemaker::Client::from_conf(
            aws_sdk_sagemaker::config::Builder::from(&sdk)
                .endpoint_url(&emulator)
                .build(),
        );
        let cloudwatch = aws_sdk_cloudwatch::Client::from_conf(
            aws_sdk_cloudwatch::config::Builder::from(&sdk)
                .endpoint_url(&emulator)
                .build(),
        );
        Clients {
            sagemaker,
            cloudwatch,
            dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
            eventbridge: aws_sdk_eventbridge::Client::new(&sdk),
            scheduler: aws_sdk_scheduler::Client::new(&sdk),
            sns: aws_sdk_sns::Client::new(&sdk),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            sdk,
        }
    }
}

fn with<T>(stack: &LocalStack, f: impl FnOnce(&mut Emulator) -> T) -> T {
    let mut emulator = stack
        .emulator
        .emulator
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    f(&mut emulator)
}

/// Sets how `model` behaves under the emulator's synthetic traffic.
pub fn set_model(stack: &LocalStack, model: &str, error_rate: f64) {
    with(stack, |e| {
        e.behaviours.insert(
            model.to_owned(),
            Behaviour {
                error_rate,
                latency_ms: 20.0,
            },
        )
    });
}

/// Makes the next update of `endpoint` end as `outcome`.
pub fn next_update(stack: &LocalStack, endpoint: &str, outcome: Outcome) {
    with(stack, |e| {
        e.sagemaker
            .next_outcome
            .insert(endpoint.to_owned(), outcome)
    });
}

/// Creates `model` and an endpoint serving it as variant `AllTraffic` on `config`, and waits
/// until it is in service.
pub async fn endpoint_serving(
    c: &Clients,
    endpoint: &str,
    config: &str,
    model: &str,
    instances: i32,
) {
    use aws_sdk_sagemaker::types::{
        ContainerDefinition, ProductionVariant, ProductionVariantInstanceType,
    };
    c.sagemaker
        .create_model()
        .model_name(model)
        .primary_container(
            ContainerDefinition::builder()
                .image("local/model:1")
                .build(),
        )
        .execution_role_arn("arn:aws:iam::123456789012:role/local")
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateModel: {e:?}"));
    c.sagemaker
        .create_endpoint_config()
        .endpoint_config_name(config)
        .production_variants(
            ProductionVariant::builder()
                .variant_name("AllTraffic")
                .model_name(model)
                .instance_type(ProductionVariantInstanceType::MlM5Xlarge)
                .initial_instance_count(instances)
                .initial_variant_weight(1.0)
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateEndpointConfig: {e:?}"));
    c.sagemaker
        .create_endpoint()
        .endpoint_name(endpoint)
        .endpoint_config_name(config)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateEndpoint: {e:?}"));
    wait_for(async || {
        c.sagemaker
            .describe_endpoint()
            .endpoint_name(endpoint)
            .send()
            .await
            .ok()
            .and_then(|d| d.endpoint_status().cloned())
            == Some(aws_sdk_sagemaker::types::EndpointStatus::InService)
    })
    .await;
}

/// The longest any condition in these tests is waited for: generous, because the machine may
/// be busy; conditions are checked often, so a quick world passes quickly.
pub const WAIT_LIMIT: Duration = Duration::from_secs(60);

/// Polls `condition` until it holds; panics after `WAIT_LIMIT`.
pub async fn wait_for(mut condition: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
    while !condition().await {
        if tokio::time::Instant::now() > deadline {
            panic!("condition not met within {WAIT_LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
