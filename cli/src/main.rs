//! `guardrails`: check a deployment policy and show the plan (the dry run) of rolling a new
//! model out to an endpoint under it (offline: reads files and prints), and look at and
//! redrive the failed events of a running Guardrails (`failed-events`, through the standard
//! AWS credential chain).

mod failed_events;

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
            print!("{output}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<String, String> {
    match command {
        Command::FailedEvents(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the runtime: {e}"))?
            .block_on(failed(args)),
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
