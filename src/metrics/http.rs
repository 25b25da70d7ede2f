//! The endpoint's HTTP/1.1, as little of it as a scraper needs: a sans-IO
//! parser of the request head (bytes in, [`Head`] out; fuzzed by
//! `fuzz/fuzz_targets/http_head.rs`) and the responses, each closing the
//! connection. No body is read, no header is interpreted.

/// Most bytes of a request head (request line and header fields): past
/// it, 431.
pub const MAX_HEAD: usize = 8 * 1024;

/// What the bytes so far make of a request head.
#[derive(Debug, PartialEq, Eq)]
pub enum Head<'a> {
    /// No empty line yet, and below [`MAX_HEAD`].
    Incomplete,
    /// The head is complete.
    Request { method: &'a str, path: &'a str },
    /// [`MAX_HEAD`] bytes without the end of the head.
    TooLarge,
    /// Not an HTTP/1.x request head.
    Bad,
}

/// Parse the head at the start of `buf`.
pub fn parse(buf: &[u8]) -> Head<'_> {
    let window = &buf[..buf.len().min(MAX_HEAD)];
    let Some(end) = find_end(window) else {
        return if buf.len() >= MAX_HEAD {
            Head::TooLarge
        } else {
            Head::Incomplete
        };
    };
    let Ok(head) = std::str::from_utf8(&window[..end]) else {
        return Head::Bad;
    };
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let Some(request_line) = lines.next() else {
        return Head::Bad;
    };
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Head::Bad;
    };
    let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphabetic());
    if !token(method)
        || !target.starts_with('/')
        || !matches!(version, "HTTP/1.1" | "HTTP/1.0")
        || target.bytes().any(|b| b.is_ascii_control())
    {
        return Head::Bad;
    }
    for field in lines.filter(|l| !l.is_empty()) {
        match field.split_once(':') {
            Some((name, _)) if !name.is_empty() && !name.contains([' ', '\t']) => {}
            _ => return Head::Bad,
        }
    }
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    Head::Request { method, path }
}

/// The offset of the empty line that ends the head (CRLF CRLF, or bare
/// LF LF as lenient servers accept).
fn find_end(buf: &[u8]) -> Option<usize> {
    (0..buf.len()).find(|&i| buf[i..].starts_with(b"\r\n\r\n") || buf[i..].starts_with(b"\n\n"))
}

/// The Content-Type of the text exposition.
pub const EXPOSITION: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A whole response: status, extra header lines, body; `Connection:
/// close` always.
pub fn response(status: u16, extra: &[(&str, &str)], body: &str) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if !extra
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        head.push_str("Content-Type: text/plain; charset=utf-8\r\n");
    }
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// What a complete head asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Metrics,
    /// Another path: 404.
    NotFound,
    /// Another method: 405.
    NotAllowed,
}

pub fn route(method: &str, path: &str) -> Route {
    match (method, path) {
        ("GET", "/metrics") => Route::Metrics,
        ("GET", _) => Route::NotFound,
        _ => Route::NotAllowed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scrape_head() {
        let h = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9154\r\nAccept: text/plain\r\n\r\n";
        assert_eq!(
            parse(h),
            Head::Request {
                method: "GET",
                path: "/metrics"
            }
        );
        assert_eq!(parse(&h[..h.len() - 2]), Head::Incomplete);
        assert_eq!(
            parse(b"GET /metrics?x=1 HTTP/1.0\n\n"),
            Head::Request {
                method: "GET",
                path: "/metrics"
            }
        );
    }

    #[test]
    fn bad_and_large_heads() {
        assert_eq!(parse(b"GET /metrics\r\n\r\n"), Head::Bad);
        assert_eq!(parse(b"GET metrics HTTP/1.1\r\n\r\n"), Head::Bad);
        assert_eq!(parse(b"GET / HTTP/2\r\n\r\n"), Head::Bad);
        assert_eq!(parse(b"GET / HTTP/1.1\r\nno colon\r\n\r\n"), Head::Bad);
        assert_eq!(parse(b"G\xffT / HTTP/1.1\r\n\r\n"), Head::Bad);
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_HEAD, b'a');
        assert_eq!(parse(&big), Head::TooLarge);
        assert_eq!(parse(&big[..MAX_HEAD - 1]), Head::Incomplete);
    }

    #[test]
    fn routes_and_responses() {
        assert_eq!(route("GET", "/metrics"), Route::Metrics);
        assert_eq!(route("GET", "/"), Route::NotFound);
        assert_eq!(route("POST", "/metrics"), Route::NotAllowed);
        let r = String::from_utf8(response(404, &[], "not found\n")).unwrap();
        assert_eq!(
            r,
            "HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\nConnection: close\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\r\nnot found\n"
        );
    }
}
