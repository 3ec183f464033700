//! The `wraith` command: gh-ost's command line, plus `wraith demo`, `wraith completions <shell>`
//! and `wraith man`.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;
use std::sync::OnceLock;

use tokio_util::sync::CancellationToken;
use wraith::cli::{self, Extra, LogFormat};
use wraith::{config, demo, migration, priority};

/// The log format chosen by `--log-format`, for the lines written outside the log.
static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// The driver's setting: the largest packet buffer it keeps for reuse ([`bound_driver_buffers`]).
const BUFFER_SIZE_CAP: &str = "MYSQL_ASYNC_BUFFER_SIZE_CAP";

/// mysql_async keeps up to 128 of its packet buffers for reuse, each of up to 4 MiB unless told
/// otherwise: after enough large statements (the applier's are up to 4 MB) or binlog events, that
/// is hundreds of MiB held for nothing (a revert of a 480,000-row transaction peaked at 300 MiB,
/// 87 MiB of it in those buffers). A buffer larger than 64 KiB is freed when returned instead,
/// unless the user set the variable. Called first thing, before any thread starts: the pool reads
/// it once, when first used.
fn bound_driver_buffers() {
    if std::env::var_os(BUFFER_SIZE_CAP).is_none() {
        std::env::set_var(BUFFER_SIZE_CAP, (64 << 10).to_string());
    }
}

fn main() -> ExitCode {
    bound_driver_buffers();
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
    match &parsed.flags.command {
        Some(Extra::Completions { shell }) => {
            let mut command = <cli::Flags as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut command, "wraith", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Some(Extra::Man) => {
            let command = <cli::Flags as clap::CommandFactory>::command();
            return match clap_mangen::Man::new(command).render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: writing the manual page: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        _ => {}
    }
    init_logging(&parsed.flags);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            say(&format!("error: cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let cancel = CancellationToken::new();
    runtime.spawn(stop_on_signals(cancel.clone()));
    let result = match parsed.flags.command.clone() {
        Some(Extra::Demo(args)) => runtime
            .block_on(demo::run(args, cancel))
            .map_err(|e| format!("{e:#}")),
        Some(Extra::Completions { .. } | Extra::Man) => Ok(()),
        None => match config::build(parsed, read_password) {
            Err(e) => Err(e.to_string()),
            Ok(cfg) => runtime
                .block_on(async {
                    priority::lower(cfg.flags.cpu_nice);
                    migration::run(&cfg, cancel).await
                })
                .map(|_| ())
                .map_err(|failed| {
                    say(&failed.aftermath());
                    failed.error.to_string()
                }),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            say(&format!("error: {message}"));
            ExitCode::FAILURE
        }
    }
}

/// Writes a closing line to standard error: as it is in text, as a log event of level ERROR
/// with `--log-format=json` (every line is then one JSON object).
fn say(line: &str) {
    match FORMAT.get() {
        Some(LogFormat::Json) => tracing::error!("{line}"),
        _ => eprintln!("{line}"),
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
    let _ = FORMAT.set(flags.log_format);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match flags.log_format {
        LogFormat::Json => builder.json().with_ansi(false).init(),
        // Colour only where a person reads it: not in a file, a pipe or a log collector.
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

/// SIGINT (Ctrl-C), SIGTERM (systemd, Kubernetes, `timeout`) and SIGHUP (a closed terminal)
/// stop the run through `cancel`: it cleans up and says what the database holds. A second
/// signal exits at once; the closed connections make the server release any lock wraith held.
async fn stop_on_signals(cancel: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::warn!(
            "cannot listen for SIGINT, SIGTERM and SIGHUP: they stop wraith without cleanup"
        );
        return;
    };
    let mut received = 0;
    loop {
        let name = tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
            _ = hup.recv() => "SIGHUP",
        };
        received += 1;
        if received == 1 {
            tracing::warn!("{name}: stopping and cleaning up (a second signal exits at once)");
            cancel.cancel();
        } else {
            say(&format!(
                "error: {name} again: exiting at once without cleaning up; the server releases \
                 wraith's locks as its connections close, and helper tables (_<table>_gho, \
                 _<table>_ghc) may remain: drop them, or rerun with --initially-drop-ghost-table"
            ));
            std::process::exit(130);
        }
    }
}
