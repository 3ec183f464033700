//! A minimal HTTP GET for `--throttle-http`: only the status code matters.
//!
//! In: an `http://host[:port][/path]` URL and a timeout. Out: the response's status code.
//! Hand-written on a tokio `TcpStream` (HTTP/1.0 request, `Connection: close`, the status line
//! parsed) so wraith needs no HTTP client crate; `https://` is refused with a clear error
//! (config refuses it before the run starts).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HttpError {
    #[error("only http:// URLs are supported (no TLS client in wraith): {0}")]
    Unsupported(String),
    #[error("not a URL: {0}")]
    BadUrl(String),
    #[error("{0}")]
    Io(String),
    #[error("no answer within {0} ms")]
    Timeout(u128),
    #[error("not an HTTP response: {0}")]
    BadResponse(String),
}

/// `(host:port, host, path)` of an `http://` URL.
pub fn split_url(url: &str) -> Result<(String, String, String), HttpError> {
    let rest = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
        Some(_) => return Err(HttpError::Unsupported(url.to_string())),
        None => return Err(HttpError::BadUrl(url.to_string())),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(HttpError::BadUrl(url.to_string()));
    }
    let host = match authority.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok() => h,
        Some(_) if authority.ends_with(']') => authority,
        Some(_) => return Err(HttpError::BadUrl(url.to_string())),
        None => authority,
    };
    let address = if host.len() == authority.len() {
        format!("{authority}:80")
    } else {
        authority.to_string()
    };
    Ok((address, host.to_string(), path.to_string()))
}

/// GETs `url` and returns the status code.
pub async fn get_status(url: &str, timeout: Duration) -> Result<u16, HttpError> {
    let (address, host, path) = split_url(url)?;
    let exchange = async {
        let mut stream = TcpStream::connect(&address)
            .await
            .map_err(|e| HttpError::Io(e.to_string()))?;
        let request = format!(
            "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: wraith\r\nConnection: close\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| HttpError::Io(e.to_string()))?;
        // The status line is all that is needed.
        let mut head = Vec::new();
        let mut buf = [0u8; 512];
        while !head.contains(&b'\n') && head.len() < 4096 {
            let n = stream
                .read(&mut buf)
                .await
                .map_err(|e| HttpError::Io(e.to_string()))?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        status_code(&head)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| HttpError::Timeout(timeout.as_millis()))?
}

/// The code of a status line `HTTP/1.x 200 OK`.
fn status_code(head: &[u8]) -> Result<u16, HttpError> {
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next().map(str::parse::<u16>)) {
        (Some(version), Some(Ok(code))) if version.starts_with("HTTP/") => Ok(code),
        _ => Err(HttpError::BadResponse(line.chars().take(80).collect())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_address_host_and_path() {
        assert_eq!(
            split_url("http://127.0.0.1:8080/throttle?x=1").unwrap(),
            (
                "127.0.0.1:8080".into(),
                "127.0.0.1".into(),
                "/throttle?x=1".into()
            )
        );
        assert_eq!(
            split_url("http://example.com").unwrap(),
            ("example.com:80".into(), "example.com".into(), "/".into())
        );
        assert!(matches!(
            split_url("https://x/"),
            Err(HttpError::Unsupported(_))
        ));
        assert!(matches!(split_url("x/y"), Err(HttpError::BadUrl(_))));
    }

    #[test]
    fn the_status_line_gives_the_code() {
        assert_eq!(
            status_code(b"HTTP/1.1 503 Service Unavailable\r\n"),
            Ok(503)
        );
        assert_eq!(status_code(b"HTTP/1.0 200 OK\r\nX: y\r\n"), Ok(200));
        assert!(status_code(b"SSH-2.0\r\n").is_err());
    }

    #[tokio::test]
    async fn a_get_reads_the_code_from_a_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            s.write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
                .await
                .unwrap();
        });
        let url = format!("http://127.0.0.1:{port}/");
        assert_eq!(get_status(&url, Duration::from_secs(5)).await, Ok(500));
    }
}
