//! The demo's story, told through the real functions on the local stack: an endpoint serves
//! model v1; dry runs show the plan with its preflight checks (one request passes them, one is
//! refused); a canary deployment of v2 succeeds; a deployment of a faulty v3 trips its alarm in
//! the canary bake, rolls back, and on-call is paged; the endpoint is back on v2. It prints a
//! timeline and a summary, and exits non-zero if the story does not go that way.
//!
//! Run by `scripts/demo.sh`, which starts the stack and `cargo lambda watch` and exports the
//! environment `guardrails-local up` prints (the SDK clients read it like on AWS).

// A demo prints and reads the clock; it is a user of Guardrails, not part of it.
#![allow(clippy::disallowed_methods, clippy::print_stdout)]

use std::process::ExitCode;
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_sdk_sagemaker::types::{
    ContainerDefinition, ProductionVariant, ProductionVariantInstanceType, Tag,
};
use guardrails_local::fixtures::{ErrorAlarm, put_error_alarm};
use guardrails_local::wiring::{get, post};
use serde_json::{Value, json};

const ENDPOINT: &str = "fraud-scorer";
const VARIANT_CANARY: &str = "canary 10%, 15 s bake, 10 s final bake";
/// The longest one deployment may take in the demo before it is called stuck.
const STORY_LIMIT: Duration = Duration::from_secs(150);

struct Demo {
    sagemaker: aws_sdk_sagemaker::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
    /// Guardrails' function URL (commands).
    commands: String,
    sqs: aws_sdk_sqs::Client,
    timeline_queue: String,
    pages_queue: String,
    control: String,
    started: Instant,
    /// The `guardrails` command.
    cli: String,
    /// Where the demo writes its policies and the report.
    out: String,
}

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set: run this through scripts/demo.sh"))
}

/// A 50% canary judged against blue on 1 s counts, its green alarm at 20% errors.
fn judged_policy() -> Value {
    json!({
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "CanarySize": { "Type": "CAPACITY_PERCENT", "Value": 50 },
                "WaitIntervalInSeconds": 90
            },
            "TerminationWaitInSeconds": 5,
            "MaximumExecutionTimeoutInSeconds": 600
        },
        "Guardrails": {
            "PollIntervalInSeconds": 1,
            "Alarms": [{
                "Name": "green-errors", "MetricName": "Invocation5XXErrors", "Statistic": "Average",
                "ComparisonOperator": "GreaterThanThreshold", "Threshold": 0.2,
                "PeriodInSeconds": 10, "EvaluationPeriods": 1, "TreatMissingData": "notBreaching"
            }],
            "Analysis": { "PeriodInSeconds": 1, "MinimumGreenRequests": 200 }
        }
    })
}

fn policy() -> Value {
    json!({
        "DeploymentConfig": {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {
                    "Type": "CANARY",
                    "CanarySize": { "Type": "CAPACITY_PERCENT", "Value": 10 },
                    "WaitIntervalInSeconds": 15
                },
                "TerminationWaitInSeconds": 10,
                "MaximumExecutionTimeoutInSeconds": 600
            }
        },
        "Guardrails": {
            "PollIntervalInSeconds": 2,
            "Alarms": [{
                "Name": "green-errors", "MetricName": "Invocation5XXErrors", "Statistic": "Average",
                "ComparisonOperator": "GreaterThanThreshold", "Threshold": 0.05,
                "PeriodInSeconds": 10, "EvaluationPeriods": 1, "TreatMissingData": "notBreaching"
            }]
        }
    })
}

impl Demo {
    fn clock(&self) -> String {
        format!("t+{:>4.0}s", self.started.elapsed().as_secs_f64())
    }

    async fn model(&self, name: &str) -> Result<(), String> {
        self.sagemaker
            .create_model()
            .model_name(name)
            .primary_container(
                ContainerDefinition::builder()
                    .image(format!("local/{name}:latest"))
                    .build(),
            )
            .execution_role_arn("arn:aws:iam::123456789012:role/models")
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("CreateModel {name}: {e:?}"))
    }

    async fn endpoint_serving_v1(&self) -> Result<(), String> {
        for model in [
            "fraud-scorer-v1",
            "fraud-scorer-v2",
            "fraud-scorer-v3",
            "fraud-scorer-v3b",
            "fraud-scorer-v4",
        ] {
            self.model(model).await?;
        }
        self.sagemaker
            .create_endpoint_config()
            .endpoint_config_name("fraud-scorer-v1")
            .production_variants(
                ProductionVariant::builder()
                    .variant_name("AllTraffic")
                    .model_name("fraud-scorer-v1")
                    .instance_type(ProductionVariantInstanceType::MlM5Xlarge)
                    .initial_instance_count(2)
                    .initial_variant_weight(1.0)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| format!("CreateEndpointConfig: {e:?}"))?;
        self.sagemaker
            .create_endpoint()
            .endpoint_name(ENDPOINT)
            .endpoint_config_name("fraud-scorer-v1")
            .tags(
                Tag::builder()
                    .key("guardrails:managed")
                    .value("true")
                    .build(),
            )
            .send()
            .await
            .map_err(|e| format!("CreateEndpoint: {e:?}"))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let d = self
                .sagemaker
                .describe_endpoint()
                .endpoint_name(ENDPOINT)
                .send()
                .await;
            if d.is_ok_and(|d| {
                d.endpoint_status()
                    .is_some_and(|s| s.as_str() == "InService")
            }) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("the endpoint did not come into service".to_owned());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Sends a command to Guardrails' function URL, signed as the local operator (the role the
    /// local stack's template parameters allow every command); its status and JSON answer.
    async fn command(&self, body: Value) -> Result<(u16, Value), String> {
        let (status, text) = guardrails_local::lambda::call(
            &self.commands,
            guardrails_local::iam::OPERATOR_ACCESS_KEY,
            guardrails_local::iam::OPERATOR_SECRET_KEY,
            &body.to_string(),
        )
        .await?;
        let answer: Value = serde_json::from_str(&text)
            .map_err(|e| format!("the function URL answered {status}: {text} ({e})"))?;
        Ok((status, answer))
    }

    /// `guardrails <args>` as the operator (the demo's person), against this stack.
    fn cli_command(&self, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new(&self.cli);
        c.args(args)
            .env("GUARDRAILS_COMMANDS_URL", &self.commands)
            .env(
                "AWS_ACCESS_KEY_ID",
                guardrails_local::iam::OPERATOR_ACCESS_KEY,
            )
            .env(
                "AWS_SECRET_ACCESS_KEY",
                guardrails_local::iam::OPERATOR_SECRET_KEY,
            )
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE");
        c
    }

    /// `guardrails <args>`: its exit status and what it printed.
    fn guardrails(&self, args: &[&str]) -> Result<(i32, String), String> {
        let out = self
            .cli_command(args)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.cli))?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        Ok((out.status.code().unwrap_or(-1), text))
    }

    /// Runs `guardrails <args>` and prints it as a person sees it in a terminal.
    fn shown(&self, args: &[&str]) -> Result<(i32, String), String> {
        let (code, text) = self.guardrails(args)?;
        println!("$ guardrails {}", args.join(" "));
        print!("{text}");
        if code != 0 {
            println!("(exit status {code})");
        }
        Ok((code, text))
    }

    /// A policy file for the command.
    fn policy_file(&self, name: &str, policy: &Value) -> Result<String, String> {
        let path = std::path::Path::new(&self.out).join(name);
        let text = serde_json::to_string_pretty(policy).map_err(|e| e.to_string())?;
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path.display().to_string())
    }

    /// A deployment through `guardrails deploy --wait`; while it runs, `guardrails status`
    /// once it bakes (when `watch` says so). Returns how it ended, as the exit status says.
    async fn deploy(
        &self,
        model: &str,
        policy: &str,
        id: &str,
        watch: bool,
    ) -> Result<String, String> {
        let mut deploy = self.cli_command(&[
            "deploy",
            "--endpoint",
            ENDPOINT,
            "--model",
            model,
            "--policy",
            policy,
            "--deployment-id",
            id,
            "--yes",
            "--wait",
        ]);
        let running = tokio::task::spawn_blocking(move || deploy.output());
        if watch {
            let deadline = Instant::now() + STORY_LIMIT;
            loop {
                let (_, json) = self.guardrails(&["status", ENDPOINT, "--output", "json"])?;
                let status: Value = serde_json::from_str(&json).unwrap_or_default();
                if status["deployments"][0]["state"] == "BAKING" {
                    println!("{}  while green bakes:", self.clock());
                    self.shown(&["status", ENDPOINT])?;
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!("{id} never baked: {json}"));
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
        let out = running
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot run guardrails deploy: {e}"))?;
        println!(
            "$ guardrails deploy --endpoint {ENDPOINT} --model {model} --policy {policy} \\\n    --deployment-id {id} --yes --wait"
        );
        // The plan it shows first is the dry run's, above: the rest is the deployment.
        let text = String::from_utf8_lossy(&out.stdout);
        match text.find("\ndeployment ").map(|at| at + 1) {
            Some(start) if text[..start].contains("Preflight") => {
                println!("(the plan and its preflight, as in the dry run above)");
                print!("{}", &text[start..]);
            }
            _ => print!("{text}"),
        }
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        Ok(match out.status.code() {
            Some(0) => "SUCCEEDED",
            Some(2) => "ROLLED_BACK",
            Some(3) => "FAILED",
            _ => "REFUSED",
        }
        .to_owned())
    }

    /// Sanity of the door: someone who may only put events cannot reach it.
    async fn intruder_is_refused(&self) -> Result<(), String> {
        let body = json!({ "command": "abort", "endpointName": ENDPOINT, "reason": "mallory" });
        let (status, _) = guardrails_local::lambda::call(
            &self.commands,
            guardrails_local::iam::INTRUDER_ACCESS_KEY,
            guardrails_local::iam::INTRUDER_SECRET_KEY,
            &body.to_string(),
        )
        .await?;
        if status != 403 {
            return Err(format!(
                "an unauthorized abort was answered {status}, not 403"
            ));
        }
        Ok(())
    }

    /// The variant the endpoint serves now.
    async fn variant(&self) -> Result<String, String> {
        let d = self
            .sagemaker
            .describe_endpoint()
            .endpoint_name(ENDPOINT)
            .send()
            .await
            .map_err(|e| format!("DescribeEndpoint: {e:?}"))?;
        d.production_variants()
            .first()
            .and_then(|v| v.variant_name())
            .map(str::to_owned)
            .ok_or_else(|| "the endpoint serves no variant".to_owned())
    }

    async fn request(&self, model: &str, policy: Value, what: &str) -> Result<(), String> {
        let body = json!({
            "command": "deploy", "endpointName": ENDPOINT, "modelName": model, "policy": policy
        });
        let (status, answer) = self.command(body).await?;
        if status != 200 {
            return Err(format!("the request was refused ({status}): {answer}"));
        }
        println!(
            "{}  request: deploy {model} to {ENDPOINT} ({what}), signed by {}",
            self.clock(),
            guardrails_local::iam::OPERATOR_ARN
        );
        Ok(())
    }

    /// Prints the timeline of `model`'s deployment until it ends; returns its outcome.
    async fn follow(&self, model: &str) -> Result<String, String> {
        let deadline = Instant::now() + STORY_LIMIT;
        while Instant::now() < deadline {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.timeline_queue)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .map_err(|e| format!("ReceiveMessage: {e:?}"))?;
            for message in out.messages() {
                if let Some(handle) = message.receipt_handle() {
                    let _ = self
                        .sqs
                        .delete_message()
                        .queue_url(&self.timeline_queue)
                        .receipt_handle(handle)
                        .send()
                        .await;
                }
                let event: Value =
                    serde_json::from_str(message.body().unwrap_or("{}")).unwrap_or_default();
                let d = &event["detail"];
                if event["detail-type"] == "Guardrails Deployment Refused" {
                    return Err(format!("refused: {}", d["reason"]));
                }
                if d["modelName"] != model {
                    continue;
                }
                let share = d["observedGreenPercent"]
                    .as_f64()
                    .map_or_else(|| "-".to_owned(), |p| format!("{p:.0}%"));
                println!(
                    "{}  {:<16} {:<18} green {:>4}  {}",
                    self.clock(),
                    model,
                    d["state"].as_str().unwrap_or("?"),
                    share,
                    d["causeText"].as_str().unwrap_or("")
                );
                if let Some(outcome) = d["outcome"].as_str() {
                    return Ok(outcome.to_owned());
                }
            }
        }
        Err(format!("{model}: no outcome within {STORY_LIMIT:?}"))
    }

    async fn page(&self) -> Result<(String, String), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.pages_queue)
                .wait_time_seconds(1)
                .send()
                .await
                .map_err(|e| format!("ReceiveMessage: {e:?}"))?;
            if let Some(message) = out.messages().first() {
                // Read once: the next story's page is the next message.
                if let Some(receipt) = message.receipt_handle() {
                    self.sqs
                        .delete_message()
                        .queue_url(&self.pages_queue)
                        .receipt_handle(receipt)
                        .send()
                        .await
                        .map_err(|e| format!("DeleteMessage: {e:?}"))?;
                }
                let envelope: Value =
                    serde_json::from_str(message.body().unwrap_or("{}")).unwrap_or_default();
                return Ok((
                    envelope["Subject"].as_str().unwrap_or("").to_owned(),
                    envelope["Message"].as_str().unwrap_or("").to_owned(),
                ));
            }
        }
        Err("no page arrived".to_owned())
    }

    /// What the local IAM decided for the functions: each must have made its calls with its own
    /// role, and none may have been refused.
    async fn iam(&self) -> Result<String, String> {
        let (status, body) = get(&self.control, "/control/iam").await?;
        let decisions: Vec<Value> = serde_json::from_str(&body)
            .map_err(|e| format!("control API answered {status}: {body} ({e})"))?;
        // Mallory's refusal at the front door is the one expected.
        let denied: Vec<String> = decisions
            .iter()
            .filter(|d| d["allowed"] == false)
            .filter(|d| d["principal"] != guardrails_local::iam::INTRUDER_ARN)
            .map(|d| format!("{} {} on {}", d["principal"], d["action"], d["resource"]))
            .collect();
        if !denied.is_empty() {
            return Err(format!("IAM refused calls of the functions: {denied:?}"));
        }
        let mut counts = Vec::new();
        for function in [
            "start-deployment",
            "endpoint-events",
            "bake-watcher",
            "rollback-notifier",
        ] {
            let n = decisions
                .iter()
                .filter(|d| {
                    d["principal"]
                        .as_str()
                        .is_some_and(|p| p.ends_with(&format!("/{function}")))
                })
                .count();
            if n == 0 {
                return Err(format!("{function} made no call under its own role"));
            }
            counts.push(format!("{function} {n}"));
        }
        Ok(format!(
            "IAM: every call of the functions was authorized by the function's own role in infra/template.yaml ({}); none refused",
            counts.join(", ")
        ))
    }

    async fn serving(&self) -> Result<String, String> {
        let d = self
            .sagemaker
            .describe_endpoint()
            .endpoint_name(ENDPOINT)
            .send()
            .await
            .map_err(|e| format!("{e:?}"))?;
        let variants: Vec<String> = d
            .production_variants()
            .iter()
            .map(|v| {
                format!(
                    "{} at weight {}",
                    v.variant_name().unwrap_or("?"),
                    v.current_weight().unwrap_or(0.0)
                )
            })
            .collect();
        Ok(format!(
            "config {} ({})",
            d.endpoint_config_name().unwrap_or("?"),
            variants.join(", ")
        ))
    }
}

async fn story() -> Result<(), String> {
    let sdk = aws_config::load_defaults(BehaviorVersion::latest()).await;
    let demo = Demo {
        sagemaker: aws_sdk_sagemaker::Client::new(&sdk),
        cloudwatch: aws_sdk_cloudwatch::Client::new(&sdk),
        commands: env("GUARDRAILS_COMMANDS_URL")?,
        sqs: aws_sdk_sqs::Client::new(&sdk),
        timeline_queue: env("GUARDRAILS_TIMELINE_QUEUE_URL")?,
        pages_queue: env("GUARDRAILS_PAGES_QUEUE_URL")?,
        control: env("GUARDRAILS_LOCAL_CONTROL")?,
        started: Instant::now(),
        cli: env("GUARDRAILS_CLI")?,
        out: env("GUARDRAILS_DEMO_OUT")?,
    };
    std::fs::create_dir_all(&demo.out).map_err(|e| format!("{}: {e}", demo.out))?;
    let canary = demo.policy_file("canary.json", &policy())?;
    println!("== An endpoint serves model v1");
    demo.endpoint_serving_v1().await?;
    demo.intruder_is_refused().await?;
    println!(
        "{}  {ENDPOINT} in service: {}",
        demo.clock(),
        demo.serving().await?
    );

    println!("\n== The plan and its preflight checks (dry runs: nothing changes)");
    let dry = [
        "deploy",
        "--endpoint",
        ENDPOINT,
        "--model",
        "fraud-scorer-v2",
        "--policy",
        &canary,
        "--dry-run",
    ];
    let (code, plan) = demo.shown(&dry)?;
    if code != 0 || !plan.contains("Preflight, before any change:") {
        return Err(format!(
            "the dry run did not show the plan ({code}): {plan}"
        ));
    }
    // AWS's example threshold, Average >= 1: it only fires when every request fails.
    let example = ErrorAlarm {
        name: "fraud-scorer-5xx",
        endpoint: ENDPOINT,
        variant: "AllTraffic",
        period_secs: 60,
        threshold: 1.0,
        or_equal: true,
    };
    put_error_alarm(&demo.cloudwatch, &example).await?;
    let native = json!({
        "DeploymentConfig": {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {
                    "Type": "LINEAR",
                    "LinearStepSize": { "Type": "INSTANCE_COUNT", "Value": 1 },
                    "WaitIntervalInSeconds": 300
                },
                "TerminationWaitInSeconds": 300,
                "MaximumExecutionTimeoutInSeconds": 600
            },
            "AutoRollbackConfiguration": {
                "Alarms": [{ "AlarmName": "fraud-scorer-5xx" }, { "AlarmName": "fraud-scorer-latncy" }]
            }
        },
        "Guardrails": { "Engine": "native" }
    });
    println!(
        "\nA native request with a typo in an alarm name, an alarm that only fires at 100% errors and a timeout too short for 2 linear steps:"
    );
    let typo = demo.policy_file("native-typo.json", &native)?;
    let dry = [
        "deploy",
        "--endpoint",
        ENDPOINT,
        "--model",
        "fraud-scorer-v2",
        "--policy",
        &typo,
        "--dry-run",
    ];
    let (_, refused) = demo.shown(&dry)?;
    if !refused.contains("BLOCKING  alarms-exist")
        || !refused.contains("warning   alarm-thresholds-can-fire")
    {
        return Err(format!(
            "the preflight did not find what it should:\n{refused}"
        ));
    }

    println!("\n== A canary deployment of v2");
    let v2_started = Instant::now();
    println!("{}  {VARIANT_CANARY}, through the command", demo.clock());
    let v2 = demo
        .deploy("fraud-scorer-v2", &canary, "d-fraud-v2", true)
        .await?;
    let v2_secs = v2_started.elapsed().as_secs();
    let after_v2 = demo.serving().await?;
    println!("{}  {ENDPOINT} now serves {after_v2}", demo.clock());
    let v2_variant = demo.variant().await?;
    println!(
        "{}  the variant name is kept ({v2_variant}): alarms, scaling targets and TargetVariant callers keyed on it still work",
        demo.clock()
    );

    println!(
        "\n== A deployment of a faulty v3 (half of its responses are errors, three times slower)"
    );
    let (status, body) = post(
        &demo.control,
        "/control/models/fraud-scorer-v3",
        r#"{"error_rate":0.5,"latency_ms":60}"#,
    )
    .await?;
    if status != 204 {
        return Err(format!("control API answered {status}: {body}"));
    }
    let v3 = demo
        .deploy("fraud-scorer-v3", &canary, "d-fraud-v3", false)
        .await?;
    let (subject, message) = demo.page().await?;
    let after_v3 = demo.serving().await?;
    println!("\n== The page on-call received\nSubject: {subject}\n\n{message}");
    println!("\n== The rollback's report: share, errors, latency, the alarm, every transition");
    let report = std::path::Path::new(&demo.out).join("rollback-report.html");
    let report = report.display().to_string();
    let (code, _) = demo.shown(&["report", "d-fraud-v3", "--html", &report])?;
    if code != 0 {
        return Err("the report was not written".to_owned());
    }
    println!("open {report} in a browser (it needs no network)");

    println!(
        "\n== A v3b with three times blue's error rate (3% against 1%), far under its alarm's 20%: the judge"
    );
    for (model, behaviour) in [
        ("fraud-scorer-v2", r#"{"error_rate":0.01,"latency_ms":20}"#),
        ("fraud-scorer-v3b", r#"{"error_rate":0.03,"latency_ms":20}"#),
    ] {
        let (status, body) = post(
            &demo.control,
            &format!("/control/models/{model}"),
            behaviour,
        )
        .await?;
        if status != 204 {
            return Err(format!("control API answered {status}: {body}"));
        }
    }
    let judged = demo.policy_file("judged.json", &judged_policy())?;
    let (_, judged_plan) = demo.guardrails(&[
        "deploy",
        "--endpoint",
        ENDPOINT,
        "--model",
        "fraud-scorer-v3b",
        "--policy",
        &judged,
        "--dry-run",
    ])?;
    if let Some(at) = judged_plan.find("  judged at") {
        let lines: Vec<&str> = judged_plan[at..].lines().take(3).collect();
        println!(
            "what the plan says the judge compares:\n{}",
            lines.join("\n")
        );
    }
    let v3b = demo
        .deploy("fraud-scorer-v3b", &judged, "d-fraud-v3b", false)
        .await?;
    let (judged_subject, judged_message) = demo.page().await?;
    println!("\n== The page on-call received\nSubject: {judged_subject}\n\n{judged_message}");
    let (status, body) = post(
        &demo.control,
        "/control/models/fraud-scorer-v2",
        r#"{"error_rate":0,"latency_ms":20}"#,
    )
    .await?;
    if status != 204 {
        return Err(format!("control API answered {status}: {body}"));
    }

    println!("\n== SageMaker runs a canary of v4 itself (native engine); Guardrails follows it");
    let serving_variant = demo.variant().await?;
    let errors = ErrorAlarm {
        name: "fraud-scorer-errors",
        endpoint: ENDPOINT,
        variant: &serving_variant,
        period_secs: 10,
        threshold: 0.05,
        or_equal: false,
    };
    put_error_alarm(&demo.cloudwatch, &errors).await?;
    let native = json!({
        "DeploymentConfig": {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {
                    "Type": "CANARY",
                    "CanarySize": { "Type": "CAPACITY_PERCENT", "Value": 50 },
                    "WaitIntervalInSeconds": 5
                },
                "TerminationWaitInSeconds": 5,
                "MaximumExecutionTimeoutInSeconds": 600
            },
            "AutoRollbackConfiguration": { "Alarms": [{ "AlarmName": "fraud-scorer-errors" }] }
        },
        "Guardrails": { "Engine": "native", "PollIntervalInSeconds": 2 }
    });
    demo.request(
        "fraud-scorer-v4",
        native,
        "native canary 50%, 5 s bakes, SageMaker watching fraud-scorer-errors",
    )
    .await?;
    let v4 = demo.follow("fraud-scorer-v4").await?;
    let after_v4 = demo.serving().await?;
    println!("{}  {ENDPOINT} now serves {after_v4}", demo.clock());

    println!("\n== What happened on {ENDPOINT}, newest first");
    let (_, history) = demo.shown(&["history", ENDPOINT])?;
    let iam = demo.iam().await?;
    println!("== Summary");
    println!("  {iam}");
    println!("  v2: {v2} after {v2_secs} s");
    println!("  v3: {v3}; on-call paged: \"{subject}\"");
    println!("  after v3, {ENDPOINT} served {after_v3}");
    println!("  v3b: {v3b}, by the judge; on-call paged: \"{judged_subject}\"");
    println!("  v4 (native): {v4}; {ENDPOINT} serves {after_v4}");
    let back_on_v2 = after_v3 == after_v2;
    let name_kept = v2_variant == "AllTraffic";
    // Native guardrails keep the variant name: the new config is what changed.
    let on_v4 = after_v4 != after_v3;
    if v2 != "SUCCEEDED"
        || v3 != "ROLLED_BACK"
        || !subject.contains("ROLLED BACK")
        || !back_on_v2
        || !name_kept
        || v4 != "SUCCEEDED"
        || !on_v4
        || !history.contains("d-fraud-v3")
        || v3b != "ROLLED_BACK"
        || !judged_message.contains("the judge found green worse than blue")
        || !judged_message.contains("Judge counted:")
        || !judged_message.contains("Blast radius:    green served ")
    {
        return Err(format!(
            "the story went wrong: v2 {v2}, v3 {v3}, page {subject:?}, endpoint back on v2: \
             {back_on_v2}, variant after v2 {v2_variant}, v3b {v3b} ({judged_message}), v4 {v4}, \
             serving {after_v4}"
        ));
    }
    println!("  all as expected: the faulty model never reached more than its canary share");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match story().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}
