//! Where interactive commands are served: a unix socket (`--serve-socket-file`, by default
//! `/tmp/gh-ost.<schema>.<table>.sock`) and, with `--serve-tcp-port`, a TCP port on 127.0.0.1.
//!
//! In: connections; one command line each (gh-ost's protocol: `echo sup | nc -U <socket>`).
//! Out: the answer of [`Controls::execute`], after the `gh-ost-on-interactive-command` hook
//! (whose failure refuses the command); then the connection is closed. Invariant: a socket file
//! that exists is replaced only with `--initially-drop-socket-file` (it may be another
//! migration's), or when it is a socket nobody listens on (a killed run's: connecting to it is
//! refused); the socket file is removed when the [`Server`] is dropped.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UnixListener};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::Controls;
use crate::hooks::Hooks;

/// The longest command line read (a throttle query can be long).
const MAX_LINE: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("the socket file {0} exists and is not a socket nobody listens on: another gh-ost or wraith may be serving on it, or it is another file. Check that no migration of this table runs, then remove it (rm {0}) or run with --initially-drop-socket-file")]
    SocketExists(String),
    #[error("cannot serve interactive commands on {what}: {source}. Choose another with --{flag}")]
    Bind {
        what: String,
        flag: &'static str,
        source: std::io::Error,
    },
}

/// The listeners of one run; dropping it stops them and removes the socket file.
#[derive(Debug)]
pub struct Server {
    socket: PathBuf,
    _stop: DropGuard,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.socket) {
            tracing::debug!("removing {}: {e}", self.socket.display());
        }
    }
}

/// The socket path: `--serve-socket-file`, or gh-ost's default for the table.
pub fn socket_path(schema: &str, table: &str, flag: &str) -> PathBuf {
    if flag.is_empty() {
        PathBuf::from(format!("/tmp/gh-ost.{schema}.{table}.sock"))
    } else {
        PathBuf::from(flag)
    }
}

/// `path` is a unix socket that nobody listens on: connecting to it is refused. Anything else
/// (a regular file, a socket in use, one that cannot be tried) is not stale.
fn stale(path: &std::path::Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    let is_socket = path
        .symlink_metadata()
        .is_ok_and(|m| m.file_type().is_socket());
    is_socket
        && matches!(
            std::os::unix::net::UnixStream::connect(path),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
        )
}

impl Server {
    /// Binds the socket (and the TCP port), and serves until dropped or `cancel`.
    pub async fn start(
        controls: Arc<Controls>,
        hooks: Hooks,
        cancel: &CancellationToken,
    ) -> Result<Server, ServerError> {
        let cfg = &controls.cfg;
        let socket = socket_path(&cfg.database, &cfg.table, &cfg.flags.serve_socket_file);
        // A dangling symlink counts too: binding would fail on it.
        if socket.symlink_metadata().is_ok() {
            if cfg.flags.initially_drop_socket_file {
                tracing::info!(
                    "removing the socket file {} (--initially-drop-socket-file)",
                    socket.display()
                );
            } else if stale(&socket) {
                tracing::info!(
                    "removing the socket file {}: nobody listens on it (a killed run left it)",
                    socket.display()
                );
            } else {
                return Err(ServerError::SocketExists(socket.display().to_string()));
            }
            let _ = std::fs::remove_file(&socket);
        }
        let unix = UnixListener::bind(&socket).map_err(|source| ServerError::Bind {
            what: socket.display().to_string(),
            flag: "serve-socket-file",
            source,
        })?;
        let stop = cancel.child_token();
        let server = Server {
            socket: socket.clone(),
            _stop: stop.clone().drop_guard(),
        };
        let tcp = match cfg.flags.serve_tcp_port {
            0 => None,
            port => Some(
                TcpListener::bind(("127.0.0.1", port))
                    .await
                    .map_err(|source| ServerError::Bind {
                        what: format!("127.0.0.1:{port}"),
                        flag: "serve-tcp-port",
                        source,
                    })?,
            ),
        };
        tracing::info!(
            "serving interactive commands on unix socket {} (e.g. echo status | nc -U {})",
            socket.display(),
            socket.display()
        );
        controls.serving(format!("unix socket: {}", socket.display()));
        if let Some(port) = tcp
            .as_ref()
            .and_then(|t| t.local_addr().ok())
            .map(|a| a.port())
        {
            tracing::info!("serving interactive commands on TCP 127.0.0.1:{port}");
            controls.serving(format!("TCP port: {port}"));
        }
        tokio::spawn(serve(unix, controls.clone(), hooks.clone(), stop.clone()));
        if let Some(tcp) = tcp {
            tokio::spawn(serve(tcp, controls, hooks, stop));
        }
        Ok(server)
    }
}

/// A listener of either kind.
trait Accept: Send + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept_one(&self)
        -> impl std::future::Future<Output = std::io::Result<Self::Stream>> + Send;
}

impl Accept for UnixListener {
    type Stream = tokio::net::UnixStream;
    async fn accept_one(&self) -> std::io::Result<Self::Stream> {
        Ok(self.accept().await?.0)
    }
}

impl Accept for TcpListener {
    type Stream = tokio::net::TcpStream;
    async fn accept_one(&self) -> std::io::Result<Self::Stream> {
        Ok(self.accept().await?.0)
    }
}

/// Accepts connections until `stop`, each served on a task of its own.
async fn serve(
    listener: impl Accept,
    controls: Arc<Controls>,
    hooks: Hooks,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            accepted = listener.accept_one() => match accepted {
                Ok(stream) => {
                    tokio::spawn(serve_one(stream, controls.clone(), hooks.clone()));
                }
                Err(e) => tracing::warn!("interactive commands: accept failed: {e}"),
            },
            _ = stop.cancelled() => return,
        }
    }
}

/// One connection: reads a line (within 10 s), answers, closes.
async fn serve_one<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    controls: Arc<Controls>,
    hooks: Hooks,
) {
    let (read, mut write) = tokio::io::split(stream);
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(MAX_LINE));
    let read = tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut line)).await;
    if !matches!(read, Ok(Ok(_))) {
        return;
    }
    let line = line.trim().to_string();
    if line.is_empty() {
        return;
    }
    let answer = match hooks.on_interactive_command(&line).await {
        Err(e) => Err(format!("{e}; the command was not carried out")),
        Ok(()) => controls.execute(&line),
    };
    let text = match answer {
        Ok(text) => text,
        Err(e) => {
            tracing::warn!("command {line:?} refused: {e}");
            format!("error: {e}\n")
        }
    };
    let _ = write.write_all(text.as_bytes()).await;
    let _ = write.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_socket_nobody_listens_on_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listening = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert!(!stale(&path), "a socket in use");
        drop(listening); // the file stays, as after a SIGKILL
        assert!(path.exists());
        assert!(stale(&path), "a socket left behind");
        let file = dir.path().join("plain");
        std::fs::write(&file, "").unwrap();
        assert!(!stale(&file), "a regular file is someone's");
        assert!(!stale(&dir.path().join("missing")));
    }
}
