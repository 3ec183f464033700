//! The `wraith` command: gh-ost's command line, plus `wraith demo`.

use std::io::BufRead;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;
use wraith::cli::{self, Extra};
use wraith::{config, demo, migration};

fn main() -> ExitCode {
    let parsed = match cli::parse(std::env::args()) {
        Ok(p) => p,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    if parsed.flags.check_flag {
        return ExitCode::SUCCESS;
    }
    init_logging(&parsed.flags);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cancel = CancellationToken::new();
    {
        let cancel = cancel.clone();
        runtime.spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::warn!("interrupted: stopping and cleaning up");
                cancel.cancel();
            }
        });
    }
    let result = match parsed.flags.command.clone() {
        Some(Extra::Demo(args)) => runtime
            .block_on(demo::run(args, cancel))
            .map_err(|e| format!("{e:#}")),
        None => match config::build(parsed, read_password) {
            Err(e) => Err(e.to_string()),
            Ok(cfg) => runtime
                .block_on(migration::run(&cfg, cancel))
                .map(|_| ())
                .map_err(|failed| {
                    eprintln!("{}", failed.aftermath());
                    failed.error.to_string()
                }),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `--ask-pass`: from the terminal without echo, or a line of standard input when there is none.
fn read_password() -> std::io::Result<String> {
    match rpassword::prompt_password("Password: ") {
        Ok(p) => Ok(p),
        Err(_) => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            Ok(line.trim_end_matches(['\r', '\n']).to_string())
        }
    }
}

fn init_logging(flags: &cli::Flags) {
    let level = if flags.debug {
        "debug"
    } else if flags.quiet {
        "warn"
    } else {
        "info"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("WRAITH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("wraith={level},warn")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
