//! Just enough HTTP/1.1 for a load generator on a keep-alive connection: the target URL, the
//! request's bytes, and the framing of an answer (status line, headers, a Content-Length, chunked
//! or close-delimited body), so that the end of one answer is never mistaken on a reused
//! connection. Anything the parser does not understand is an error, never a guess.

use std::fmt;

/// `http://HOST[:PORT][/PATH[?QUERY]]`, the only form the tool accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// What to connect to, e.g. `127.0.0.1:8080` or `[::1]:8080`.
    pub addr: String,
    /// The Host header's value: the authority as written in the URL.
    pub host: String,
    /// The request target: path and query, `/` when the URL has none.
    pub target: String,
}

pub fn parse_url(url: &str) -> Result<Url, String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        format!("the URL {url:?} does not start with http:// (only plain HTTP is supported)")
    })?;
    let (authority, target) = match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_owned()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_owned()),
    };
    let target = match target.find('#') {
        Some(i) => target[..i].to_owned(),
        None => target,
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(format!(
            "the URL {url:?} has no host, or has user information"
        ));
    }
    // A port after the host (after the closing bracket of an IPv6 literal), else 80.
    let host_end = if authority.starts_with('[') {
        authority
            .find(']')
            .map(|i| i + 1)
            .ok_or_else(|| format!("the URL {url:?} has an unclosed IPv6 literal"))?
    } else {
        authority.find(':').unwrap_or(authority.len())
    };
    let addr = match &authority[host_end..] {
        "" => format!("{authority}:80"),
        port => {
            let digits = port.strip_prefix(':').unwrap_or("");
            if digits.parse::<u16>().is_err() {
                return Err(format!("the URL {url:?} has no valid port after the host"));
            }
            authority.to_owned()
        }
    };
    Ok(Url {
        addr,
        host: authority.to_owned(),
        target,
    })
}

/// The bytes of one request. A body (even an empty one, for a method that carries one) gets a
/// Content-Length; `headers` are `Name: value` lines as given on the command line.
pub fn request(method: &str, url: &Url, headers: &[String], body: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + body.map_or(0, <[u8]>::len));
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(url.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(url.host.as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in headers {
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(body) = body {
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        out.extend_from_slice(body);
    } else {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// One complete answer at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Bytes it took, interim (1xx) answers before it included; what follows is the next answer.
    pub len: usize,
    /// The server closes the connection after it (Connection: close, HTTP/1.0, or a body that
    /// ends when the connection does).
    pub close: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// More bytes are needed.
    Incomplete,
    Complete(Response),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn fail<T>(why: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(why.into()))
}

/// Headers larger than this are taken for garbage rather than waited for.
const MAX_HEAD: usize = 64 * 1024;

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|i| from + i)
}

/// Parses the answer at the start of `buf`. `eof`: the connection is closed after these bytes
/// (a close-delimited body ends there). `head`: the request was a HEAD (no body, whatever the
/// headers say).
pub fn parse_response(buf: &[u8], eof: bool, head: bool) -> Result<Outcome, ParseError> {
    let mut start = 0;
    loop {
        match parse_one(&buf[start..], eof, head)? {
            One::Incomplete => return Ok(Outcome::Incomplete),
            // An interim answer (100 Continue, 103 Early Hints): the real one follows it.
            One::Interim(len) => start += len,
            One::Complete(mut r) => {
                r.len += start;
                return Ok(Outcome::Complete(r));
            }
        }
    }
}

enum One {
    Incomplete,
    Interim(usize),
    Complete(Response),
}

fn parse_one(buf: &[u8], eof: bool, head: bool) -> Result<One, ParseError> {
    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD {
            return fail(format!("no end of headers in the first {MAX_HEAD} bytes"));
        }
        if eof {
            return fail(if buf.is_empty() {
                "the connection was closed before an answer".to_owned()
            } else {
                "the connection was closed in the middle of the headers".to_owned()
            });
        }
        return Ok(One::Incomplete);
    };
    let body_start = head_end + 4;
    let Ok(text) = std::str::from_utf8(&buf[..head_end]) else {
        return fail("the headers are not text");
    };
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    // "HTTP/1.1 200 OK": a version, a three-digit status, an optional reason.
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => return fail(format!("not an HTTP/1.x status line: {status_line:?}")),
    };
    let code = parts.next().unwrap_or("");
    let status = match code.parse::<u16>() {
        Ok(s) if code.len() == 3 && (100..=999).contains(&s) => s,
        _ => return fail(format!("no valid status in {status_line:?}")),
    };

    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    let mut close = http10;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return fail(format!("a header line without a colon: {line:?}"));
        };
        if name.is_empty() || name.ends_with([' ', '\t']) {
            return fail(format!("a malformed header name: {line:?}"));
        }
        let value = value.trim_matches([' ', '\t']);
        if name.eq_ignore_ascii_case("content-length") {
            let Ok(n) = value.parse::<usize>() else {
                return fail(format!("an invalid Content-Length: {value:?}"));
            };
            // Two different lengths would make the stream's framing ambiguous.
            if content_length.is_some_and(|m| m != n) {
                return fail("two different Content-Length headers");
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            let last = value
                .rsplit(',')
                .next()
                .unwrap_or("")
                .trim_matches([' ', '\t']);
            chunked = last.eq_ignore_ascii_case("chunked");
            if !chunked {
                // Any other final coding ends with the connection (RFC 9112 §6.3).
                close = true;
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(|t| t.trim_matches([' ', '\t'])) {
                if token.eq_ignore_ascii_case("close") {
                    close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") && http10 {
                    close = false;
                }
            }
        }
    }

    if (100..200).contains(&status) && status != 101 {
        return Ok(One::Interim(body_start));
    }
    let done = |len: usize, close: bool| Ok(One::Complete(Response { status, len, close }));
    // No body at all, whatever the headers announce (RFC 9112 §6.3, 1 and 2).
    if head || status == 101 || status == 204 || status == 304 {
        return done(body_start, close || status == 101);
    }
    if chunked {
        return match chunked_end(buf, body_start)? {
            Some(end) => done(end, close),
            None if eof => fail("the connection was closed in the middle of a chunked body"),
            None => Ok(One::Incomplete),
        };
    }
    if let Some(n) = content_length {
        let Some(end) = body_start.checked_add(n) else {
            return fail("a Content-Length too large");
        };
        return if buf.len() >= end {
            done(end, close)
        } else if eof {
            fail("the connection was closed before the end of the body")
        } else {
            Ok(One::Incomplete)
        };
    }
    // Neither length nor chunks: the body ends when the connection does.
    if eof {
        done(buf.len(), true)
    } else {
        Ok(One::Incomplete)
    }
}

/// Where a chunked body that starts at `from` ends (after its last chunk and trailers), or None
/// when more bytes are needed.
fn chunked_end(buf: &[u8], mut at: usize) -> Result<Option<usize>, ParseError> {
    loop {
        let Some(eol) = find_crlf(buf, at) else {
            if buf.len() - at > 1024 {
                return fail("a chunk size line longer than 1024 bytes");
            }
            return Ok(None);
        };
        let line = &buf[at..eol];
        // "1a3f" or "1a3f;name=value" (a chunk extension, ignored).
        let digits = line.split(|&b| b == b';').next().unwrap_or(b"");
        let digits = digits.strip_suffix(b" ").unwrap_or(digits);
        if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_hexdigit) {
            return fail(format!(
                "an invalid chunk size: {:?}",
                String::from_utf8_lossy(line)
            ));
        }
        let size = digits.iter().fold(0usize, |n, &d| {
            n * 16 + (d as char).to_digit(16).unwrap_or(0) as usize
        });
        at = eol + 2;
        if size == 0 {
            // Trailer lines, then an empty line.
            loop {
                let Some(eol) = find_crlf(buf, at) else {
                    return Ok(None);
                };
                let empty = eol == at;
                at = eol + 2;
                if empty {
                    return Ok(Some(at));
                }
            }
        }
        let data_end = at + size;
        if buf.len() < data_end + 2 {
            return Ok(None);
        }
        if &buf[data_end..data_end + 2] != b"\r\n" {
            return fail("a chunk not followed by CRLF");
        }
        at = data_end + 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(buf: &[u8]) -> Response {
        match parse_response(buf, false, false) {
            Ok(Outcome::Complete(r)) => r,
            other => panic!("expected a complete answer, got {other:?}"),
        }
    }

    /// Every shorter prefix of `buf` is incomplete, never an answer.
    fn every_prefix_incomplete(buf: &[u8]) {
        for n in 0..buf.len() {
            assert_eq!(
                parse_response(&buf[..n], false, false),
                Ok(Outcome::Incomplete),
                "{n}"
            );
        }
    }

    #[test]
    fn urls() {
        let u = parse_url("http://127.0.0.1:8080/authorize?client_id=x&a=b").unwrap();
        assert_eq!(u.addr, "127.0.0.1:8080");
        assert_eq!(u.host, "127.0.0.1:8080");
        assert_eq!(u.target, "/authorize?client_id=x&a=b");
        let u = parse_url("http://localhost").unwrap();
        assert_eq!((u.addr.as_str(), u.target.as_str()), ("localhost:80", "/"));
        let u = parse_url("http://[::1]:9/x#frag").unwrap();
        assert_eq!((u.addr.as_str(), u.target.as_str()), ("[::1]:9", "/x"));
        assert_eq!(parse_url("http://h?q=1").unwrap().target, "/?q=1");
        for bad in [
            "https://h/",
            "h:80/",
            "http:///x",
            "http://h:x/",
            "http://h:99999/",
            "http://[::1/",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn request_bytes() {
        let u = parse_url("http://127.0.0.1:1/register").unwrap();
        let r = request(
            "POST",
            &u,
            &["Content-Type: application/json".into()],
            Some(b"{}"),
        );
        assert_eq!(
            r,
            b"POST /register HTTP/1.1\r\nHost: 127.0.0.1:1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        );
        let r = request("GET", &u, &[], None);
        assert_eq!(r, b"GET /register HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n");
    }

    #[test]
    fn content_length() {
        let a = b"HTTP/1.1 200 OK\r\ncontent-length: 15\r\ncontent-type: application/json\r\n\r\n{\"status\":\"ok\"}";
        assert_eq!(
            complete(a),
            Response {
                status: 200,
                len: a.len(),
                close: false
            }
        );
        every_prefix_incomplete(a);
        // Closed before the body's end: an error, not an answer.
        assert!(parse_response(&a[..a.len() - 1], true, false).is_err());
        assert!(parse_response(b"", true, false).is_err());
        let a = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        assert_eq!(
            complete(a),
            Response {
                status: 400,
                len: a.len(),
                close: true
            }
        );
    }

    #[test]
    fn chunked() {
        let a = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1;ext=1\r\n \r\n0\r\nX-Trailer: y\r\n\r\n";
        assert_eq!(
            complete(a),
            Response {
                status: 200,
                len: a.len(),
                close: false
            }
        );
        every_prefix_incomplete(a);
        // Chunked wins over a Content-Length (RFC 9112 §6.3).
        let a = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n";
        assert_eq!(complete(a).len, a.len());
        // A chunk size that is not hex, and a chunk longer than announced.
        assert!(
            parse_response(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                false,
                false
            )
            .is_err()
        );
        assert!(
            parse_response(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
                false,
                false
            )
            .is_err()
        );
    }

    #[test]
    fn pipelined_leftover() {
        let first = b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}".as_slice();
        let second =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n".as_slice();
        let third = b"HTTP/1.1 204 No Content\r\n\r\n".as_slice();
        let mut buf = [first, second, third].concat();
        buf.extend_from_slice(b"HTTP/1.1 2"); // the start of a fourth
        let r = complete(&buf);
        assert_eq!((r.status, r.len), (201, first.len()));
        let rest = &buf[r.len..];
        let r = complete(rest);
        assert_eq!((r.status, r.len), (200, second.len()));
        let rest = &rest[r.len..];
        let r = complete(rest);
        assert_eq!((r.status, r.len), (204, third.len()));
        assert_eq!(
            parse_response(&rest[r.len..], false, false),
            Ok(Outcome::Incomplete)
        );
    }

    #[test]
    fn no_body_and_close_delimited() {
        // HEAD: a Content-Length but no body.
        let a = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
        assert_eq!(
            parse_response(a, false, true),
            Ok(Outcome::Complete(Response {
                status: 200,
                len: a.len(),
                close: false
            }))
        );
        // 304 likewise.
        assert_eq!(
            complete(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n").status,
            304
        );
        // Neither length nor chunks: the body ends with the connection.
        let a = b"HTTP/1.0 200 OK\r\n\r\nsome body";
        assert_eq!(parse_response(a, false, false), Ok(Outcome::Incomplete));
        assert_eq!(
            parse_response(a, true, false),
            Ok(Outcome::Complete(Response {
                status: 200,
                len: a.len(),
                close: true
            }))
        );
        // HTTP/1.0 with keep-alive and a length stays open.
        let a = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n";
        assert!(!complete(a).close);
    }

    #[test]
    fn interim_answers_are_skipped() {
        let a = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx";
        assert_eq!(
            complete(a),
            Response {
                status: 200,
                len: a.len(),
                close: false
            }
        );
    }

    #[test]
    fn garbage_is_an_error() {
        for bad in [
            b"HTTP/2 200\r\n\r\n".as_slice(),
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"SSH-2.0-OpenSSH\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx",
        ] {
            assert!(
                parse_response(bad, false, false).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(parse_response(&vec![b'x'; MAX_HEAD + 1], false, false).is_err());
    }
}
