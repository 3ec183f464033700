//! gh-ost's interactive commands, parsed.
//!
//! In: one line as an operator typed it (`chunk-size=250`, `max-load=?`, `unpostpone=orders`).
//! Out: a [`Command`], or why the line is not one. Invariant: pure; nothing is changed here
//! (see [`super::Controls::execute`]).

use super::knobs::Knob;

/// One interactive command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    /// `sup`: the status line.
    Sup,
    /// `status` / `info`: the settings and the status line.
    Status,
    /// The binlog coordinates the streamer has reached.
    Coordinates,
    /// The server the changes are written to.
    Applier,
    /// The server whose binlog is read.
    Inspector,
    /// `name=?`.
    Get(Knob),
    /// `name=value`.
    Set(Knob, String),
    /// `throttle` / `pause` / `suspend`.
    Throttle,
    /// `no-throttle` / `unthrottle` / `resume` / `continue`.
    NoThrottle,
    /// `unpostpone` / `no-postpone` / `cut-over`, with the table it names (`unpostpone=t`).
    Unpostpone(Option<String>),
    /// `panic`, with the table it names (`panic=t`).
    Panic(Option<String>),
}

/// The list `help` answers.
pub const HELP: &str = "\
available commands:
status                               # Print a detailed status message
sup                                  # Print a short status message
coordinates                          # Print the binlog coordinates the streamer has reached
applier                              # Print the server the changes are written to
inspector                            # Print the server whose binlog is read
chunk-size=<newsize>                 # Set a new chunk-size (10 to 100000)
dml-batch-size=<newsize>             # Set a new dml-batch-size (1 to 100)
nice-ratio=<ratio>                   # Set a new nice-ratio: sleep after each chunk, as a fraction of its time (0 to 100)
critical-load=<load>                 # Set a new set of critical-load thresholds
max-lag-millis=<max-lag>             # Set a new replication lag threshold (100 or more)
max-load=<load>                      # Set a new set of max-load thresholds
throttle-query=<query>               # Set a new throttle-query (no quotes)
throttle-http=<URL>                  # Set a new throttle URL (http://)
throttle-control-replicas=<replicas> # Set a new comma delimited list of throttle control replicas
postpone-cut-over-flag-file=<path>   # Postpone the cut-over while <path> exists (the file is created)
throttle                             # Force throttling
no-throttle                          # End forced throttling (other throttling may still apply)
unpostpone                           # Bail out a cut-over postpone; proceed to cut-over
panic                                # Stop the migration at once, without cut-over
help                                 # This message
- use '?' (question mark) as argument to get info rather than set. e.g. \"max-load=?\" will just print out current max-load.
";

/// Parses one command line, as gh-ost does: the name before the first `=`, the argument after
/// it (trimmed, and unquoted when it is a quoted string).
pub fn parse(line: &str) -> Result<Command, String> {
    let (name, arg) = match line.split_once('=') {
        Some((n, a)) => (n.trim(), Some(unquote(a.trim()))),
        None => (line.trim(), None),
    };
    let named = |arg: Option<String>| arg.filter(|a| !a.is_empty());
    let command =
        match name {
            "help" => Command::Help,
            "sup" => Command::Sup,
            "status" | "info" => Command::Status,
            "coordinates" => match arg.as_deref() {
                None | Some("") | Some("?") => Command::Coordinates,
                Some(_) => return Err("coordinates are read-only".into()),
            },
            "applier" => Command::Applier,
            "inspector" => Command::Inspector,
            "throttle" | "pause" | "suspend" => Command::Throttle,
            "no-throttle" | "unthrottle" | "resume" | "continue" => Command::NoThrottle,
            "unpostpone" | "no-postpone" | "cut-over" => Command::Unpostpone(named(arg)),
            "panic" => Command::Panic(named(arg)),
            "replication-lag-query" => return Err(
                "replication-lag-query is deprecated: wraith measures lag with its own heartbeat"
                    .into(),
            ),
            "" => return Err("empty command; try `help`".into()),
            other => {
                let Some(knob) = Knob::named(other) else {
                    return Err(format!("Unknown command: {other}; try `help`"));
                };
                match arg {
                    Some(a) if a == "?" => Command::Get(knob),
                    Some(a) => Command::Set(knob, a),
                    None => {
                        return Err(format!(
                            "{other} needs a value ({other}=<value>) or ? to print it ({other}=?)"
                        ))
                    }
                }
            }
        };
    Ok(command)
}

/// `"text"` → `text` (with `\"` and `\\` unescaped); anything else as it is.
fn unquote(arg: &str) -> String {
    let Some(inner) = arg
        .strip_prefix('"')
        .and_then(|a| a.strip_suffix('"'))
        .filter(|_| arg.len() >= 2)
    else {
        return arg.to_string();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_of_gh_ost_parses() {
        assert_eq!(parse("help"), Ok(Command::Help));
        assert_eq!(parse(" sup \n"), Ok(Command::Sup));
        assert_eq!(parse("status"), Ok(Command::Status));
        assert_eq!(parse("info"), Ok(Command::Status));
        assert_eq!(parse("coordinates"), Ok(Command::Coordinates));
        assert_eq!(parse("applier"), Ok(Command::Applier));
        assert_eq!(parse("inspector"), Ok(Command::Inspector));
        for t in ["throttle", "pause", "suspend"] {
            assert_eq!(parse(t), Ok(Command::Throttle));
        }
        for t in ["no-throttle", "unthrottle", "resume", "continue"] {
            assert_eq!(parse(t), Ok(Command::NoThrottle));
        }
        for u in ["unpostpone", "no-postpone", "cut-over"] {
            assert_eq!(parse(u), Ok(Command::Unpostpone(None)));
        }
        assert_eq!(
            parse("unpostpone=orders"),
            Ok(Command::Unpostpone(Some("orders".into())))
        );
        assert_eq!(parse("panic"), Ok(Command::Panic(None)));
        assert_eq!(parse("panic=t"), Ok(Command::Panic(Some("t".into()))));
        assert_eq!(
            parse("chunk-size=250"),
            Ok(Command::Set(Knob::ChunkSize, "250".into()))
        );
        assert_eq!(parse("max-load=?"), Ok(Command::Get(Knob::MaxLoad)));
        assert_eq!(
            parse("max-load=Threads_running=25,Threads_connected=200"),
            Ok(Command::Set(
                Knob::MaxLoad,
                "Threads_running=25,Threads_connected=200".into()
            ))
        );
        assert_eq!(
            parse(r#"throttle-query="select 1 from dual where x = \"y\"""#),
            Ok(Command::Set(
                Knob::ThrottleQuery,
                r#"select 1 from dual where x = "y""#.into()
            ))
        );
        assert_eq!(
            parse("max-load="),
            Ok(Command::Set(Knob::MaxLoad, String::new()))
        );
    }

    #[test]
    fn a_bad_command_is_an_error_that_says_so() {
        assert!(parse("frobnicate")
            .unwrap_err()
            .contains("Unknown command: frobnicate"));
        assert!(parse("").is_err());
        assert!(parse("chunk-size").unwrap_err().contains("needs a value"));
        assert!(parse("coordinates=bin.000001:4").is_err());
        assert!(parse("replication-lag-query=select 1").is_err());
    }
}
