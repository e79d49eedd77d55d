//! The deployed flow on the local stack, in one process: the stack wired as the SAM template
//! wires AWS (`guardrails_local::wiring`: the table, the pages topic with its inbox, the
//! EventBridge rules from the template delivering to queues, due wake-ups and the sweep), and
//! the four functions' handlers, each built as its `main.rs` builds it but on clients signed
//! with its own role's credentials, receiving what the router delivers. A test sends what users
//! send (a deployment request, a command) and reads what they read (our events, the pages).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use guardrails::aws::clock::SystemClock;
use guardrails::aws::dynamodb::DynamoStore;
use guardrails::aws::sns::SnsTopic;
use guardrails::aws::ssm::ParameterTargets;
use guardrails::aws::wiring::{Names, PACKAGE_TARGETS_PATH, driver_with, pager_with, store_with};
use guardrails::driver::Driver;
use guardrails::handlers::{self, Settings};
use guardrails_local::iam::template;
use guardrails_local::stack::LocalStack;
use guardrails_local::wiring::{self, Invoker, Wired};
use serde_json::Value;

use crate::local::Clients;

/// The functions' handlers in this process, each on its own role.
struct InProcess {
    start: Driver,
    endpoint_events: Driver,
    bake_watcher: Driver,
    notifier_store: DynamoStore,
    pager: SnsTopic,
    /// The sample hook's client, on its own role.
    hook_sagemaker: aws_sdk_sagemaker::Client,
    settings: Settings,
    /// Where each function's output goes, as Lambda sends it to CloudWatch Logs.
    emulator: Arc<std::sync::Mutex<guardrails_local::Emulator>>,
}

impl InProcess {
    /// What `main.rs` writes after each invocation: its metrics, as EMF lines of its output.
    fn output(&self, function: &str, measures: &[guardrails::metrics::Measure]) {
        let now = self.start.clock.now().epoch_ms();
        let lines = guardrails::metrics::lines(function, measures, now);
        guardrails_local::lambda::function_output(&self.emulator, function, &lines);
    }
}

#[async_trait]
impl Invoker for InProcess {
    async fn invoke(&self, function: &str, payload: &str) -> Result<(u16, String), String> {
        let event: Value = serde_json::from_str(payload).map_err(|e| e.to_string())?;
        // What `start-deployment`'s `main.rs` does: a function URL request is a command.
        if function == "start-deployment" && event.get("requestContext").is_some() {
            let answer = handlers::command(&self.start, &self.settings, &event).await;
            self.output(
                function,
                &handlers::measures_of(answer.as_ref().map(|a| &a.handled)),
            );
            return match answer {
                Ok(answer) => Ok((200, serde_json::to_string(&answer).unwrap_or_default())),
                Err(e) => Ok((500, e.to_string())),
            };
        }
        let settings = &self.settings;
        let handled = match function {
            "start-deployment" => handlers::start_deployment(&self.start, settings, &event).await,
            "endpoint-events" => {
                handlers::endpoint_events(&self.endpoint_events, settings, &event).await
            }
            "bake-watcher" => handlers::bake_watcher(&self.bake_watcher, settings, &event).await,
            "rollback-notifier" => {
                handlers::rollback_notifier(
                    &self.notifier_store,
                    &self.pager,
                    &SystemClock,
                    &self.settings,
                    &event,
                )
                .await
            }
            // The sample hook, as its `main.rs` runs it: a payload it cannot read is the
            // runtime's error, as Lambda reports it.
            "hook-green-ready" => {
                let payload: hook_green_ready::Payload =
                    serde_json::from_value(event).map_err(|e| e.to_string())?;
                let answer = hook_green_ready::check(&self.hook_sagemaker, &payload).await;
                return Ok((200, serde_json::to_string(&answer).unwrap_or_default()));
            }
            other => return Err(format!("no function {other}")),
        };
        self.output(function, &handlers::measures_of(handled.as_ref()));
        match handled {
            Ok(h) => Ok((200, serde_json::to_string(&h).unwrap_or_default())),
            Err(e) => Ok((500, e.to_string())),
        }
    }
}

/// The local stack with the functions running on it.
#[allow(missing_debug_implementations)]
pub struct Flow {
    pub stack: LocalStack,
    /// The local administrator's clients (what a person or a pipeline uses).
    pub admin: Clients,
    pub wired: Wired,
    router: tokio::task::JoinHandle<()>,
}

impl Drop for Flow {
    fn drop(&mut self) {
        self.router.abort();
    }
}

/// The local operator's keys.
pub const OPERATOR: (&str, &str) = (
    guardrails_local::iam::OPERATOR_ACCESS_KEY,
    guardrails_local::iam::OPERATOR_SECRET_KEY,
);

/// The functions' settings as the local stack's template parameters give them (the account,
/// the operator allowed every command): `guardrails_local::stack::function_env`.
pub fn local_settings() -> Settings {
    let env: std::collections::BTreeMap<_, _> = guardrails_local::stack::function_env()
        .into_iter()
        .collect();
    guardrails::aws::wiring::event_settings_from(|name| env.get(name).cloned())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// How often the sweep runs here (60 s on AWS).
const SWEEP: Duration = Duration::from_secs(2);
/// The longest a story may take before it is called stuck.
pub const STORY_LIMIT: Duration = Duration::from_secs(90);

impl Flow {
    /// Starts the stack authorizing with `template`'s roles, wires it, and runs the functions.
    pub async fn start(template: &Path) -> Flow {
        let config = guardrails_local::Config {
            delays: guardrails_local::sagemaker::Delays {
                create_ms: 600,
                update_ms: 1_200,
                weights_ms: 300,
            },
            tick: Duration::from_millis(100),
            ..guardrails_local::Config::default()
        };
        let stack = LocalStack::start_with(config, template)
            .await
            .unwrap_or_else(|e| panic!("cannot start the local stack: {e}"));
        let admin = Clients::new(&stack);
        let text = std::fs::read_to_string(template).unwrap_or_default();
        let wired = wiring::provision(&stack.sdk_config(), &text)
            .await
            .unwrap_or_else(|e| panic!("cannot wire the local stack: {e}"));
        let local = template::Names::local();
        let names = Names {
            table: wired.table.clone(),
            event_bus: "default".to_owned(),
            schedule_group: "default".to_owned(),
            wake_target_arn: local
                .attributes
                .get(&("BakeWatcherFunction".to_owned(), "Arn".to_owned()))
                .cloned(),
            scheduler_role_arn: local
                .attributes
                .get(&("SchedulerRole".to_owned(), "Arn".to_owned()))
                .cloned(),
            topic_arn: Some(wired.topic_arn.clone()),
        };
        let driver = |function: &str| {
            driver_with(&stack.function_sdk_config(function), &names)
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let notifier = stack.function_sdk_config("rollback-notifier");
        let invoker = InProcess {
            start: driver("start-deployment"),
            endpoint_events: driver("endpoint-events"),
            bake_watcher: driver("bake-watcher"),
            notifier_store: store_with(&notifier, &names),
            pager: pager_with(&notifier, &names).unwrap_or_else(|e| panic!("{e}")),
            hook_sagemaker: aws_sdk_sagemaker::Client::new(
                &stack.function_sdk_config("hook-green-ready"),
            ),
            settings: Settings {
                package_targets: Arc::new(ParameterTargets::new(
                    aws_sdk_ssm::Client::new(&stack.function_sdk_config("start-deployment")),
                    PACKAGE_TARGETS_PATH,
                )),
                model_role_arn: local.parameters.get("ModelRoleArn").cloned(),
                table: wired.table.clone(),
                ..local_settings()
            },
            emulator: stack.emulator.emulator.clone(),
        };
        let invoker: Arc<dyn Invoker> = Arc::new(invoker);
        stack.emulator.serve_functions(invoker.clone());
        let router = tokio::spawn(wiring::route(
            stack.sdk_config(),
            wired.clone(),
            invoker,
            SWEEP,
        ));
        Flow {
            stack,
            admin,
            wired,
            router,
        }
    }

    /// Sends a command to the function URL, signed as the holder of `key` (`iam::*_ACCESS_KEY`);
    /// the HTTP status and the JSON answer.
    pub async fn command_as(&self, key: (&str, &str), body: &Value) -> (u16, Value) {
        let url = guardrails_local::lambda::url_of(&self.stack.emulator.url(), "start-deployment");
        let (status, text) = guardrails_local::lambda::call(&url, key.0, key.1, &body.to_string())
            .await
            .unwrap_or_else(|e| panic!("function URL: {e}"));
        let answer = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, answer)
    }

    /// A command from the local operator (allowed everything by the local stack's template
    /// parameters), which must be accepted: `{"command": "deploy", ...}`.
    pub async fn command(&self, body: &Value) -> Value {
        let (status, answer) = self.command_as(OPERATOR, body).await;
        assert_eq!(status, 200, "the command was refused: {answer}");
        answer
    }

    /// Deploys as the operator: `request` is the body of a `deploy` command. A refusal is
    /// answered (4xx) and published; the answer is returned either way.
    pub async fn deploy(&self, request: &Value) -> (u16, Value) {
        let mut body = request.clone();
        body["command"] = Value::from("deploy");
        self.command_as(OPERATOR, &body).await
    }

    /// Puts an event on the default bus as the administrator.
    pub async fn send(&self, detail_type: &str, detail: &Value) {
        let entry = PutEventsRequestEntry::builder()
            .source("guardrails")
            .detail_type(detail_type)
            .detail(detail.to_string())
            .build();
        let out = self
            .admin
            .eventbridge
            .put_events()
            .entries(entry)
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutEvents: {e:?}"));
        assert_eq!(out.failed_entry_count(), 0, "EventBridge refused the event");
    }

    /// Our events (state changes and refusals) as they arrive, oldest first, for `within`.
    pub async fn events(&self, within: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + within;
        let mut events = Vec::new();
        while tokio::time::Instant::now() < deadline {
            let Ok(out) = self
                .admin
                .sqs
                .receive_message()
                .queue_url(&self.wired.timeline_queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
            else {
                continue;
            };
            if out.messages().is_empty() && !events.is_empty() {
                break;
            }
            for m in out.messages() {
                if let Ok(v) = serde_json::from_str::<Value>(m.body().unwrap_or("{}")) {
                    events.push(v);
                }
                if let Some(handle) = m.receipt_handle() {
                    let _ = self
                        .admin
                        .sqs
                        .delete_message()
                        .queue_url(&self.wired.timeline_queue_url)
                        .receipt_handle(handle)
                        .send()
                        .await;
                }
            }
        }
        events
    }

    /// Waits for the event `pick` accepts (reading our events as they come); every event read
    /// on the way is kept in `seen`.
    pub async fn until(&self, seen: &mut Vec<Value>, pick: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + STORY_LIMIT;
        loop {
            if let Some(found) = seen.iter().find(|e| pick(e)) {
                return found.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "not within {STORY_LIMIT:?}; events so far: {seen:#?}"
            );
            seen.extend(self.events(Duration::from_secs(1)).await);
        }
    }

    /// The final event of deployment `id`.
    pub async fn outcome(&self, seen: &mut Vec<Value>, id: &str) -> Value {
        self.until(seen, |e| {
            e["detail"]["deploymentId"] == id && !e["detail"]["outcome"].is_null()
        })
        .await
    }

    /// The pages on-call receives for an outcome just published: waits for the first (at
    /// most `STORY_LIMIT`), then a little longer for any duplicate. `(subject, message)`.
    pub async fn pages(&self) -> Vec<(String, String)> {
        let deadline = tokio::time::Instant::now() + STORY_LIMIT;
        let mut pages = Vec::new();
        let mut quiet = 0;
        while quiet < 2 && tokio::time::Instant::now() < deadline {
            let out = self
                .admin
                .sqs
                .receive_message()
                .queue_url(&self.wired.pages_queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap_or_else(|e| panic!("ReceiveMessage: {e:?}"));
            if out.messages().is_empty() && !pages.is_empty() {
                quiet += 1;
            }
            for m in out.messages() {
                let envelope: Value =
                    serde_json::from_str(m.body().unwrap_or("{}")).unwrap_or_default();
                pages.push((
                    envelope["Subject"].as_str().unwrap_or("").to_owned(),
                    envelope["Message"].as_str().unwrap_or("").to_owned(),
                ));
                if let Some(handle) = m.receipt_handle() {
                    let _ = self
                        .admin
                        .sqs
                        .delete_message()
                        .queue_url(&self.wired.pages_queue_url)
                        .receipt_handle(handle)
                        .send()
                        .await;
                }
            }
        }
        pages
    }
}
