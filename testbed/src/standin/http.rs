//! A tiny HTTP/1.1 server and client on `std::net`, enough for the REST API between
//! `ipfs-cluster-ctl` and the daemon (one request per connection, `Connection: close`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// A parsed request.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The path as sent (before percent-decoding).
    pub path: String,
    /// Path segments, percent-decoded, without empty ones.
    pub segments: Vec<String>,
    pub query: BTreeMap<String, String>,
    /// Header lines as sent (name, value), in order.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The first value of a header (names compare case-insensitively, as Go's `Header.Get`).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A response to send.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Extra header lines (besides Content-Type, Content-Length and Connection).
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn json(status: u16, body: String) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body,
        }
    }
}

/// The request handler of a server.
pub type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

/// Serves requests until `stop` is set; one thread per connection.
pub fn serve(listener: TcpListener, handler: Handler, stop: Arc<AtomicBool>) {
    // Blocking accept: the process exits right after its shutdown, which ends this thread.
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        if let Ok(stream) = stream {
            let handler = handler.clone();
            thread::spawn(move || answer(stream, &handler));
        }
    }
}

/// What Go's server writes to a connection whose first line is no HTTP request line (a TLS
/// ClientHello sent by an HTTPS client, for one), before closing it.
const BAD_REQUEST: &str =
    "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request";

fn answer(stream: TcpStream, handler: &Handler) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(&stream);
    let mut first = Vec::new();
    if reader.read_until(b'\n', &mut first).unwrap_or(0) == 0 {
        return;
    }
    let first = String::from_utf8_lossy(&first).into_owned();
    let mut parts = first.split_whitespace();
    let (method, target, proto) = (parts.next(), parts.next(), parts.next());
    let (Some(method), Some(target), Some(proto)) = (method, target, proto) else {
        return reply_raw(stream, BAD_REQUEST);
    };
    if !proto.starts_with("HTTP/") || parts.next().is_some() {
        return reply_raw(stream, BAD_REQUEST);
    }
    let mut content_length = 0usize;
    let mut headers = Vec::new();
    loop {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
            break;
        }
        let line = String::from_utf8_lossy(&line);
        if line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let (name, value) = (name.trim(), value.trim());
            if name.eq_ignore_ascii_case("content-length") {
                content_length = value.parse().unwrap_or(0);
            }
            headers.push((name.to_string(), value.to_string()));
        }
    }
    let mut body = vec![0u8; content_length.min(1 << 20)];
    let _ = reader.read_exact(&mut body);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let request = Request {
        method: method.to_string(),
        path: path.to_string(),
        segments: path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(percent_decode)
            .collect(),
        query: query
            .split('&')
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect(),
        headers,
    };
    let response = handler(&request);
    let reason = match response.status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        _ => "Internal Server Error",
    };
    let extra: String = response
        .headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let text = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{}",
        response.status,
        response.body.len(),
        response.body
    );
    reply_raw(stream, &text);
}

fn reply_raw(mut stream: TcpStream, text: &str) {
    let _ = stream.write_all(text.as_bytes());
}

/// Sends one request and returns (status, body).
pub fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    timeout: Duration,
) -> std::io::Result<(u16, String)> {
    let outgoing = Outgoing {
        method,
        target,
        headers: &[],
    };
    request_with(addr, &outgoing, timeout)
}

/// A request to send: method, target (path and query) and extra header lines.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    pub method: &'a str,
    pub target: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
}

/// Sends one request with its extra headers and returns (status, body).
pub fn request_with(
    addr: SocketAddr,
    outgoing: &Outgoing<'_>,
    timeout: Duration,
) -> std::io::Result<(u16, String)> {
    let Outgoing {
        method,
        target,
        headers,
    } = *outgoing;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(timeout))?;
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let text = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(text.as_bytes())?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw.as_str(), ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed HTTP response")
        })?;
    Ok((status, body.to_string()))
}

/// What a server answered to the opening of a TLS handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsAnswer {
    /// Its first bytes were "HTTP/": a plain HTTP server.
    Http,
    /// A TLS record (or anything else): a server the stand-in cannot talk to.
    Other,
    /// It closed the connection without a byte.
    Closed,
}

/// A TLS 1.2 ClientHello record (its random holds a newline, so that a plain HTTP server reads
/// it as a malformed request line at once, as it does a real ClientHello).
const CLIENT_HELLO: &[u8] = &[
    0x16, 0x03, 0x01, 0x00, 0x2d, // handshake record, 45 bytes
    0x01, 0x00, 0x00, 0x29, // ClientHello, 41 bytes
    0x03, 0x03, // TLS 1.2
    b's', b't', b'a', b'n', b'd', b'-', b'i', b'n', b' ', b'c', b't', b'l', b':', b' ', b'n', b'o',
    b' ', b'T', b'L', b'S', b' ', b'm', b'o', b'd', b'e', b'l', b'l', b'e', b'd', b'\r', b'\n',
    b'.', // random, 32 bytes
    0x00, // no session ID
    0x00, 0x02, 0x00, 0x2f, // one cipher suite
    0x01, 0x00, // no compression
];

/// Opens a TLS handshake as an HTTPS client would and reads what the server answers: the
/// stand-in has no TLS, so this is all an HTTPS request can do (Go's client, too, fails at
/// this point against a plain HTTP server).
pub fn tls_hello(addr: SocketAddr, timeout: Duration) -> std::io::Result<TlsAnswer> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(CLIENT_HELLO)?;
    let mut head = [0u8; 5];
    let mut got = 0;
    while got < head.len() {
        match stream.read(&mut head[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(match &head[..got] {
        [] => TlsAnswer::Closed,
        b"HTTP/" => TlsAnswer::Http,
        _ => TlsAnswer::Other,
    })
}

/// Percent-encodes a query value.
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = || {
            std::str::from_utf8(bytes.get(i + 1..i + 3)?)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        };
        match (bytes[i], hex()) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_round_trip() {
        assert_eq!(percent_decode(&percent_encode("a b/ü")), "a b/ü");
    }
}
