//! `procuhelp-server`: the ProcuHelp product assembled. Run `procuhelp-server --help`.
#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = procuhelp_server::cli::Cli::parse();
    // Outside the runtime: the trace exporter's client blocks, on its own thread.
    let telemetry =
        match procuhelp_server::logging::init(cli.log_level.as_deref(), cli.command.otlp()) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {e:#}");
                return std::process::ExitCode::FAILURE;
            }
        };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(procuhelp_server::run(cli));
    drop(runtime);
    // The last spans are exported before the process exits.
    drop(telemetry);
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the whole cause chain on one line; no secret is ever part of it.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
