//! Every AWS adapter against the local stack, through the real SDK clients: SageMaker and
//! CloudWatch on the project's emulator, DynamoDB, EventBridge, Scheduler and SNS on moto.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use guardrails::aws::cloudwatch::{CloudWatchAlarms, MetricQuery};
use guardrails::aws::dynamodb::DynamoStore;
use guardrails::aws::eventbridge::EventBridgeBus;
use guardrails::aws::sagemaker::SageMakerEndpoints;
use guardrails::aws::scheduler::SchedulerWaker;
use guardrails::aws::sns::SnsTopic;
use guardrails::core::{AlarmState, ConfigVariant, Deployment, EndpointStatus};
use guardrails::events::StateChange;
use guardrails::policy::{AlarmTemplate, ComparisonOperator, Statistic, TreatMissingData};
use guardrails::ports::{
    Alarms, AuditEntry, Endpoints, ErrorKind, EventBus, GreenAlarm, Outbox, Store, Stored, Waker,
};
use guardrails::units::{Share, Timestamp};
use guardrails_local::sagemaker::Outcome;
use guardrails_tests::local::{self, Clients, endpoint_serving, wait_for};
use guardrails_tests::{T0, example_policy, sample_plan};

fn errors_template(period: u32) -> AlarmTemplate {
    AlarmTemplate {
        name: "errors".to_owned(),
        namespace: "AWS/SageMaker".to_owned(),
        metric_name: "Invocation5XXErrors".to_owned(),
        statistic: Statistic::Average,
        comparison_operator: ComparisonOperator::GreaterThanThreshold,
        threshold: 0.05,
        period_in_seconds: period,
        evaluation_periods: 1,
        datapoints_to_alarm: 1,
        treat_missing_data: TreatMissingData::Missing,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sagemaker_adapter_describes_creates_updates_and_refuses_in_progress_changes() {
    let stack = local::start().await;
    let c = Clients::new(&stack);
    let endpoints = SageMakerEndpoints::new(c.sagemaker.clone());
    assert_eq!(
        endpoints.describe("nope").await.unwrap(),
        None,
        "a missing endpoint is None"
    );

    endpoint_serving(&c, "fraud", "fraud-v1", "fraud-model-v1", 2).await;
    let blue = endpoints.describe("fraud").await.unwrap().unwrap();
    assert_eq!(blue.status, EndpointStatus::InService);
    assert_eq!(blue.config_name, "fraud-v1");
    assert_eq!(blue.variants[0].variant_name, "AllTraffic");
    assert_eq!(blue.variants[0].current_instance_count, 2);

    c.sagemaker
        .create_model()
        .model_name("fraud-model-v2")
        .execution_role_arn("arn:aws:iam::123456789012:role/local")
        .send()
        .await
        .unwrap();
    let variants = vec![
        ConfigVariant::Copy {
            variant_name: "AllTraffic".to_owned(),
            initial_weight: 1.0,
            instance_count: None,
        },
        ConfigVariant::New {
            like: "AllTraffic".to_owned(),
            variant_name: "v2".to_owned(),
            model_name: "fraud-model-v2".to_owned(),
            instance_type: "ml.m5.xlarge".to_owned(),
            instance_count: 1,
            initial_weight: 0.0,
        },
    ];
    endpoints
        .create_config("fraud-bg", "fraud-v1", &variants)
        .await
        .unwrap();
    endpoints
        .create_config("fraud-bg", "fraud-v1", &variants)
        .await
        .unwrap();
    let copied = c
        .sagemaker
        .describe_endpoint_config()
        .endpoint_config_name("fraud-bg")
        .send()
        .await
        .unwrap();
    let blue_copy = &copied.production_variants()[0];
    assert_eq!(blue_copy.model_name(), Some("fraud-model-v1"));
    assert_eq!(
        blue_copy.initial_instance_count(),
        Some(2),
        "blue copied as configured"
    );

    endpoints
        .update_endpoint("fraud", "fraud-bg", None, false)
        .await
        .unwrap();
    let updating = endpoints.describe("fraud").await.unwrap().unwrap();
    assert_eq!(updating.status, EndpointStatus::Updating);
    assert_eq!(updating.pending_config_name.as_deref(), Some("fraud-bg"));
    let refused = endpoints
        .update_endpoint("fraud", "fraud-v1", None, false)
        .await
        .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::InProgress, "{refused}");

    wait_for(async || {
        endpoints
            .describe("fraud")
            .await
            .unwrap()
            .is_some_and(|e| e.status == EndpointStatus::InService)
    })
    .await;
    let both = endpoints.describe("fraud").await.unwrap().unwrap();
    assert_eq!(both.config_name, "fraud-bg");
    assert!(both.serves_share("v2", Share::ZERO));

    let ten = Share::from_percent(10.0).unwrap();
    endpoints
        .set_weights("fraud", "AllTraffic", "v2", ten)
        .await
        .unwrap();
    wait_for(async || {
        endpoints
            .describe("fraud")
            .await
            .unwrap()
            .is_some_and(|e| e.serves_share("v2", ten))
    })
    .await;
    endpoints
        .set_instance_count("fraud", "v2", 2)
        .await
        .unwrap();
    wait_for(async || {
        endpoints.describe("fraud").await.unwrap().is_some_and(|e| {
            e.variant("v2")
                .is_some_and(|v| v.current_instance_count == 2)
        })
    })
    .await;

    endpoints.delete_config("fraud-bg").await.unwrap();
    endpoints.delete_config("fraud-bg").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_update_returns_to_the_old_config_with_its_reason() {
    let stack = local::start().await;
    let c = Clients::new(&stack);
    let endpoints = SageMakerEndpoints::new(c.sagemaker.clone());
    endpoint_serving(&c, "fraud", "fraud-v1", "fraud-model-v1", 1).await;
    local::next_update(
        &stack,
        "fraud",
        Outcome::ReturnsToOldConfig("image not found".to_owned()),
    );
    endpoints
        .update_endpoint("fraud", "fraud-v1", None, false)
        .await
        .unwrap();
    wait_for(async || {
        endpoints
            .describe("fraud")
            .await
            .unwrap()
            .is_some_and(|e| e.status == EndpointStatus::InService)
    })
    .await;
    let back = endpoints.describe("fraud").await.unwrap().unwrap();
    assert_eq!(back.failure_reason.as_deref(), Some("image not found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudwatch_adapter_creates_green_alarms_that_fire_from_data_and_reads_metrics() {
    let stack = local::start().await;
    let c = Clients::new(&stack);
    let alarms = CloudWatchAlarms::new(c.cloudwatch.clone());
    endpoint_serving(&c, "fraud", "fraud-v1", "fraud-model-v1", 1).await;
    let template = errors_template(10);
    let green = GreenAlarm {
        alarm_name: "guardrails-d1-errors",
        endpoint_name: "fraud",
        variant_name: "AllTraffic",
        template: &template,
    };
    alarms.put_green_alarm(green.clone()).await.unwrap();
    let states = alarms
        .states(&["guardrails-d1-errors", "missing"])
        .await
        .unwrap();
    assert_eq!(states.len(), 1, "only alarms that exist");
    let described = c
        .cloudwatch
        .describe_alarms()
        .alarm_names("guardrails-d1-errors")
        .send()
        .await
        .unwrap();
    let alarm = &described.metric_alarms()[0];
    let dims: Vec<(&str, &str)> = alarm
        .dimensions()
        .iter()
        .map(|d| (d.name().unwrap(), d.value().unwrap()))
        .collect();
    assert_eq!(
        dims,
        vec![("EndpointName", "fraud"), ("VariantName", "AllTraffic")]
    );
    assert_eq!(alarm.threshold(), Some(0.05));

    wait_for(async || {
        alarms.states(&["guardrails-d1-errors"]).await.unwrap()["guardrails-d1-errors"].state
            == AlarmState::Ok
    })
    .await;
    local::set_model(&stack, "fraud-model-v1", 0.4);
    wait_for(async || {
        alarms.states(&["guardrails-d1-errors"]).await.unwrap()["guardrails-d1-errors"].state
            == AlarmState::Alarm
    })
    .await;
    let reason = alarms.states(&["guardrails-d1-errors"]).await.unwrap()["guardrails-d1-errors"]
        .reason
        .clone();
    assert!(reason.starts_with("Threshold Crossed"), "{reason}");

    let now = Timestamp::from_epoch_ms(guardrails_local::now_ms());
    let query = MetricQuery {
        namespace: "AWS/SageMaker",
        metric: "Invocation5XXErrors",
        dimensions: &[("EndpointName", "fraud"), ("VariantName", "AllTraffic")],
        stat: "Average",
        period_secs: 60,
    };
    let points = alarms
        .metric_data(
            &query,
            Timestamp::from_epoch_ms(now.epoch_ms() - 120_000),
            now,
        )
        .await
        .unwrap();
    assert!(!points.is_empty());
    assert!(points.iter().all(|(_, v)| (0.0..=1.0).contains(v)));

    alarms
        .delete_alarms(&["guardrails-d1-errors".to_owned()])
        .await
        .unwrap();
    assert!(
        alarms
            .states(&["guardrails-d1-errors"])
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarm_states_are_read_in_batches_of_at_most_100_names() {
    let stack = local::start().await;
    let c = Clients::new(&stack);
    let alarms = CloudWatchAlarms::new(c.cloudwatch.clone());
    let template = errors_template(60);
    let names: Vec<String> = (0..150).map(|i| format!("alarm-{i:03}")).collect();
    for name in &names {
        let green = GreenAlarm {
            alarm_name: name,
            endpoint_name: "fraud",
            variant_name: "v2",
            template: &template,
        };
        alarms.put_green_alarm(green).await.unwrap();
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let states = alarms.states(&refs).await.unwrap();
    assert_eq!(states.len(), 150);
    assert!(
        states
            .values()
            .all(|a| a.state == AlarmState::InsufficientData),
        "new alarms lack data"
    );
    alarms.delete_alarms(&names).await.unwrap();
    assert!(alarms.states(&refs).await.unwrap().is_empty());
}

fn stored(id: &str, version: u64) -> Stored {
    let mut plan = sample_plan(&example_policy("canary.yaml"), 4);
    plan.deployment_id = id.to_owned();
    let (deployment, _) = Deployment::start(plan, T0).unwrap();
    Stored {
        deployment,
        version,
        transitions: 1,
        outbox: Outbox::default(),
        wake_at: None,
    }
}

fn audit(record: &Stored, sequence: u64) -> AuditEntry {
    let (_, started) = Deployment::start(record.deployment.plan.clone(), T0).unwrap();
    AuditEntry {
        deployment_id: record.deployment.plan.deployment_id.clone(),
        sequence,
        transition: started,
        observed_green_percent: Some(10.0),
        judgement: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_store_keeps_one_active_deployment_with_conditional_versions_and_an_audit_log() {
    let stack = local::start().await;
    let c = Clients::new(&stack);
    let store = DynamoStore::new(c.dynamodb.clone(), "guardrails");
    store.create_table().await.unwrap();
    store.create_table().await.unwrap();
    assert_eq!(store.load("fraud-scorer").await.unwrap(), None);

    let first = stored("d1", 1);
    store.create(&first, &[audit(&first, 0)]).await.unwrap();
    let refused = store.create(&stored("d2", 1), &[]).await.unwrap_err();
    assert_eq!(refused.kind, ErrorKind::AlreadyActive, "{refused}");
    assert_eq!(
        store.load("fraud-scorer").await.unwrap(),
        Some(first.clone())
    );

    let mut second = first.clone();
    second.version = 2;
    second.transitions = 2;
    store.save(&second, 1, &[audit(&first, 1)]).await.unwrap();
    let stale = store
        .save(&second, 1, &[audit(&first, 2)])
        .await
        .unwrap_err();
    assert_eq!(stale.kind, ErrorKind::Conflict, "{stale}");
    let repeated = store
        .save(&second, 2, &[audit(&first, 1)])
        .await
        .unwrap_err();
    assert_eq!(
        repeated.kind,
        ErrorKind::Conflict,
        "an audit entry is never written twice"
    );
    assert_eq!(
        store.load("fraud-scorer").await.unwrap(),
        Some(second.clone())
    );

    let trail = store.audit("fraud-scorer", "d1").await.unwrap();
    assert_eq!(
        trail.iter().map(|a| a.sequence).collect::<Vec<_>>(),
        vec![0, 1]
    );
    assert_eq!(
        store.active_endpoints().await.unwrap(),
        vec!["fraud-scorer".to_owned()]
    );

    assert_eq!(
        store.archive(&second, 1).await.unwrap_err().kind,
        ErrorKind::Conflict
    );
    store.archive(&second, 2).await.unwrap();
    assert_eq!(store.load("fraud-scorer").await.unwrap(), None);
    assert!(store.active_endpoints().await.unwrap().is_empty());
    store.create(&stored("d2", 1), &[]).await.unwrap();
}

/// `stored` on another endpoint, watching the alarms `alarms` (by name).
fn stored_on(endpoint: &str, id: &str, alarms: &[&str]) -> Stored {
    let mut record = stored(id, 1);
    let plan = &mut record.deployment.plan;
    plan.endpoint_name = endpoint.to_owned();
    let template = plan.watched_alarms[0].clone();
    plan.watched_alarms = alarms
        .iter()
        .map(|name| {
            let mut alarm = template.clone();
            alarm.alarm_name = (*name).to_owned();
            alarm
        })
        .collect();
    record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_store_indexes_watched_alarms_reads_in_batches_and_notes_wake_ups() {
    let stack = local::start().await;
    let c = Clients::new(&stack);
    let store = DynamoStore::new(c.dynamodb.clone(), "guardrails");
    store.create_table().await.unwrap();
    let a = stored_on("ep-a", "da", &["shared-5xx", "a-latency"]);
    let b = stored_on("ep-b", "db", &["shared-5xx"]);
    store.create(&a, &[]).await.unwrap();
    store.create(&b, &[]).await.unwrap();
    // Many more, watching nothing in common, so that the batched read pages.
    let many: Vec<String> = (0..230).map(|i| format!("ep-{i}")).collect();
    for (i, endpoint) in many.iter().enumerate() {
        let own = format!("own-{i}");
        store
            .create(&stored_on(endpoint, &format!("d{i}"), &[&own]), &[])
            .await
            .unwrap();
    }

    assert_eq!(
        store.watching("shared-5xx").await.unwrap(),
        ["ep-a", "ep-b"]
    );
    assert_eq!(store.watching("a-latency").await.unwrap(), ["ep-a"]);
    assert_eq!(store.watching("own-7").await.unwrap(), ["ep-7"]);
    assert!(store.watching("nobody-watches").await.unwrap().is_empty());

    let mut wanted = many.clone();
    wanted.push("ep-a".to_owned());
    wanted.push("no-such-endpoint".to_owned());
    let mut loaded: Vec<String> = store
        .load_many(&wanted)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.deployment.plan.endpoint_name)
        .collect();
    loaded.sort();
    let mut expected = many.clone();
    expected.push("ep-a".to_owned());
    expected.sort();
    assert_eq!(loaded, expected);

    // The wake-up is noted beside the record, without a new version; saves keep it.
    let at = Timestamp::from_epoch_ms(1_790_000_000_000);
    store.wake_scheduled("ep-a", "da", at).await.unwrap();
    store
        .wake_scheduled("ep-a", "not-this-one", T0)
        .await
        .unwrap();
    let noted = store.load("ep-a").await.unwrap().unwrap();
    assert_eq!((noted.wake_at, noted.version), (Some(at), 1));
    let mut next = noted.clone();
    next.version = 2;
    store.save(&next, 1, &[]).await.unwrap();
    assert_eq!(store.load("ep-a").await.unwrap().unwrap().wake_at, Some(at));
    store.wake_scheduled("ep-gone", "dx", at).await.unwrap();

    // Archiving takes the deployment off the index, in the same transaction.
    store.archive(&next, 2).await.unwrap();
    assert_eq!(store.watching("shared-5xx").await.unwrap(), ["ep-b"]);
    assert!(store.watching("a-latency").await.unwrap().is_empty());
}

async fn queue_receiving(c: &Clients, name: &str) -> (String, String) {
    let url = c
        .sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    let attributes = c
        .sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap();
    let arn =
        attributes.attributes().unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn].clone();
    (url, arn)
}

async fn receive(c: &Clients, url: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    wait_for(async || {
        let out = c
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        bodies.extend(
            out.messages()
                .iter()
                .filter_map(|m| m.body().map(str::to_owned)),
        );
        !bodies.is_empty()
    })
    .await;
    bodies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eventbridge_bus_publishes_our_state_change_events_to_matching_rules() {
    let stack = local::start().await;
    let c = Clients::new(&stack);
    let (url, arn) = queue_receiving(&c, "guardrails-events").await;
    c.eventbridge
        .put_rule()
        .name("guardrails-state-changes")
        .event_pattern(
            r#"{"source":["guardrails"],"detail-type":["Guardrails Deployment State Change"]}"#,
        )
        .send()
        .await
        .unwrap();
    c.eventbridge
        .put_targets()
        .rule("guardrails-state-changes")
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("q")
                .arn(arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let record = stored("d1", 1);
    let (_, started) = Deployment::start(record.deployment.plan.clone(), T0).unwrap();
    let event = StateChange::new(&record.deployment, &started, 0, None);
    EventBridgeBus::new(c.eventbridge.clone(), "default")
        .publish(std::slice::from_ref(&event))
        .await
        .unwrap();
    let bodies = receive(&c, &url).await;
    let envelope: serde_json::Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(
        envelope["detail-type"],
        "Guardrails Deployment State Change"
    );
    let detail: StateChange = serde_json::from_value(envelope["detail"].clone()).unwrap();
    assert_eq!(detail, event);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulators_endpoint_events_reach_eventbridge_rules() {
    let stack = local::start().await;
    let c = Clients::new(&stack);
    let (url, arn) = queue_receiving(&c, "sagemaker-events").await;
    c.eventbridge
        .put_rule()
        .name("endpoint-changes")
        .event_pattern(
            r#"{"source":["aws.sagemaker"],"detail-type":["SageMaker Endpoint State Change"]}"#,
        )
        .send()
        .await
        .unwrap();
    c.eventbridge
        .put_targets()
        .rule("endpoint-changes")
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("q")
                .arn(arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    endpoint_serving(&c, "fraud", "fraud-v1", "fraud-model-v1", 1).await;
    let mut statuses = Vec::new();
    wait_for(async || {
        let out = c
            .sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        for m in out.messages() {
            let event: serde_json::Value = serde_json::from_str(m.body().unwrap()).unwrap();
            statuses.push(
                event["detail"]["EndpointStatus"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
            assert!(
                event["detail"]["LastModifiedTime"].is_i64(),
                "epoch milliseconds"
            );
        }
        statuses.contains(&"IN_SERVICE".to_owned())
    })
    .await;
    assert_eq!(statuses.first().map(String::as_str), Some("CREATING"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_waker_keeps_one_one_shot_schedule_per_endpoint() {
    let stack = local::start().await;
    let c = Clients::new(&stack);
    let waker = SchedulerWaker::new(
        c.scheduler.clone(),
        "default",
        "arn:aws:sqs:us-east-1:123456789012:wake-ups",
        "arn:aws:iam::123456789012:role/scheduler",
    );
    // Believed pending, none there: the update is not found, and it is created.
    waker
        .wake_at(
            "fraud",
            "d1",
            Timestamp::from_epoch_ms(1_789_999_000_000),
            true,
        )
        .await
        .unwrap();
    // Believed fired, still there: the create conflicts, and it is updated.
    waker
        .wake_at(
            "fraud",
            "d1",
            Timestamp::from_epoch_ms(1_790_000_000_000),
            false,
        )
        .await
        .unwrap();
    // Believed pending, and it is: updated.
    waker
        .wake_at(
            "fraud",
            "d1",
            Timestamp::from_epoch_ms(1_790_000_030_500),
            true,
        )
        .await
        .unwrap();
    let schedule = c
        .scheduler
        .get_schedule()
        .name("guardrails-fraud")
        .send()
        .await
        .unwrap();
    assert_eq!(
        schedule.schedule_expression(),
        Some("at(2026-09-21T14:13:51)")
    );
    let input: serde_json::Value =
        serde_json::from_str(schedule.target().unwrap().input().unwrap()).unwrap();
    assert_eq!(
        input,
        serde_json::json!({ "endpoint": "fraud", "deploymentId": "d1" })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sns_topic_publishes_pages_with_attributes() {
    let stack = local::start().await;
    let c = Clients::new(&stack);
    let (url, arn) = queue_receiving(&c, "on-call").await;
    let topic = c
        .sns
        .create_topic()
        .name("guardrails-pages")
        .send()
        .await
        .unwrap()
        .topic_arn()
        .unwrap()
        .to_owned();
    c.sns
        .subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(arn)
        .send()
        .await
        .unwrap();
    let attributes = BTreeMap::from([("outcome".to_owned(), "ROLLED_BACK".to_owned())]);
    let id = SnsTopic::new(c.sns.clone(), &topic)
        .publish("Rolled back fraud-scorer", "alarm fired", &attributes)
        .await
        .unwrap();
    assert!(!id.is_empty());
    let bodies = receive(&c, &url).await;
    let envelope: serde_json::Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(envelope["Subject"], "Rolled back fraud-scorer");
    assert_eq!(
        envelope["MessageAttributes"]["outcome"]["Value"],
        "ROLLED_BACK"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_that_fired_and_recovered_is_found_in_its_history_and_definitions_are_read() {
    use aws_sdk_cloudwatch::types::StateValue;
    let stack = local::start().await;
    let c = Clients::new(&stack);
    let alarms = CloudWatchAlarms::new(c.cloudwatch.clone());
    let template = errors_template(60);
    let green = GreenAlarm {
        alarm_name: "flappy",
        endpoint_name: "fraud",
        variant_name: "v2",
        template: &template,
    };
    alarms.put_green_alarm(green).await.unwrap();
    let since = Timestamp::from_epoch_ms(guardrails_local::now_ms() - 1_000);
    assert!(
        alarms
            .fired_since(&["flappy"], since)
            .await
            .unwrap()
            .is_empty()
    );
    for (state, reason) in [
        (StateValue::Alarm, "Threshold Crossed: a test"),
        (StateValue::Ok, "back to normal"),
    ] {
        c.cloudwatch
            .set_alarm_state()
            .alarm_name("flappy")
            .state_value(state)
            .state_reason(reason)
            .send()
            .await
            .unwrap();
    }
    let fired = alarms
        .fired_since(&["flappy", "absent"], since)
        .await
        .unwrap();
    assert_eq!(fired.len(), 1);
    assert_eq!(fired["flappy"].1, "Threshold Crossed: a test");
    assert!(fired["flappy"].0 >= since);
    let later = Timestamp::from_epoch_ms(guardrails_local::now_ms() + 60_000);
    assert!(
        alarms
            .fired_since(&["flappy"], later)
            .await
            .unwrap()
            .is_empty()
    );
    // The preflight's view of the same alarm: its metric, dimensions and comparison.
    let definitions = alarms.definitions(&["flappy", "absent"]).await.unwrap();
    let metric = definitions["flappy"].metric.clone().unwrap();
    assert_eq!(metric.metric_name, "Invocation5XXErrors");
    assert_eq!(metric.statistic, "Average");
    assert_eq!(metric.comparison, "GreaterThanThreshold");
    assert!(
        metric
            .dimensions
            .contains(&("VariantName".to_owned(), "v2".to_owned()))
    );
    assert!(!definitions.contains_key("absent"));
}

/// Every config Guardrails creates keeps every setting of the user's config and of blue's
/// variant but what the deployment changes (`guardrails::aws::endpoint_config`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_configs_keep_every_setting_of_the_users_config() {
    use aws_sdk_sagemaker::types::{
        AsyncInferenceConfig, AsyncInferenceOutputConfig, CaptureMode, CaptureOption,
        DataCaptureConfig, MetricsConfig, ProductionVariant, ProductionVariantInstanceType,
        ProductionVariantServerlessConfig, Tag, VpcConfig,
    };
    let stack = local::start().await;
    let c = Clients::new(&stack);
    let endpoints = SageMakerEndpoints::new(c.sagemaker.clone());
    endpoint_serving(&c, "fraud", "fraud-v1", "fraud-model-v1", 1).await;
    c.sagemaker
        .create_model()
        .model_name("fraud-model-v2")
        .execution_role_arn("arn:aws:iam::123456789012:role/local")
        .send()
        .await
        .unwrap();
    let blue = ProductionVariant::builder()
        .variant_name("AllTraffic")
        .model_name("fraud-model-v1")
        .instance_type(ProductionVariantInstanceType::MlM5Xlarge)
        .initial_instance_count(3)
        .initial_variant_weight(1.0)
        .volume_size_in_gb(64)
        .model_data_download_timeout_in_seconds(900)
        .container_startup_health_check_timeout_in_seconds(600)
        .build();
    let serverless = ProductionVariant::builder()
        .variant_name("AllTraffic")
        .model_name("fraud-model-v1")
        .serverless_config(
            ProductionVariantServerlessConfig::builder()
                .memory_size_in_mb(2048)
                .max_concurrency(5)
                .build(),
        )
        .build();
    let full = |name: &str, variant: ProductionVariant| {
        c.sagemaker
            .create_endpoint_config()
            .endpoint_config_name(name)
            .production_variants(variant)
            .data_capture_config(
                DataCaptureConfig::builder()
                    .enable_capture(true)
                    .initial_sampling_percentage(20)
                    .destination_s3_uri("s3://capture/fraud")
                    .capture_options(
                        CaptureOption::builder()
                            .capture_mode(CaptureMode::Input)
                            .build(),
                    )
                    .build(),
            )
            .kms_key_id(
                "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            )
            .async_inference_config(
                AsyncInferenceConfig::builder()
                    .output_config(
                        AsyncInferenceOutputConfig::builder()
                            .s3_output_path("s3://async/out")
                            .build(),
                    )
                    .build(),
            )
            .vpc_config(
                VpcConfig::builder()
                    .security_group_ids("sg-1")
                    .subnets("subnet-1")
                    .build(),
            )
            .enable_network_isolation(true)
            .metrics_config(
                MetricsConfig::builder()
                    .enable_enhanced_metrics(true)
                    .build(),
            )
            .tags(Tag::builder().key("team").value("fraud").build())
            .send()
    };
    full("fraud-full", blue.clone()).await.unwrap();
    full("fraud-serverless", serverless.clone()).await.unwrap();
    let green = |like: &str| ConfigVariant::New {
        like: like.to_owned(),
        variant_name: "v2".to_owned(),
        model_name: "fraud-model-v2".to_owned(),
        instance_type: String::new(),
        instance_count: 1,
        initial_weight: 0.0,
    };
    let both = [
        ConfigVariant::Copy {
            variant_name: "AllTraffic".to_owned(),
            initial_weight: 1.0,
            instance_count: None,
        },
        green("AllTraffic"),
    ];
    endpoints
        .create_config("guardrails-x-blue-green", "fraud-full", &both)
        .await
        .unwrap();
    endpoints
        .create_config(
            "guardrails-x-serverless",
            "fraud-serverless",
            &[green("AllTraffic")],
        )
        .await
        .unwrap();
    let describe = async |name: &str| {
        c.sagemaker
            .describe_endpoint_config()
            .endpoint_config_name(name)
            .send()
            .await
            .unwrap()
    };
    let (user, made) = (
        describe("fraud-full").await,
        describe("guardrails-x-blue-green").await,
    );
    assert_eq!(made.data_capture_config(), user.data_capture_config());
    assert_eq!(made.kms_key_id(), user.kms_key_id());
    assert_eq!(made.async_inference_config(), user.async_inference_config());
    assert_eq!(made.vpc_config(), user.vpc_config());
    assert_eq!(made.enable_network_isolation(), Some(true));
    assert_eq!(made.metrics_config(), user.metrics_config());
    assert_eq!(made.production_variants()[0], blue, "blue as configured");
    let mut expected = blue.clone();
    expected.variant_name = Some("v2".to_owned());
    expected.model_name = Some("fraud-model-v2".to_owned());
    expected.initial_instance_count = Some(1);
    expected.initial_variant_weight = Some(0.0);
    assert_eq!(
        made.production_variants()[1],
        expected,
        "green has blue's volume, timeouts and instance type"
    );
    let tags = c
        .sagemaker
        .list_tags()
        .resource_arn(made.endpoint_config_arn().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tags().len(), 1);
    assert_eq!(tags.tags()[0].key(), Some("team"));
    let made = describe("guardrails-x-serverless").await;
    let mut expected = serverless;
    expected.variant_name = Some("v2".to_owned());
    expected.model_name = Some("fraud-model-v2".to_owned());
    expected.initial_variant_weight = Some(0.0);
    assert_eq!(
        made.production_variants(),
        [expected],
        "a serverless variant stays serverless, with no instances"
    );
}
