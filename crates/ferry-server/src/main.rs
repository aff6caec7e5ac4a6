//! The `ferry` binary: parses the command line and runs it. Built with the default features it
//! has `ferry dev`; the production build (`--no-default-features`) has `serve` and `ticket` only.

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

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    #[test]
    fn dev_command_only_with_the_dev_feature() {
        let dev = ferry_server::cli::Cli::try_parse_from(["ferry", "dev", "--listen", "127.0.0.1:0"]);
        assert_eq!(dev.is_ok(), cfg!(feature = "dev"), "{dev:?}");
        let serve = ferry_server::cli::Cli::try_parse_from(["ferry", "serve"]);
        assert!(serve.is_ok(), "{serve:?}");
    }
}
