//! The `hearth-bench` binary: the command line, and what [`hearth_bench::run`] reports on stdout.

use clap::Parser as _;

#[tokio::main]
async fn main() {
    let cli = hearth_bench::Cli::parse();
    match hearth_bench::run(cli).await {
        Ok(report) => print!("{report}"),
        Err(e) => {
            eprintln!("hearth-bench: {e:#}");
            std::process::exit(1);
        }
    }
}
