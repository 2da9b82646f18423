//! The `auth-api` binary: parse the command line and run a subcommand.

use auth_api::cli::{Cli, run};
use auth_api::telemetry;
use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // A missing .env is fine; a malformed one is reported by clap through the variables.
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    telemetry::init(&cli.config.log_format);
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("auth-api: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
