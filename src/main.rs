//! Thin entry point: parse the command line, start logging, hand over to `cli`.

use clap::Parser;

fn main() {
    let cli = scimwatch::cli::Cli::parse();
    let level = match cli.command {
        scimwatch::cli::Command::Run => "info",
        #[cfg(feature = "sim")]
        scimwatch::cli::Command::Sim { .. } => "info",
        // The demo narrates what the daemon finds; its own log lines would say it twice.
        #[cfg(feature = "sim")]
        scimwatch::cli::Command::Demo { .. } => "warn,scimwatch::daemon=off",
        _ => "warn",
    };
    let format = match cli.log_format {
        Some(f) => f.into(),
        None if cli.command.reads_config() => {
            scimwatch::config::peek_log_format(cli.config.as_deref())
        }
        None => scimwatch::config::LogFormat::Text,
    };
    scimwatch::telemetry::init(level, format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("scimwatch: cannot start the async runtime: {e}");
            std::process::exit(2);
        }
    };
    let code = runtime.block_on(scimwatch::cli::main(cli));
    // Do not wait for background tasks (a simulator in the demo) to wind down.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    std::process::exit(code);
}
