//! `guardrails`: check a deployment policy and show the plan (the dry run) of rolling a new
//! model out to an endpoint under it. Reads files and prints; it calls no AWS API.

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

fn read_policy(path: &PathBuf) -> Result<Policy, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    Policy::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}
