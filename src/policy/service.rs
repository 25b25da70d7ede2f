//! Postfix's policy delegation protocol (SMTPD_POLICY_README), the
//! client side of `check_policy_service`: the request is `name=value`
//! lines and an empty line, the answer `action=…` and an empty line.
//! One connection per request (postgrey and policyd-spf take that).

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use crate::milter::Address;

/// Postfix's `smtpd_policy_service_timeout`: for the connection, the
/// request and the answer together.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(100);

/// The longest answer line taken (Postfix's `line_length_limit`).
const LINE_LIMIT: usize = 2048;

/// Ask `service` (`inet:host:port` or `unix:/path`) with `attributes`;
/// the value of the answer's `action=`.
pub(crate) async fn ask(service: &str, attributes: &[(&str, String)]) -> Result<String, String> {
    // Checked when the configuration was read; the caller names the server.
    let address = Address::parse(service).map_err(|e| e.to_string())?;
    match tokio::time::timeout(TIMEOUT, exchange(&address, attributes)).await {
        Ok(answer) => answer,
        Err(_) => Err(format!("timeout after {}s", TIMEOUT.as_secs())),
    }
}

async fn exchange(address: &Address, attributes: &[(&str, String)]) -> Result<String, String> {
    match address {
        Address::Inet(addr) => {
            let stream = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            talk(stream, attributes).await
        }
        Address::Unix(path) => {
            let stream = tokio::net::UnixStream::connect(path)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            talk(stream, attributes).await
        }
    }
}

async fn talk<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    attributes: &[(&str, String)],
) -> Result<String, String> {
    let mut stream = BufReader::new(stream);
    stream
        .get_mut()
        .write_all(&request(attributes))
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut action = None;
    loop {
        let mut line = Vec::new();
        let n = tokio::io::AsyncReadExt::take(&mut stream, LINE_LIMIT as u64 + 1)
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("the server closed the connection before the empty line".into());
        }
        if line.len() > LINE_LIMIT {
            return Err(format!("an answer line longer than {LINE_LIMIT} bytes"));
        }
        let line = String::from_utf8_lossy(&line);
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        if let Some(value) = line.strip_prefix("action=") {
            action.get_or_insert_with(|| value.trim().to_string());
        }
    }
    action.ok_or_else(|| "the answer has no action= attribute".into())
}

/// The request: each attribute on a line (a value cut at its first line
/// end: no attribute can add another), then the empty line.
fn request(attributes: &[(&str, String)]) -> Vec<u8> {
    let mut out = String::new();
    for (name, value) in attributes {
        let value = value.split(['\r', '\n']).next().unwrap_or("");
        out.push_str(&format!("{name}={value}\n"));
    }
    out.push('\n');
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_and_its_answer() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let service = format!("inet:{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            let mut s = BufReader::new(s);
            let mut got = String::new();
            loop {
                let mut line = String::new();
                s.read_line(&mut line).await.unwrap();
                if line == "\n" {
                    break;
                }
                got.push_str(&line);
            }
            s.get_mut()
                .write_all(b"action=DEFER_IF_PERMIT Greylisted\nx=y\n\n")
                .await
                .unwrap();
            got
        });
        let attributes = [
            ("request", "smtpd_access_policy".to_string()),
            ("sender", "a@example.org\nrecipient=forged".to_string()),
        ];
        let action = ask(&service, &attributes).await.unwrap();
        assert_eq!(action, "DEFER_IF_PERMIT Greylisted");
        assert_eq!(
            server.await.unwrap(),
            "request=smtpd_access_policy\nsender=a@example.org\n"
        );
    }

    #[tokio::test]
    async fn a_server_that_is_not_there() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let service = format!("inet:{}", l.local_addr().unwrap());
        drop(l);
        let e = ask(&service, &[]).await.unwrap_err();
        assert!(e.starts_with("connect:"), "{e}");
    }
}
