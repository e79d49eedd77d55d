//! The local AWS stack for integration tests: moto and the emulator on free ports, SDK clients
//! pointed at them, and the control of the emulated world (model behaviour, injected faults).

use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use guardrails::aws::clock::SystemClock;
use guardrails::aws::cloudwatch::CloudWatchAlarms;
use guardrails::aws::dynamodb::DynamoStore;
use guardrails::aws::sagemaker::SageMakerEndpoints;
use guardrails::core::Phase;
use guardrails::driver::{self, Driver, Limits};
use guardrails::memory::MemoryWaker;
use guardrails::ports::{Clock, EventBus};
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
    pub ssm: aws_sdk_ssm::Client,
    pub autoscaling: aws_sdk_applicationautoscaling::Client,
}

impl Clients {
    /// Every client as the local administrator, through the stack's front door
    /// (`AWS_ENDPOINT_URL`), as a person with the env file gets them.
    pub fn new(stack: &LocalStack) -> Clients {
        Clients::of(stack.sdk_config())
    }

    /// Every client as function `binary`, with its role's permissions and no more.
    pub fn for_function(stack: &LocalStack, binary: &str) -> Clients {
        Clients::of(stack.function_sdk_config(binary))
    }

    fn of(sdk: SdkConfig) -> Clients {
        Clients {
            sagemaker: aws_sdk_sagemaker::Client::new(&sdk),
            autoscaling: aws_sdk_applicationautoscaling::Client::new(&sdk),
            cloudwatch: aws_sdk_cloudwatch::Client::new(&sdk),
            dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
            eventbridge: aws_sdk_eventbridge::Client::new(&sdk),
            scheduler: aws_sdk_scheduler::Client::new(&sdk),
            sns: aws_sdk_sns::Client::new(&sdk),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            ssm: aws_sdk_ssm::Client::new(&sdk),
            sdk,
        }
    }
}

/// Every call the local IAM decided so far: `(principal, action, resource, allowed)`.
pub fn iam_log(stack: &LocalStack) -> Vec<(String, String, String, bool)> {
    with(stack, |e| e.iam.log.clone())
}

fn with<T>(stack: &LocalStack, f: impl FnOnce(&mut Emulator) -> T) -> T {
    let mut emulator = stack
        .emulator
        .emulator
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    f(&mut emulator)
}

/// Sets how `model` behaves under the emulator's synthetic traffic: its 5xx rate, at the
/// default latency.
pub fn set_model(stack: &LocalStack, model: &str, error_rate: f64) {
    set_behaviour(
        stack,
        model,
        Behaviour {
            error_rate,
            ..Behaviour::default()
        },
    );
}

/// Sets how `model` behaves under the emulator's synthetic traffic.
pub fn set_behaviour(stack: &LocalStack, model: &str, behaviour: Behaviour) {
    with(stack, |e| e.behaviours.insert(model.to_owned(), behaviour));
}

/// Makes the next update of `endpoint` end as `outcome`.
pub fn next_update(stack: &LocalStack, endpoint: &str, outcome: Outcome) {
    with(stack, |e| {
        e.sagemaker
            .next_outcome
            .insert(endpoint.to_owned(), outcome)
    });
}

/// Creates `model` (no container: the emulator serves any model), as a pipeline would before
/// a deployment names it.
pub async fn model(c: &Clients, model: &str) {
    c.sagemaker
        .create_model()
        .model_name(model)
        .execution_role_arn("arn:aws:iam::123456789012:role/local")
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateModel {model}: {e:?}"));
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
    endpoint_on(c, endpoint, config).await;
}

/// Creates `endpoint` on the existing `config`, with Guardrails' opt-in tag, and waits until
/// it is in service.
pub async fn endpoint_on(c: &Clients, endpoint: &str, config: &str) {
    // Guardrails changes only endpoints that carry its opt-in tag (infra/template.yaml).
    c.sagemaker
        .create_endpoint()
        .endpoint_name(endpoint)
        .endpoint_config_name(config)
        .tags(
            aws_sdk_sagemaker::types::Tag::builder()
                .key("guardrails:managed")
                .value("true")
                .build(),
        )
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

/// The driver on the local stack, with the real adapters: endpoint `endpoint` serving
/// `fraud-model-v1` as `AllTraffic` on config `fraud-v1` (2 instances), model `fraud-model-v2`
/// ready to deploy, the deployments table created; wake-ups are kept in memory and fired by
/// `run_to_end`.
#[allow(missing_debug_implementations)]
pub struct OnStack {
    pub stack: LocalStack,
    pub clients: Clients,
    pub store: Arc<DynamoStore>,
    pub waker: Arc<MemoryWaker>,
    pub endpoint: String,
}

impl OnStack {
    pub async fn start(endpoint: &str) -> OnStack {
        let stack = start().await;
        let clients = Clients::new(&stack);
        endpoint_serving(&clients, endpoint, "fraud-v1", "fraud-model-v1", 2).await;
        clients
            .sagemaker
            .create_model()
            .model_name("fraud-model-v2")
            .execution_role_arn("arn:aws:iam::123456789012:role/local")
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateModel: {e:?}"));
        let store = Arc::new(DynamoStore::new(clients.dynamodb.clone(), "guardrails"));
        store
            .create_table()
            .await
            .unwrap_or_else(|e| panic!("create table: {e}"));
        OnStack {
            stack,
            clients,
            store,
            waker: Arc::new(MemoryWaker::default()),
            endpoint: endpoint.to_owned(),
        }
    }

    /// A driver on the real SageMaker and CloudWatch adapters, signed as the bake-watcher
    /// function (its role's permissions, as on AWS), the table, and `bus`.
    pub fn driver(&self, bus: Arc<dyn EventBus>) -> Driver {
        let function = Clients::for_function(&self.stack, "bake-watcher");
        Driver {
            endpoints: Arc::new(SageMakerEndpoints::new(function.sagemaker)),
            alarms: Arc::new(CloudWatchAlarms::new(function.cloudwatch.clone())),
            metrics: Arc::new(CloudWatchAlarms::new(function.cloudwatch)),
            hooks: Arc::new(guardrails::aws::lambda::LambdaHooks::new(
                aws_sdk_lambda::Client::new(&function.sdk),
            )),
            store: Arc::new(DynamoStore::new(function.dynamodb, "guardrails")),
            bus,
            waker: self.waker.clone(),
            clock: Arc::new(SystemClock),
            limits: Limits::default(),
        }
    }

    /// Every call the local IAM refused so far: `(principal, action, resource)`.
    pub fn denied(&self) -> Vec<(String, String, String)> {
        with(&self.stack, |e| {
            e.iam
                .log
                .iter()
                .filter(|(_, _, _, allowed)| !allowed)
                .map(|(p, a, r, _)| (p.clone(), a.clone(), r.clone()))
                .collect()
        })
    }

    /// Invokes `driver` on every wake-up (the local stand-in for Scheduler firing) until the
    /// deployment ends, within `limit`; an invocation that fails is retried, as Lambda would.
    pub async fn run_to_end(&self, driver: &Driver, limit: Duration) -> Phase {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match driver.reconcile(&self.endpoint, None).await {
                Ok(driver::Outcome::Reconciled(report)) if report.phase.is_final() => {
                    return report.phase;
                }
                Ok(driver::Outcome::NoDeployment) => {
                    panic!(
                        "the deployment vanished before it ended; calls IAM denied: {:?}",
                        self.denied()
                    )
                }
                // An injected crash, or a transient error: retried on the next wake-up.
                Ok(driver::Outcome::Reconciled(_)) | Err(_) => {}
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no final state within {limit:?}"
            );
            let now = SystemClock.now();
            let wake = self.waker.wake_up(&self.endpoint).unwrap_or(now);
            let wait_ms = (wake.epoch_ms() - now.epoch_ms()).clamp(50, 1_000);
            tokio::time::sleep(Duration::from_millis(u64::try_from(wait_ms).unwrap_or(50))).await;
        }
    }
}
