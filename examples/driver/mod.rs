//! What the load drivers (`bench`, `flood`) share: their `--key value` arguments, a light HTTP/1.1
//! keep-alive connection, and the request bytes of `/token`.

use std::collections::HashMap;
use std::net::SocketAddr;

use anyhow::anyhow;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `--key value` pairs; a key may be given several times.
pub struct Args(HashMap<String, Vec<String>>);

impl Args {
    pub fn parse(rest: impl Iterator<Item = String>) -> anyhow::Result<Args> {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        let mut it = rest;
        while let Some(k) = it.next() {
            let key = k
                .strip_prefix("--")
                .ok_or_else(|| anyhow!("unexpected argument {k}"))?;
            let v = it.next().ok_or_else(|| anyhow!("--{key} needs a value"))?;
            map.entry(key.to_owned()).or_default().push(v);
        }
        Ok(Args(map))
    }

    /// The value of `--key` (the last one when given several times), if given.
    pub fn get(&self, key: &str) -> Option<String> {
        self.0.get(key).and_then(|v| v.last()).cloned()
    }

    /// Every value of `--key`, in order.
    #[allow(
        dead_code,
        reason = "the bench driver reads repeated keys, flood does not"
    )]
    pub fn all(&self, key: &str) -> Vec<String> {
        self.0.get(key).cloned().unwrap_or_default()
    }

    pub fn str(&self, key: &str) -> anyhow::Result<String> {
        self.get(key).ok_or_else(|| anyhow!("--{key} is required"))
    }

    pub fn num<T: std::str::FromStr>(&self, key: &str, default: T) -> anyhow::Result<T> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| anyhow!("--{key}: not a number")),
        }
    }
}

/// One HTTP/1.1 keep-alive connection, far lighter than an HTTP client library, so that the
/// machine spends its time on the server.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

pub struct Response {
    pub status: u16,
    /// The header lines, as sent.
    #[allow(
        dead_code,
        reason = "the bench driver's sign-in reads headers, flood does not"
    )]
    pub head: String,
    pub body: Vec<u8>,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: vec![0u8; 16 * 1024],
        })
    }

    pub async fn send(&mut self, request: &[u8]) -> std::io::Result<Response> {
        self.stream.write_all(request).await?;
        let mut filled = 0;
        loop {
            if filled == self.buf.len() {
                self.buf.resize(filled * 2, 0);
            }
            let n = self.stream.read(&mut self.buf[filled..]).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            filled += n;
            let Some(head_end) = self.buf[..filled].windows(4).position(|w| w == b"\r\n\r\n")
            else {
                continue;
            };
            let head = String::from_utf8_lossy(&self.buf[..head_end]).to_ascii_lowercase();
            if head.contains("transfer-encoding: chunked") {
                return Err(std::io::Error::other("chunked answers are not read"));
            }
            let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0u16);
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let end = head_end + 4 + len;
            if self.buf.len() < end {
                self.buf.resize(end, 0);
            }
            if filled >= end {
                return Ok(Response {
                    status,
                    head: String::from_utf8_lossy(&self.buf[..head_end]).into_owned(),
                    body: self.buf[head_end + 4..end].to_vec(),
                });
            }
        }
    }
}

/// A `POST /token` with this form body, and HTTP Basic credentials when given.
pub fn post_token(body: &str, basic: Option<&str>) -> Vec<u8> {
    let auth = basic
        .map(|b| format!("Authorization: Basic {b}\r\n"))
        .unwrap_or_default();
    format!(
        "POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// One form value, URL-encoded.
pub fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
