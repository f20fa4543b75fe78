//! The `hearth` command line: `serve`, `demo`, `keygen`, `admin …`. Errors end the process with a
//! one-line reason and a non-zero status (in `main`).

/// `println!` for the command line's output: a reader that stopped reading (`| head`, `| grep -q`)
/// ends the command quietly with the status a pipe's writer gets from SIGPIPE (128 + 13), where
/// `println!` panics with a backtrace.
macro_rules! outln {
    ($($arg:tt)*) => { $crate::cli::write_line(format_args!($($arg)*)) };
}

pub mod admin;
pub mod demo;
pub mod serve;
pub mod store_copy;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Hearth, the federation-aware account daemon.
#[derive(Debug, Parser)]
#[command(name = "hearth", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one cluster's daemon.
    Serve {
        /// The TOML config file.
        #[arg(long)]
        config: PathBuf,
        /// Log as JSON lines instead of text (overrides log.format).
        #[arg(long)]
        json_logs: bool,
    },
    /// Start a local three-cluster federation (aaaaa, bbbbb, ccccc) and keep it running until Ctrl-C.
    Demo {
        /// Where to keep the clusters' data (default: a fresh temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Start, print, check and stop again instead of running until Ctrl-C.
        #[arg(long)]
        once: bool,
    },
    /// Write a new signing key (mode 0600) and print its public key as the last line.
    Keygen {
        /// The key file to write.
        #[arg(long)]
        out: PathBuf,
        /// Replace an existing key file.
        #[arg(long)]
        force: bool,
    },
    /// Administrative commands against a running cluster.
    Admin {
        /// The command.
        #[command(subcommand)]
        command: admin::AdminCommand,
    },
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config, json_logs } => serve::serve(&config, json_logs).await,
        Command::Demo { dir, once } => demo::demo(dir, once).await,
        Command::Keygen { out, force } => keygen(&out, force),
        Command::Admin { command } => admin::run(command).await,
    }
}

fn keygen(out: &std::path::Path, force: bool) -> anyhow::Result<()> {
    if out.exists() && !force {
        anyhow::bail!("{} exists; pass --force to replace it", out.display());
    }
    let key = crate::federation::signing_key::generate();
    crate::federation::signing_key::write(out, &key)?;
    outln!("wrote {}", out.display());
    outln!("{}", key.public());
    Ok(())
}

/// Writes one line of output (see `outln!`).
pub(crate) fn write_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("hearth: writing the output failed: {e}");
        std::process::exit(1);
    }
}
