//! The sweep at 1, 10, 100 and 1,000 active deployments on the local stack (issue 15): the
//! emulator's SageMaker and CloudWatch, moto's DynamoDB, EventBridge and Scheduler, every call
//! signed as the bake-watcher function and counted by the local IAM. Each deployment is a
//! canary in its bake (an hour long, so that nothing moves while it is measured), watching its
//! endpoint's 5xx alarm and green's.
//!
//! One sweep is timed from the scheduled invocation to the last shard's end, the shards it
//! publishes running at once, as Lambda runs the invocations their events start. Calls are
//! counted per API and per deployment. The alarm reads' pacing (`DESCRIBE_ALARMS_PER_SECOND`)
//! is part of the time: it is what keeps 1,000 deployments within CloudWatch's quota.
//!
//! `cargo bench -p guardrails-tests --bench sweep [-- 1 10 100 1000]`. Numbers are this
//! machine's, against moto (Python) and the emulator on loopback; never asserted in tests.

// A benchmark reads the clock and prints; the code it measures never does.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_sagemaker::types::{
    ContainerDefinition, EndpointStatus, ProductionVariant, ProductionVariantInstanceType, Tag,
};
use futures_util::StreamExt;
use guardrails::aws::clock::SystemClock;
use guardrails::aws::cloudwatch::CloudWatchAlarms;
use guardrails::aws::dynamodb::DynamoStore;
use guardrails::aws::eventbridge::EventBridgeBus;
use guardrails::aws::sagemaker::SageMakerEndpoints;
use guardrails::aws::scheduler::SchedulerWaker;
use guardrails::core::Phase;
use guardrails::driver::{Driver, Limits};
use guardrails::events::{Refusal, StateChange, SweepShard};
use guardrails::plan::{GreenSpec, Plan};
use guardrails::policy::Policy;
use guardrails::ports::{EventBus, PortResult, Store};
use guardrails_local::sagemaker::Delays;
use guardrails_local::stack::LocalStack;
use guardrails_tests::local::{Clients, iam_log};
use guardrails_tests::repo_root;

/// Publishes on EventBridge (so that its calls are made and counted) and keeps the shards, so
/// that this process can run them as Lambda would run the invocations they start.
struct Tee {
    bus: EventBridgeBus,
    shards: Mutex<Vec<SweepShard>>,
}

#[async_trait]
impl EventBus for Tee {
    async fn publish(&self, events: &[StateChange]) -> PortResult<()> {
        self.bus.publish(events).await
    }
    async fn refused(&self, refusal: &Refusal) -> PortResult<()> {
        self.bus.refused(refusal).await
    }
    async fn fan_out(&self, shards: &[SweepShard]) -> PortResult<()> {
        self.bus.fan_out(shards).await?;
        self.shards.lock().unwrap().extend_from_slice(shards);
        Ok(())
    }
}

/// Counts every operation the SDK clients it is given start, by `service:Operation`.
#[derive(Debug, Clone, Default)]
struct Calls(Arc<Mutex<BTreeMap<String, usize>>>);

impl aws_smithy_runtime_api::client::interceptors::Intercept for Calls {
    fn name(&self) -> &'static str {
        "Calls"
    }
    fn read_after_execution(
        &self,
        _context: &aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef<'_>,
        _components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        if let Some(m) = cfg.load::<aws_smithy_runtime_api::client::orchestrator::Metadata>() {
            let api = format!("{}:{}", m.service().to_lowercase(), m.name());
            *self.0.lock().unwrap().entry(api).or_default() += 1;
        }
        Ok(())
    }
}

impl Calls {
    fn take(&self) -> BTreeMap<String, usize> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

fn endpoint_name(i: usize) -> String {
    format!("sweep-{i:04}")
}

/// The canary example with an hour's bake, watching `endpoint`'s own 5xx alarm.
fn policy_for(endpoint: &str) -> Policy {
    let text = std::fs::read_to_string(repo_root().join("examples/policies/canary.yaml")).unwrap();
    let text = text
        .replace("fraud-scorer-5xx", &format!("{endpoint}-5xx"))
        .replace("WaitIntervalInSeconds: 300", "WaitIntervalInSeconds: 3600")
        .replace(
            "MaximumExecutionTimeoutInSeconds: 3600",
            "MaximumExecutionTimeoutInSeconds: 28800",
        );
    Policy::parse(&text).unwrap()
}

async fn create_endpoint(c: &Clients, i: usize) {
    let name = endpoint_name(i);
    c.sagemaker
        .create_endpoint()
        .endpoint_name(&name)
        .endpoint_config_name("blue-config")
        .tags(
            Tag::builder()
                .key("guardrails:managed")
                .value("true")
                .build(),
        )
        .send()
        .await
        .unwrap();
    c.cloudwatch
        .put_metric_alarm()
        .alarm_name(format!("{name}-5xx"))
        .namespace("AWS/SageMaker")
        .metric_name("Invocation5XXErrors")
        .dimensions(
            aws_sdk_cloudwatch::types::Dimension::builder()
                .name("EndpointName")
                .value(&name)
                .build(),
        )
        .statistic(aws_sdk_cloudwatch::types::Statistic::Average)
        .period(60)
        .evaluation_periods(1)
        .threshold(0.05)
        .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .unwrap();
}

async fn in_service(c: &Clients, i: usize) -> bool {
    c.sagemaker
        .describe_endpoint()
        .endpoint_name(endpoint_name(i))
        .send()
        .await
        .ok()
        .and_then(|d| d.endpoint_status().cloned())
        == Some(EndpointStatus::InService)
}

async fn start(driver: &Driver, i: usize) {
    let name = endpoint_name(i);
    let fleet = driver.endpoints.fleet(&name).await.unwrap().unwrap();
    let green = GreenSpec {
        variant_name: "green".to_owned(),
        model_name: "green-model".to_owned(),
        instance_type: "ml.m5.xlarge".to_owned(),
        instance_count: 1,
    };
    let plan = Plan::new(&format!("s{i:04}"), &policy_for(&name), &fleet, &green).unwrap();
    // moto answers a busy moment with a 500 now and then: a start is tried again, as Lambda
    // would try the request again.
    let mut tries = 0;
    while let Err(e) = driver.start(plan.clone()).await {
        tries += 1;
        assert!(tries < 5, "{name}: {e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every active deployment baking its canary (sweeping until they are).
async fn settle(driver: &Driver, tee: &Tee, store: &DynamoStore, n: usize) {
    for _ in 0..120 {
        let swept = driver.sweep().await.unwrap();
        let shards: Vec<SweepShard> = std::mem::take(&mut *tee.shards.lock().unwrap());
        let mut baking = swept
            .reports
            .iter()
            .filter(|r| matches!(r.phase, Phase::Baking { .. }))
            .count();
        for shard in shards {
            let part = driver.sweep_shard(&shard.endpoints, shard.shards).await;
            baking += part
                .reports
                .iter()
                .filter(|r| matches!(r.phase, Phase::Baking { .. }))
                .count();
        }
        if baking == n {
            return;
        }
        let active = store.active_endpoints().await.unwrap().len();
        assert_eq!(active, n, "a deployment ended before it was measured");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!("the deployments did not all reach their canary bake");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1, 10, 100, 1_000]
    } else {
        sizes
    };
    let config = guardrails_local::Config {
        delays: Delays {
            create_ms: 50,
            update_ms: 200,
            weights_ms: 50,
        },
        // No synthetic traffic, and a slower tick: 1,000 endpoints' requests recorded ten
        // times a second would be the emulator's work, not the sweep's.
        tick: Duration::from_millis(500),
        requests_per_tick: 0,
        ..guardrails_local::Config::default()
    };
    let stack = LocalStack::start(config).await.unwrap();
    let admin = Clients::new(&stack);
    DynamoStore::new(admin.dynamodb.clone(), "guardrails")
        .create_table()
        .await
        .unwrap();
    for model in ["blue-model", "green-model"] {
        admin
            .sagemaker
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
            .unwrap();
    }
    admin
        .sagemaker
        .create_endpoint_config()
        .endpoint_config_name("blue-config")
        .production_variants(
            ProductionVariant::builder()
                .variant_name("AllTraffic")
                .model_name("blue-model")
                .instance_type(ProductionVariantInstanceType::MlM5Xlarge)
                .initial_instance_count(1)
                .initial_variant_weight(1.0)
                .build(),
        )
        .send()
        .await
        .unwrap();

    // Blue and green on one instance each: room for 1,000 endpoints.
    stack
        .emulator
        .emulator
        .lock()
        .unwrap()
        .sagemaker
        .quotas
        .insert("ml.m5.xlarge".to_owned(), 5_000);
    let function = Clients::for_function(&stack, "bake-watcher");
    let calls = Calls::default();
    let sdk = &function.sdk;
    let sagemaker = aws_sdk_sagemaker::Client::from_conf(
        aws_sdk_sagemaker::config::Builder::from(sdk)
            .interceptor(calls.clone())
            .build(),
    );
    let cloudwatch = aws_sdk_cloudwatch::Client::from_conf(
        aws_sdk_cloudwatch::config::Builder::from(sdk)
            .interceptor(calls.clone())
            .build(),
    );
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(sdk)
            .interceptor(calls.clone())
            .build(),
    );
    let eventbridge = aws_sdk_eventbridge::Client::from_conf(
        aws_sdk_eventbridge::config::Builder::from(sdk)
            .interceptor(calls.clone())
            .build(),
    );
    let scheduler = aws_sdk_scheduler::Client::from_conf(
        aws_sdk_scheduler::config::Builder::from(sdk)
            .interceptor(calls.clone())
            .build(),
    );
    let local = guardrails_local::iam::template::Names::local();
    let attribute = |resource: &str| {
        local
            .attributes
            .get(&(resource.to_owned(), "Arn".to_owned()))
            .cloned()
            .unwrap()
    };
    let tee = Arc::new(Tee {
        bus: EventBridgeBus::new(eventbridge, "default"),
        shards: Mutex::new(Vec::new()),
    });
    let store = Arc::new(DynamoStore::new(dynamodb, "guardrails"));
    let driver = Driver {
        endpoints: Arc::new(SageMakerEndpoints::new(sagemaker)),
        alarms: Arc::new(CloudWatchAlarms::new(cloudwatch.clone())),
        metrics: Arc::new(CloudWatchAlarms::new(cloudwatch)),
        hooks: Arc::new(guardrails::aws::lambda::LambdaHooks::new(
            aws_sdk_lambda::Client::new(&function.sdk),
        )),
        store: store.clone(),
        bus: tee.clone(),
        waker: Arc::new(SchedulerWaker::new(
            scheduler,
            "default",
            &attribute("BakeWatcherFunction"),
            &attribute("SchedulerRole"),
        )),
        clock: Arc::new(SystemClock),
        limits: Limits::default(),
    };

    println!(
        "| active deployments | shards | sweep wall time | calls | calls per deployment | by API |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | --- |");
    let mut created = 0;
    for n in sizes {
        let set_up = Instant::now();
        futures_util::stream::iter(created..n)
            .for_each_concurrent(16, |i| {
                let admin = &admin;
                async move { create_endpoint(admin, i).await }
            })
            .await;
        for i in created..n {
            while !in_service(&admin, i).await {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        futures_util::stream::iter(created..n)
            .for_each_concurrent(4, |i| {
                let driver = &driver;
                async move { start(driver, i).await }
            })
            .await;
        created = n;
        settle(&driver, &tee, &store, n).await;
        eprintln!("{n} deployments set up in {:?}", set_up.elapsed());

        // A sweep like any other minute's: nothing to decide, every deployment looked at.
        calls.take();
        let denied_before = iam_log(&stack).iter().filter(|d| !d.3).count();
        let began = Instant::now();
        let swept = driver.sweep().await.unwrap();
        let shards: Vec<SweepShard> = std::mem::take(&mut *tee.shards.lock().unwrap());
        let parts = futures_util::future::join_all(
            shards
                .iter()
                .map(|s| driver.sweep_shard(&s.endpoints, s.shards)),
        )
        .await;
        let took = began.elapsed();
        let reconciled = swept.reports.len() + parts.iter().map(|p| p.reports.len()).sum::<usize>();
        let failures: Vec<&String> = parts
            .iter()
            .flat_map(|p| &p.failures)
            .chain(&swept.failures)
            .collect();
        assert_eq!(reconciled, n, "every deployment reconciled: {failures:?}");
        let calls = calls.take();
        let denied = iam_log(&stack).iter().filter(|d| !d.3).count() - denied_before;
        assert_eq!(denied, 0, "every call authorized");
        let total: usize = calls.values().sum();
        let by_api = calls
            .iter()
            .map(|(api, count)| format!("{api} {count}"))
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "| {n} | {} | {:.2} s | {total} | {:.2} | {by_api} |",
            shards.len() + 1,
            took.as_secs_f64(),
            total as f64 / n as f64,
        );
    }
}
