//! The `ferry` binary: parses the command line and runs it.

use clap::Parser as _;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = ferry_server::cli::Cli::parse();
    match ferry_server::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ferry: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
