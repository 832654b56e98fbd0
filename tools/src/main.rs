//! `parapet`: build Parapet images and boot scenarios on QEMU.
#![deny(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use parapet_tools::{transcript, UpOptions, DEFAULT_SCENARIO, DEFAULT_TIMEOUT_SECS};

/// Build Parapet images and boot scenarios on QEMU.
#[derive(Parser)]
#[command(name = "parapet", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the hypervisor and every image the scenario names (release profile).
    Build {
        /// The scenario file.
        #[arg(default_value = DEFAULT_SCENARIO)]
        scenario: PathBuf,
    },
    /// Build, boot the scenario on QEMU and stream the consoles.
    ///
    /// Exit status: 0 when every domain ended well, 1 when a domain crashed or
    /// exited non-zero, 2 on a hypervisor panic or QEMU error, 3 on timeout.
    Up {
        /// The scenario file.
        #[arg(default_value = DEFAULT_SCENARIO)]
        scenario: PathBuf,
        /// Kill QEMU after this many seconds (0: never).
        #[arg(long, value_name = "SECS", default_value_t = DEFAULT_TIMEOUT_SECS)]
        timeout: u64,
        /// Do not build; use the images already built.
        #[arg(long)]
        no_build: bool,
    },
    /// Check the prerequisites (QEMU, Rust targets) and print what was found.
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Build { scenario } => match parapet_tools::build(&scenario) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
        Cmd::Up {
            scenario,
            timeout,
            no_build,
        } => {
            let opts = UpOptions {
                scenario,
                timeout: (timeout > 0).then(|| Duration::from_secs(timeout)),
                no_build,
            };
            match parapet_tools::up(&opts) {
                Ok(outcome) => {
                    for line in &outcome.summary {
                        eprintln!("parapet: {line}");
                    }
                    ExitCode::from(outcome.exit_code as u8)
                }
                Err(e) => fail(&e),
            }
        }
        Cmd::Check => match parapet_tools::check() {
            Ok(lines) => {
                lines.iter().for_each(|l| println!("{l}"));
                ExitCode::SUCCESS
            }
            Err(lines) => {
                lines.iter().for_each(|l| println!("{l}"));
                ExitCode::from(transcript::EXIT_PLATFORM as u8)
            }
        },
    }
}

fn fail(e: &parapet_tools::Error) -> ExitCode {
    eprintln!("parapet: error: {e}");
    ExitCode::from(transcript::EXIT_PLATFORM as u8)
}
