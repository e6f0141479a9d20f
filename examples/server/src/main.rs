//! `procuhelp-server`: the ProcuHelp product assembled. Run `procuhelp-server --help`.
#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = procuhelp_server::cli::Cli::parse();
    procuhelp_server::logging::init(cli.log_level.as_deref());
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(procuhelp_server::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the whole cause chain on one line; no secret is ever part of it.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
