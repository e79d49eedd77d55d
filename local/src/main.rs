//! `guardrails-local up`: starts the local AWS stack (moto and the SageMaker/CloudWatch
//! emulator) on free 127.0.0.1 ports, prints the environment that points the AWS SDK at it
//! (and writes it to a file to `source`), and stops everything on Ctrl-C or SIGTERM.

use std::process::ExitCode;

use guardrails_local::Config;
use guardrails_local::stack::LocalStack;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env_file = match args.as_slice() {
        [up] if up == "up" => None,
        [up, flag, path] if up == "up" && flag == "--env-file" => Some(path.clone()),
        _ => {
            eprintln!("usage: guardrails-local up [--env-file PATH]");
            return ExitCode::from(2);
        }
    };
    let stack = match LocalStack::start(Config::default()).await {
        Ok(stack) => stack,
        Err(e) => {
            eprintln!("guardrails-local: {e}");
            return ExitCode::FAILURE;
        }
    };
    let exports: String = stack
        .env()
        .iter()
        .map(|(k, v)| format!("export {k}={v}\n"))
        .collect();
    print!("{exports}");
    if let Some(path) = env_file
        && let Err(e) = std::fs::write(&path, &exports)
    {
        eprintln!("guardrails-local: cannot write {path}: {e}");
        return ExitCode::FAILURE;
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
