//! `ringway-load`: parse the command line, run or serve, print the result.

use std::process::ExitCode;

use clap::Parser;
use ringway_load::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Every connection is a descriptor: thousands of them need more than the default
    // soft limit of 1024 (ringway does the same at start).
    if let Err(e) = ringway::process::raise_nofile_limit() {
        eprintln!("ringway-load: {e}");
    }
    match cli.command {
        Command::Run(args) => {
            let outputs = args.outputs();
            let result = args.into_params().and_then(ringway_load::run::run);
            match result {
                Ok(result) => {
                    print!("{}", ringway_load::report::summary(&result));
                    match outputs.write(&result) {
                        Ok(()) => ExitCode::SUCCESS,
                        Err(e) => {
                            eprintln!("ringway-load: {e}");
                            ExitCode::FAILURE
                        }
                    }
                }
                Err(e) => {
                    eprintln!("ringway-load: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Compare(args) => match ringway_load::compare::compare(*args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ringway-load compare: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Forward(args) => match ringway_load::forward::run(args.listen, args.upstream) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ringway-load forward: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Serve(args) => match ringway_load::serve::start(args.into_options()) {
            Ok(server) => {
                if let Some(note) = &server.note {
                    eprintln!("ringway-load serve: {note}");
                }
                eprintln!(
                    "ringway-load serve: listening on {} ({} workers, {})",
                    server.addr,
                    server.workers.len(),
                    server.driver
                );
                for worker in server.workers {
                    let _ = worker.join();
                }
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("ringway-load serve: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
