//! Test harness: a session served on a thread over a real socket (a blocking stream in a
//! `futures_io` coat, run with `block_on`), a user database, and a line-reading client.

#![allow(dead_code)] // each test binary uses part of it

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use futures_lite::future::block_on;
use ringmail_managesieve::{
    AfterFailure, Authenticator, Exit, FuturesIo, MemoryScripts, Options, Security, Session,
    Verdict,
};

/// A blocking stream seen as an async one: each poll does the blocking call. Fine on a
/// thread of its own, which is all the session needs here.
pub struct Blocking<S>(pub S);

impl<S: Read + Unpin> futures_lite::AsyncRead for Blocking<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(self.get_mut().0.read(buf))
    }
}

impl<S: Write + Unpin> futures_lite::AsyncWrite for Blocking<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(self.get_mut().0.write(buf))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.get_mut().0.flush())
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A byte stream of either end, plain or TLS.
pub trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// alice/secret logs in; "down" finds the user database unavailable. The third failure
/// of a connection disconnects.
#[derive(Default)]
pub struct Users {
    pub failures: AtomicU32,
}

impl Authenticator for Users {
    async fn verify(&self, user: &str, password: &[u8], authzid: Option<&str>) -> Verdict {
        match (user, password, authzid) {
            ("alice", b"secret", None) => Verdict::Ok("alice".into()),
            ("down", _, _) => Verdict::Unavailable,
            _ => Verdict::BadCredentials,
        }
    }

    async fn failed(&self) -> AfterFailure {
        if self.failures.fetch_add(1, Ordering::SeqCst) + 1 >= 3 {
            AfterFailure::Disconnect
        } else {
            AfterFailure::Continue
        }
    }
}

/// A self-signed certificate for "localhost": the server's config and the client's.
pub struct Tls {
    pub server: Arc<rustls::ServerConfig>,
    pub client: Arc<rustls::ClientConfig>,
}

impl Tls {
    pub fn new() -> Tls {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let cert = certified.cert.der().clone();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(
            rustls::pki_types::PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()),
        );
        let server = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).unwrap();
        let client = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Tls {
            server: Arc::new(server),
            client: Arc::new(client),
        }
    }
}

/// Serves one connection on a thread until the session ends; STARTTLS is carried out with
/// `tls`. The thread returns the exits `run` gave, in order.
pub fn serve(
    stream: Box<dyn Stream>,
    options: Arc<Options>,
    security: Security,
    scripts: Arc<MemoryScripts>,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> JoinHandle<Vec<Exit>> {
    std::thread::spawn(move || {
        let users = Users::default();
        let mut session = Session::new(options, security);
        let mut stream = stream;
        let mut exits = Vec::new();
        loop {
            let mut io = FuturesIo(Blocking(&mut stream));
            let exit = match block_on(session.run(&mut io, &users, &*scripts)) {
                Ok(exit) => exit,
                Err(_) => return exits,
            };
            exits.push(exit);
            match (exit, &tls) {
                (Exit::StartTls, Some(config)) => {
                    let conn = rustls::ServerConnection::new(config.clone()).unwrap();
                    // The handshake runs on the first read or write.
                    stream = Box::new(rustls::StreamOwned::new(conn, stream));
                    session.tls_started();
                }
                _ => return exits,
            }
        }
    })
}

/// The client end: sends raw bytes, reads responses.
pub struct Client {
    stream: Option<Box<dyn Stream>>,
    buf: Vec<u8>,
}

impl Client {
    pub fn new(stream: Box<dyn Stream>) -> Client {
        Client {
            stream: Some(stream),
            buf: Vec::new(),
        }
    }

    fn stream(&mut self) -> &mut Box<dyn Stream> {
        self.stream.as_mut().expect("stream")
    }

    pub fn send(&mut self, raw: &[u8]) {
        self.stream().write_all(raw).unwrap();
        self.stream().flush().unwrap();
    }

    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        let n = self.stream().read(&mut chunk).unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    /// One line with its CRLF and, when it ends in a literal, the literal's bytes and the
    /// rest of the line after them. None at the end of the stream.
    pub fn line(&mut self) -> Option<String> {
        let mut out = Vec::new();
        loop {
            while !self.buf.windows(2).any(|w| w == b"\r\n") {
                if !self.fill() {
                    return None;
                }
            }
            let end = self.buf.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
            let line: Vec<u8> = self.buf.drain(..end).collect();
            out.extend_from_slice(&line);
            let Some(size) = literal_size(&line[..line.len() - 2]) else {
                return Some(String::from_utf8(out).expect("UTF-8 response"));
            };
            while self.buf.len() < size {
                if !self.fill() {
                    return None;
                }
            }
            out.extend(self.buf.drain(..size));
        }
    }

    /// Lines up to and including the one that starts with OK, NO or BYE.
    pub fn response(&mut self) -> String {
        let mut out = String::new();
        loop {
            let line = self
                .line()
                .unwrap_or_else(|| panic!("connection closed after {out:?}"));
            out.push_str(&line);
            if ["OK", "NO", "BYE"].iter().any(|s| line.starts_with(s)) {
                return out;
            }
        }
    }

    pub fn command(&mut self, raw: &str) -> String {
        self.send(raw.as_bytes());
        self.response()
    }

    /// Wraps the stream in TLS (after STARTTLS's OK), trusting `config`'s roots.
    pub fn start_tls(&mut self, config: Arc<rustls::ClientConfig>) {
        assert!(
            self.buf.is_empty(),
            "unread data before the handshake: {:?}",
            self.buf
        );
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let conn = rustls::ClientConnection::new(config, name).unwrap();
        let plain = self.stream.take().unwrap();
        self.stream = Some(Box::new(rustls::StreamOwned::new(conn, plain)));
    }

    /// Whether the server has closed the connection (nothing more to read).
    pub fn closed(&mut self) -> bool {
        self.buf.is_empty() && !self.fill()
    }
}

/// `{n}` or `{n+}` at the end of a line.
fn literal_size(line: &[u8]) -> Option<usize> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let digits = &inner[open + 1..];
    std::str::from_utf8(digits.strip_suffix(b"+").unwrap_or(digits))
        .ok()?
        .parse()
        .ok()
}

/// A connected pair of sockets with bounded waits on the client side.
pub fn socket_pair() -> (Box<dyn Stream>, Box<dyn Stream>) {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    a.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    b.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    (Box::new(a), Box::new(b))
}

pub fn b64(s: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A literal argument: `{n+}` CRLF and the text.
pub fn lit(s: &str) -> String {
    format!("{{{}+}}\r\n{s}", s.len())
}
