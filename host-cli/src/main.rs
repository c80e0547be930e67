//! `host-cli`: parse → run → exit code (0 accepted, 1 refused, 2 error).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match host_cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version are successes; every other parse error is a
            // usage error (exit 2, as documented).
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(host_cli::EXIT_ERROR)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    host_cli::run(cli)
}
