//! `guardrails`: check a deployment policy and show the plan (the dry run) of rolling a new
//! model out to an endpoint under it (offline: reads files and prints); deploy, watch, approve
//! and abort through a running Guardrails' function URL (`operate`, `remote`); look at and
//! redrive its failed events (`failed-events`). Everything that talks to AWS uses the standard
//! credential chain.

mod chart;
mod failed_events;
mod operate;
mod remote;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use guardrails::plan::{Fleet, FleetVariant, GreenSpec, Plan};
use guardrails::policy::Policy;

#[derive(Debug, Parser)]
#[command(
    name = "guardrails",
    version,
    about = "Safe model rollouts for Amazon SageMaker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per run: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Check a policy (JSON or YAML) and report every problem at once.
    Validate {
        /// The policy file.
        policy: PathBuf,
    },
    /// Show the steps a deployment would take: the dry run.
    Plan(PlanArgs),
    /// List the events that failed every retry (the failed-events queue), or send them to
    /// their functions again with --redrive.
    FailedEvents(FailedEventsArgs),
    /// Plan (with the live preflight checks), then start a deployment; --wait follows it and
    /// exits 0 on success, 2 on rollback, 3 on failure, 1 on refusal.
    Deploy(DeployCommand),
    /// Every active deployment, or the endpoint's: step, green's share, bake left, alarms.
    Status {
        /// Only this endpoint's.
        endpoint: Option<String>,
        /// Redraw in place until no deployment is left.
        #[arg(long)]
        watch: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// The endpoint's past deployments, newest first.
    History {
        endpoint: String,
        /// How many (1 to 100).
        #[arg(long)]
        limit: Option<usize>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// One deployment: who asked, how it ended, and its audit trail as a timeline.
    Show {
        deployment: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Replay a past deployment under another policy's Guardrails.Analysis, on the counts kept
    /// with it: what that judge would have decided, and when.
    Backtest {
        deployment: String,
        /// The policy whose Guardrails.Analysis is replayed (JSON or YAML).
        #[arg(long)]
        policy: PathBuf,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Write one deployment's timeline chart (green's share, each variant's errors and
    /// latency, alarm bands, every transition) as a self-contained HTML page.
    Report {
        deployment: String,
        /// The HTML file to write.
        #[arg(long)]
        html: PathBuf,
        /// The metrics' period in seconds [default: from the deployment's length and age].
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..=86_400))]
        period: Option<i32>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Approve the endpoint's deployment waiting before its last shift.
    Approve {
        endpoint: String,
        /// The deployment meant (refused if another is active).
        #[arg(long)]
        deployment_id: Option<String>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Abort the endpoint's deployment: it rolls back.
    Abort {
        endpoint: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        deployment_id: Option<String>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

/// Where a running Guardrails is, and as whom to talk to it.
#[derive(Debug, Args)]
struct RemoteArgs {
    /// The commands URL (the stack's CommandsUrl output) [env: GUARDRAILS_COMMANDS_URL].
    #[arg(long)]
    url: Option<String>,
    /// The AWS profile [default: the standard credential chain's].
    #[arg(long)]
    profile: Option<String>,
    /// The AWS Region [default: the profile's or AWS_REGION].
    #[arg(long)]
    region: Option<String>,
    /// `text` for people, `json` (the answer as Guardrails gives it) for scripts.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    output: String,
}

#[derive(Debug, Args)]
struct DeployCommand {
    /// The endpoint to deploy to.
    #[arg(long)]
    endpoint: String,
    /// The new model (or, with --model-package, the name to create it under).
    #[arg(long)]
    model: Option<String>,
    /// A model package version to deploy (it must be Approved).
    #[arg(long)]
    model_package: Option<String>,
    /// The policy file (JSON or YAML).
    #[arg(long)]
    policy: PathBuf,
    /// Green's instance type [default: blue's].
    #[arg(long)]
    instance_type: Option<String>,
    /// Green's instances at full traffic [default: blue's].
    #[arg(long)]
    instances: Option<u32>,
    /// The deployment's id [default: derived from the request].
    #[arg(long)]
    deployment_id: Option<String>,
    /// Show the plan and the preflight checks; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Do not ask before starting.
    #[arg(long)]
    yes: bool,
    /// Follow the deployment to its end; the exit status says how it ended.
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    remote: RemoteArgs,
}

#[derive(Debug, Args)]
struct FailedEventsArgs {
    /// The queue (the stack's FailedEventsQueueUrl output).
    #[arg(long, env = "GUARDRAILS_FAILED_EVENTS_QUEUE_URL")]
    queue_url: String,
    /// Invoke each event's function with it again; delete the events it took.
    #[arg(long)]
    redrive: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// The AWS profile to use [default: the standard credential chain's].
    #[arg(long)]
    profile: Option<String>,
    /// The AWS Region [default: the profile's or AWS_REGION].
    #[arg(long)]
    region: Option<String>,
}

#[derive(Debug, Args)]
struct PlanArgs {
    /// The policy file (JSON or YAML).
    #[arg(long)]
    policy: PathBuf,
    /// The endpoint to deploy to.
    #[arg(long)]
    endpoint: String,
    /// The endpoint config it serves now (blue).
    #[arg(long)]
    config: String,
    /// Blue's production variant.
    #[arg(long, default_value = "AllTraffic")]
    variant: String,
    /// Blue's instance type.
    #[arg(long)]
    instance_type: String,
    /// Blue's instance count.
    #[arg(long)]
    instances: u32,
    /// The new model (green).
    #[arg(long)]
    model: String,
    /// Green's variant name [default: blue's for the native engine, else the model name].
    #[arg(long)]
    green_variant: Option<String>,
    /// Green's instance type [default: blue's].
    #[arg(long)]
    green_instance_type: Option<String>,
    /// Green's instance count at full traffic [default: blue's].
    #[arg(long)]
    green_instances: Option<u32>,
    /// The id the deployment would get; it names the configs and alarms Guardrails creates.
    #[arg(long, default_value = "dry-run")]
    deployment_id: String,
    /// Print the plan as JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(output) => {
            print!("{}", output.text);
            ExitCode::from(output.code)
        }
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

/// Now, in epoch milliseconds: the report reads up to it.
#[allow(
    clippy::disallowed_methods,
    reason = "the command reads the clock of the person using it"
)]
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

async fn connect(r: &RemoteArgs) -> Result<remote::Remote, String> {
    remote::Remote::new(r.url.clone(), r.profile.as_deref(), r.region.as_deref()).await
}

/// The subcommands that talk to a running Guardrails.
async fn operate_on(command: Command) -> Result<operate::Output, String> {
    match command {
        Command::Deploy(d) => {
            let policy_text = std::fs::read_to_string(&d.policy)
                .map_err(|e| format!("{}: cannot read: {e}", d.policy.display()))?;
            let remote = connect(&d.remote).await?;
            let args = operate::DeployArgs {
                endpoint: d.endpoint,
                model: d.model,
                package: d.model_package,
                policy_text,
                instance_type: d.instance_type,
                instance_count: d.instances,
                deployment_id: d.deployment_id,
                dry_run: d.dry_run,
                yes: d.yes,
                wait: d.wait,
                json: d.remote.output == "json",
            };
            operate::deploy(&remote, &args).await
        }
        Command::Status {
            endpoint,
            watch,
            remote,
        } => {
            let json = remote.output == "json";
            operate::status(&connect(&remote).await?, endpoint.as_deref(), watch, json).await
        }
        Command::History {
            endpoint,
            limit,
            remote,
        } => {
            let json = remote.output == "json";
            operate::history(&connect(&remote).await?, &endpoint, limit, json).await
        }
        Command::Show { deployment, remote } => {
            let json = remote.output == "json";
            operate::show(&connect(&remote).await?, &deployment, json).await
        }
        Command::Backtest {
            deployment,
            policy,
            remote,
        } => {
            let json = remote.output == "json";
            let policy = read_policy(&policy)?;
            operate::backtest(&connect(&remote).await?, &deployment, &policy, json).await
        }
        Command::Report {
            deployment,
            html,
            period,
            remote,
        } => {
            let r = connect(&remote).await?;
            let config =
                remote::sdk_config(remote.profile.as_deref(), remote.region.as_deref()).await;
            let cloudwatch = aws_sdk_cloudwatch::Client::new(&config);
            let report = report::read(&r, &cloudwatch, &deployment, period, now_ms()).await?;
            std::fs::write(&html, chart::html(&report))
                .map_err(|e| format!("{}: cannot write: {e}", html.display()))?;
            Ok(operate::Output {
                text: format!("{}: report of {deployment} written\n", html.display()),
                code: 0,
            })
        }
        Command::Approve {
            endpoint,
            deployment_id,
            remote,
        } => {
            let r = connect(&remote).await?;
            operate::person(&r, "approve", &endpoint, deployment_id.as_deref(), None).await
        }
        Command::Abort {
            endpoint,
            reason,
            deployment_id,
            remote,
        } => {
            let r = connect(&remote).await?;
            operate::person(
                &r,
                "abort",
                &endpoint,
                deployment_id.as_deref(),
                Some(&reason),
            )
            .await
        }
        other => offline(other).map(|text| operate::Output { text, code: 0 }),
    }
}

fn run(command: Command) -> Result<operate::Output, String> {
    match command {
        Command::Validate { .. } | Command::Plan(_) => {
            offline(command).map(|text| operate::Output { text, code: 0 })
        }
        Command::FailedEvents(args) => runtime()?
            .block_on(failed(args))
            .map(|text| operate::Output { text, code: 0 }),
        remote => runtime()?.block_on(operate_on(remote)),
    }
}

/// The subcommands that read files only.
fn offline(command: Command) -> Result<String, String> {
    match command {
        Command::FailedEvents(_)
        | Command::Deploy(_)
        | Command::Status { .. }
        | Command::History { .. }
        | Command::Show { .. }
        | Command::Report { .. }
        | Command::Backtest { .. }
        | Command::Approve { .. }
        | Command::Abort { .. } => Err("this subcommand talks to a running Guardrails".to_owned()),
        Command::Validate { policy } => {
            read_policy(&policy)?;
            Ok(format!("{}: valid\n", policy.display()))
        }
        Command::Plan(args) => {
            let policy = read_policy(&args.policy)?;
            let fleet = Fleet {
                endpoint_name: args.endpoint,
                config_name: args.config,
                variants: vec![FleetVariant {
                    variant_name: args.variant,
                    model_name: String::new(),
                    instance_type: args.instance_type.clone(),
                    instance_count: args.instances,
                }],
            };
            let instance_type = args
                .green_instance_type
                .unwrap_or_else(|| args.instance_type.clone());
            let (engine, _) = guardrails::plan::engine_for(&policy, &fleet, &instance_type);
            let green = GreenSpec {
                variant_name: args.green_variant.unwrap_or_else(|| {
                    guardrails::plan::default_green_variant(
                        engine,
                        fleet.variants.first(),
                        &args.model,
                    )
                }),
                model_name: args.model,
                instance_type,
                instance_count: args.green_instances.unwrap_or(args.instances),
            };
            let plan = Plan::new(&args.deployment_id, &policy, &fleet, &green)
                .map_err(|e| e.to_string())?;
            if args.json {
                serde_json::to_string_pretty(&plan)
                    .map(|json| json + "\n")
                    .map_err(|e| format!("cannot write the plan as JSON: {e}"))
            } else {
                Ok(plan.to_string())
            }
        }
    }
}

async fn failed(args: FailedEventsArgs) -> Result<String, String> {
    let (sqs, lambda) =
        failed_events::clients(args.profile.as_deref(), args.region.as_deref()).await;
    if !args.redrive {
        let (events, unreadable) = failed_events::list(&sqs, &args.queue_url).await?;
        let events: Vec<_> = events.into_iter().map(|(e, _)| e).collect();
        return Ok(failed_events::render(&events, &unreadable, args.json));
    }
    let (done, unreadable) = failed_events::redrive(&sqs, &lambda, &args.queue_url).await?;
    let failed = done.iter().filter(|r| r.failed.is_some()).count();
    if args.json {
        let list: Vec<serde_json::Value> = done
            .iter()
            .map(|r| {
                serde_json::json!({
                    "messageId": r.event.message_id, "function": r.event.function,
                    "redriven": r.failed.is_none(), "error": r.failed,
                })
            })
            .collect();
        let out = serde_json::json!({ "redriven": list, "unreadable": unreadable });
        let text = serde_json::to_string_pretty(&out).unwrap_or_default() + "\n";
        return if failed == 0 { Ok(text) } else { Err(text) };
    }
    let mut out = String::new();
    for r in &done {
        let name = failed_events::function_name(&r.event.function);
        match &r.failed {
            None => out.push_str(&format!("{}  {name}  redriven\n", r.event.message_id)),
            Some(e) => out.push_str(&format!(
                "{}  {name}  still failing: {e}\n",
                r.event.message_id
            )),
        }
    }
    for u in &unreadable {
        out.push_str(&format!("unreadable (left in the queue): {u}\n"));
    }
    out.push_str(&format!(
        "{} redriven, {failed} still failing (left in the queue)\n",
        done.len() - failed
    ));
    if failed == 0 { Ok(out) } else { Err(out) }
}

fn read_policy(path: &PathBuf) -> Result<Policy, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    Policy::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}
