//! `guardrails-local up`: starts the local AWS stack (moto and the SageMaker/CloudWatch
//! emulator) on free 127.0.0.1 ports, wires it like the SAM template wires AWS (table, pages
//! topic, EventBridge rules from `infra/template.yaml` into queues), prints the environment
//! that points the AWS SDK and the functions at it (and writes it as KEY=VALUE lines, the form
//! `cargo lambda watch --env-file` reads), and, with `--lambda`, delivers events, due wake-ups
//! and the sweep to the functions under `cargo lambda watch`. Ctrl-C or SIGTERM stops it all.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use guardrails_local::stack::LocalStack;
use guardrails_local::{Config, wiring};

const USAGE: &str = "usage: guardrails-local up [--env-file PATH] [--lambda http://127.0.0.1:9000] \
                     [--sweep-secs 60] [--template PATH (default: the repository's infra/template.yaml)]";

struct Options {
    env_file: Option<String>,
    lambda: Option<String>,
    sweep_secs: u64,
    template: String,
}

fn options() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some("up") {
        return Err(USAGE.to_owned());
    }
    let mut options = Options {
        env_file: None,
        lambda: None,
        sweep_secs: 60,
        template: guardrails_local::stack::default_template()
            .display()
            .to_string(),
    };
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--env-file" => options.env_file = Some(value),
            "--lambda" => options.lambda = Some(value),
            "--sweep-secs" => {
                options.sweep_secs = value
                    .parse()
                    .map_err(|_| format!("--sweep-secs {value:?}: not a number"))?;
            }
            "--template" => options.template = value,
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let template = match std::fs::read_to_string(&options.template) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("guardrails-local: cannot read {}: {e}", options.template);
            return ExitCode::FAILURE;
        }
    };
    let stack = match LocalStack::start_with(Config::default(), Path::new(&options.template)).await
    {
        Ok(stack) => stack,
        Err(e) => {
            eprintln!("guardrails-local: {e}");
            return ExitCode::FAILURE;
        }
    };
    let sdk = stack.sdk_config();
    let wired = match wiring::provision(&sdk, &template).await {
        Ok(wired) => wired,
        Err(e) => {
            eprintln!("guardrails-local: {e}");
            return ExitCode::FAILURE;
        }
    };
    let names = guardrails_local::iam::template::Names::local();
    let mut env: Vec<(&str, String)> = stack.env();
    env.extend(guardrails_local::stack::function_env());
    env.extend([
        ("GUARDRAILS_TABLE", wired.table.clone()),
        ("GUARDRAILS_TOPIC_ARN", wired.topic_arn.clone()),
        (
            "GUARDRAILS_WAKE_TARGET_ARN",
            names.attributes[&("BakeWatcherFunction".to_owned(), "Arn".to_owned())].clone(),
        ),
        (
            "GUARDRAILS_SCHEDULER_ROLE_ARN",
            names.attributes[&("SchedulerRole".to_owned(), "Arn".to_owned())].clone(),
        ),
        (
            "GUARDRAILS_MODEL_ROLE_ARN",
            names.parameters["ModelRoleArn"].clone(),
        ),
        ("GUARDRAILS_PAGES_QUEUE_URL", wired.pages_queue_url.clone()),
        (
            "GUARDRAILS_COMMANDS_URL",
            guardrails_local::lambda::url_of(&stack.emulator.url(), "start-deployment"),
        ),
        (
            "GUARDRAILS_TIMELINE_QUEUE_URL",
            wired.timeline_queue_url.clone(),
        ),
    ]);
    let lines: String = env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    print!("{lines}");
    if let Some(path) = &options.env_file
        && let Err(e) = std::fs::write(path, &lines)
    {
        eprintln!("guardrails-local: cannot write {path}: {e}");
        return ExitCode::FAILURE;
    }
    if let Some(lambda) = options.lambda.clone() {
        let sweep = Duration::from_secs(options.sweep_secs.max(1));
        let functions = std::sync::Arc::new(wiring::Http(lambda));
        stack.emulator.serve_functions(functions.clone());
        tokio::spawn(wiring::route(sdk, wired, functions, sweep));
    }
    eprintln!("guardrails-local: running; Ctrl-C to stop");
    wait_for_stop().await;
    drop(stack);
    ExitCode::SUCCESS
}

async fn wait_for_stop() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
