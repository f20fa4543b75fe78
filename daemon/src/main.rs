//! The `hearth` binary: parses the command line and reports any error as one line.

use clap::Parser;

#[tokio::main]
async fn main() {
    hearth::install_crypto_provider();
    let cli = hearth::cli::Cli::parse();
    if let Err(e) = hearth::cli::run(cli).await {
        eprintln!("hearth: {e:#}");
        std::process::exit(1);
    }
}
