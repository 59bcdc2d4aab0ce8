//! One LMTP connection: the command loop, the transaction, DATA and the replies.
//!
//! Commands are answered in order; replies are buffered while more pipelined commands wait
//! in the input and written when the input runs dry (RFC 2920), so a pipelining MTA gets one
//! write per group.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::future;
use tracing::{debug, info, warn, Instrument};

use super::command::{self, Command, Recipient};
use super::data::DotDecoder;
use super::delivery::{Delivered, Delivery};
use super::{count, Tally};
use ringmail_auth::Lookup;
use ringmail_metrics::Listener;
use ringmail_runtime::conn::Conn;
use ringmail_runtime::runtime::Executor;
use ringmail_store::StoreError;

/// Longest command line accepted (RFC 5321 asks for 512; extensions make lines longer).
const MAX_LINE: usize = 4096;
/// Unknown or malformed commands tolerated before the connection is closed.
const MAX_BAD_COMMANDS: u32 = 20;
/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 64 * 1024;

/// Starts a session for an accepted connection, inside the executor's session gate.
pub fn start(exec: Rc<Executor>, conn: Conn) {
    let span = tracing::info_span!("lmtp", id = exec.new_session_id(), client = %conn.peer);
    let slot = exec.admit(false);
    let task = {
        let exec = exec.clone();
        async move {
            let _slot = slot;
            // Counted inside the task, so a session refused at shutdown is never counted.
            exec.metrics.borrow_mut().connection_open(Listener::Lmtp, 1);
            let mut session = Session {
                exec,
                conn,
                input: Vec::new(),
                out: Vec::new(),
                greeted: false,
                tx: None,
                bad_commands: 0,
            };
            session.run().await;
            session.conn.close().await;
            session
                .exec
                .metrics
                .borrow_mut()
                .connection_open(Listener::Lmtp, -1);
        }
    };
    if !exec.spawn_task(task.instrument(span)) {
        debug!("not starting an LMTP session: shutting down");
    }
}

/// An open mail transaction (after MAIL FROM).
struct Transaction {
    sender: String,
    size: Option<u64>,
    recipients: Vec<Rcpt>,
}

/// An accepted recipient.
struct Rcpt {
    /// The address as the client wrote it (for Delivered-To and the replies).
    path: String,
    user: String,
    folder: Option<String>,
}

/// How reading stopped.
enum Stop {
    Eof,
    Timeout,
    Shutdown,
    Io(std::io::Error),
}

struct Session {
    exec: Rc<Executor>,
    conn: Conn,
    /// Received bytes not yet consumed.
    input: Vec<u8>,
    /// Replies not yet written.
    out: Vec<u8>,
    greeted: bool,
    tx: Option<Transaction>,
    bad_commands: u32,
}

impl Session {
    async fn run(&mut self) {
        self.reply(&format!("220 {} ringmail LMTP ready", hostname()));
        loop {
            while let Some(line) = self.take_line() {
                if !self.command(&line).await {
                    let _ = self.flush().await;
                    return;
                }
            }
            if self.input.len() > MAX_LINE {
                self.reply("500 5.5.2 Line too long");
                let _ = self.flush().await;
                return;
            }
            if self.flush().await.is_err() {
                return;
            }
            match self.read_more().await {
                Ok(()) => {}
                Err(stop) => {
                    self.stopped(stop, false).await;
                    return;
                }
            }
        }
    }

    /// Handles one command line; false ends the session.
    async fn command(&mut self, line: &[u8]) -> bool {
        let cmd = match command::parse(line) {
            Ok(cmd) => cmd,
            Err(command::Reject(reply)) => {
                self.reply(reply);
                self.bad_commands += 1;
                if self.bad_commands >= MAX_BAD_COMMANDS {
                    self.reply("421 4.7.0 Too many errors, closing");
                    return false;
                }
                return true;
            }
        };
        match cmd {
            Command::Lhlo(_) => {
                self.greeted = true;
                self.tx = None;
                let max = self.exec.config().lmtp.max_message_size;
                let starttls = if self.can_start_tls() {
                    "250-STARTTLS\r\n"
                } else {
                    ""
                };
                self.reply(&format!(
                    "250-{}\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n{starttls}250 SIZE {max}",
                    hostname()
                ));
            }
            Command::SmtpGreeting => self.reply("500 5.5.1 This is LMTP: use LHLO"),
            Command::MailFrom { .. } if !self.greeted => self.reply("503 5.5.1 LHLO first"),
            Command::MailFrom { .. } if self.tx.is_some() => {
                self.reply("503 5.5.1 MAIL FROM already given")
            }
            Command::MailFrom { sender, size } => {
                let max = self.exec.config().lmtp.max_message_size;
                if size.is_some_and(|s| s > max) {
                    count(&self.exec, Tally::TooLarge);
                    self.reply("552 5.3.4 Message size exceeds fixed maximum message size");
                } else {
                    self.tx = Some(Transaction {
                        sender,
                        size,
                        recipients: Vec::new(),
                    });
                    self.reply("250 2.1.0 Sender OK");
                }
            }
            Command::RcptTo(path) => self.rcpt(path).await,
            Command::Data => return self.data().await,
            Command::Rset => {
                self.tx = None;
                self.reply("250 2.0.0 OK");
            }
            Command::Noop => self.reply("250 2.0.0 OK"),
            Command::Vrfy => self.reply("252 2.5.0 Cannot verify, but will accept and try"),
            Command::Quit => {
                self.reply("221 2.0.0 Bye");
                return false;
            }
            Command::StartTls if self.conn.is_tls() => self.reply("503 5.5.1 TLS already active"),
            Command::StartTls if !self.can_start_tls() => self.reply("454 4.7.0 TLS not available"),
            Command::StartTls => return self.start_tls().await,
        }
        true
    }

    /// Whether STARTTLS is offered: a certificate is configured and TLS is not on yet.
    fn can_start_tls(&self) -> bool {
        !self.conn.is_tls() && self.exec.tls().is_some()
    }

    /// STARTTLS (RFC 3207): the handshake, then a fresh start in which the client must send
    /// LHLO again. Anything the client pipelined after STARTTLS arrived in plaintext and
    /// could have been injected, so it is dropped. False when the session cannot go on.
    async fn start_tls(&mut self) -> bool {
        let Some(config) = self.exec.tls() else {
            return false;
        };
        self.reply("220 2.0.0 Ready to start TLS");
        if self.flush().await.is_err() {
            return false;
        }
        self.input.clear();
        let idle = Duration::from_secs(self.exec.config().lmtp.idle_timeout_secs);
        let conn = &mut self.conn;
        let handshake = glommio::timer::timeout(idle, async {
            conn.start_tls(config).await.map_err(Into::into)
        })
        .await;
        if let Err(e) = handshake {
            debug!("LMTP STARTTLS handshake failed: {e}");
            return false;
        }
        self.greeted = false;
        self.tx = None;
        true
    }

    async fn rcpt(&mut self, path: String) {
        let config = self.exec.config();
        let Some(tx) = self.tx.as_ref() else {
            self.reply("503 5.5.1 MAIL FROM first");
            return;
        };
        if tx.recipients.len() >= config.lmtp.max_recipients {
            self.reply("452 4.5.3 Too many recipients");
            return;
        }
        let size = tx.size.unwrap_or(0);
        let rcpt = Recipient::parse(&path, &config.lmtp.recipient_delimiter);
        let (user, storage_quota) = match find_user(&self.exec, &rcpt).await {
            Found::User(user, storage_quota) => (user, storage_quota),
            Found::Unknown => {
                count(&self.exec, Tally::UnknownUser);
                info!(recipient = %path, "LMTP: unknown user");
                self.reply(&format!("550 5.1.1 <{path}> User unknown"));
                return;
            }
            Found::Disabled => {
                count(&self.exec, Tally::UnknownUser);
                info!(recipient = %path, "LMTP: the user is disabled in the directory");
                self.reply(&format!("550 5.2.1 <{path}> Mailbox disabled"));
                return;
            }
            Found::Unavailable(why) => {
                // The user may well exist: the MTA must keep the message and retry, never
                // bounce it.
                count(&self.exec, Tally::Failed);
                warn!(recipient = %path, "LMTP: the user directory cannot answer: {why}");
                self.reply(&format!(
                    "451 4.4.3 <{path}> Temporary user lookup failure, try again later"
                ));
                return;
            }
        };
        match crate::forward::check_quota(&self.exec, &user, size, storage_quota).await {
            Ok(()) => {}
            Err(StoreError::OverQuota) => {
                count(&self.exec, Tally::OverQuota);
                info!(recipient = %path, "LMTP: over quota at RCPT");
                self.reply(&format!("552 5.2.2 <{path}> Mailbox is full"));
                return;
            }
            Err(e) => {
                warn!(recipient = %path, "LMTP: cannot check the recipient: {e}");
                self.reply(&format!("451 4.3.0 <{path}> Temporary failure"));
                return;
            }
        }
        let folder = rcpt.detail.filter(|_| config.lmtp.save_to_detail_mailbox);
        if let Some(tx) = self.tx.as_mut() {
            tx.recipients.push(Rcpt { path, user, folder });
        }
        self.reply("250 2.1.5 Recipient OK");
    }

    /// DATA: reads the message, stores one copy per recipient, and replies once per
    /// recipient, in RCPT order, each as soon as its copy is durable.
    async fn data(&mut self) -> bool {
        let Some(tx) = self.tx.take() else {
            self.reply("503 5.5.1 MAIL FROM first");
            return true;
        };
        if tx.recipients.is_empty() {
            self.reply("503 5.5.1 No valid recipients");
            return true;
        }
        self.reply("354 2.0.0 Send the message, end with <CRLF>.<CRLF>");
        if self.flush().await.is_err() {
            return false;
        }
        let config = self.exec.config();
        let mut decoder = DotDecoder::new(config.lmtp.max_message_size as usize);
        let used = decoder.feed(&self.input);
        self.input.drain(..used);
        while !decoder.is_done() {
            if let Err(stop) = self.read_data(&mut decoder).await {
                count(&self.exec, Tally::Aborted);
                warn!(
                    received = decoder.total(),
                    recipients = tx.recipients.len(),
                    "LMTP: client stopped in the middle of DATA; nothing delivered"
                );
                self.stopped(stop, true).await;
                return false;
            }
        }
        if decoder.is_too_large() {
            count(&self.exec, Tally::TooLarge);
            warn!(
                size = decoder.total(),
                max = config.lmtp.max_message_size,
                "LMTP: message over the size limit refused"
            );
            for _ in &tx.recipients {
                self.reply("552 5.3.4 Message size exceeds fixed maximum message size");
            }
            return true;
        }
        let body = Arc::new(decoder.into_message());
        let now = unix_now();
        // Every copy is started at once (the owners' group commits overlap); the replies
        // still go out in recipient order.
        let copies: Vec<_> = tx
            .recipients
            .iter()
            .map(|r| {
                let delivery = Delivery {
                    user: r.user.clone(),
                    folder: r.folder.clone(),
                    headers: trace_headers(&tx.sender, &r.path),
                    body: body.clone(),
                    internal_date: now,
                    sender: tx.sender.clone(),
                    recipient: r.path.clone(),
                };
                glommio::spawn_local(crate::forward::deliver(self.exec.clone(), delivery))
            })
            .collect();
        for (r, copy) in tx.recipients.iter().zip(copies) {
            let line = match copy.await {
                Ok(Delivered {
                    rejected: Some(reason),
                    ..
                }) => {
                    count(&self.exec, Tally::Rejected);
                    info!(recipient = %r.path, user = %r.user, "LMTP: rejected by the user's Sieve script");
                    rejected_reply(&r.path, &reason)
                }
                Ok(done) => {
                    count(&self.exec, Tally::Delivered);
                    info!(recipient = %r.path, user = %r.user, mailbox = %done.mailbox, uid = done.uid, size = body.len(), "LMTP: delivered");
                    format!("250 2.0.0 <{}> Saved in {}", r.path, done.mailbox)
                }
                Err(e) => {
                    let line = failure_reply(&r.path, &e);
                    match e {
                        StoreError::OverQuota => count(&self.exec, Tally::OverQuota),
                        StoreError::TooLarge => count(&self.exec, Tally::TooLarge),
                        _ => count(&self.exec, Tally::Failed),
                    }
                    warn!(recipient = %r.path, "LMTP: not delivered: {e}");
                    line
                }
            };
            self.reply(&line);
            if self.flush().await.is_err() {
                return false;
            }
        }
        true
    }

    /// Feeds socket bytes to `decoder` until it is done or reading stops; bytes after the
    /// terminator stay in `input` for the next command.
    async fn read_data(&mut self, decoder: &mut DotDecoder) -> Result<(), Stop> {
        let start = self.input.len();
        self.read_more().await?;
        let used = decoder.feed(&self.input[start..]);
        self.input.drain(..start + used);
        Ok(())
    }

    /// Ends a session that stopped reading: says why where the client can still hear it.
    async fn stopped(&mut self, stop: Stop, in_data: bool) {
        match stop {
            Stop::Eof if in_data => {}
            Stop::Eof => debug!("client closed the connection"),
            Stop::Timeout => {
                info!("LMTP: idle timeout");
                self.reply("421 4.4.2 Idle timeout, closing");
            }
            Stop::Shutdown => self.reply("421 4.3.2 Server shutting down, try again later"),
            Stop::Io(e) => debug!("read failed: {e}"),
        }
        let _ = self.flush().await;
    }

    /// Takes one complete line (without its line end) from the input.
    fn take_line(&mut self) -> Option<Vec<u8>> {
        let end = memchr::memchr(b'\n', &self.input)?;
        let mut line: Vec<u8> = self.input.drain(..=end).collect();
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Some(line)
    }

    /// Reads more bytes into `input`, bounded by the idle timeout and shutdown.
    async fn read_more(&mut self) -> Result<(), Stop> {
        let idle = Duration::from_secs(self.exec.config().lmtp.idle_timeout_secs);
        let mut chunk = vec![0u8; READ_CHUNK];
        let conn = &mut self.conn;
        let exec = &self.exec;
        let result = future::or(
            async { Some(conn.read(&mut chunk).await) },
            future::or(
                async {
                    exec.shutting_down().await;
                    None
                },
                async {
                    glommio::timer::sleep(idle).await;
                    Some(Err(std::io::ErrorKind::TimedOut.into()))
                },
            ),
        )
        .await;
        match result {
            None => Err(Stop::Shutdown),
            Some(Ok(0)) => Err(Stop::Eof),
            Some(Ok(n)) => {
                self.input.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Some(Err(e)) if e.kind() == std::io::ErrorKind::TimedOut => Err(Stop::Timeout),
            Some(Err(e)) => Err(Stop::Io(e)),
        }
    }

    fn reply(&mut self, line: &str) {
        self.out.extend_from_slice(line.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let out = std::mem::take(&mut self.out);
        self.conn.write_all(&out).await
    }
}

/// The reply for a copy that could not be stored.
/// Whether a recipient is a user, by the full address or its local part.
enum Found {
    /// The canonical name, and the storage quota the directory names.
    User(String, Option<u64>),
    Unknown,
    Disabled,
    Unavailable(String),
}

/// Finds the recipient in the users file (in memory) and then, when a directory is
/// configured, in the backends in order (a directory search: on the authenticator's lookup
/// threads, never on the executor), so users who exist only in the directory receive mail.
async fn find_user(exec: &Rc<Executor>, rcpt: &Recipient) -> Found {
    let auth = &exec.auth;
    if let Some(user) = auth
        .canonical_user(&rcpt.address)
        .or_else(|| auth.canonical_user(&rcpt.local))
    {
        return Found::User(user, None);
    }
    if !auth.has_directory() {
        return Found::Unknown;
    }
    // A recent answer for the address (or, when it was unknown, the local part) needs no
    // thread; anything else goes to the lookup threads (the directory may be slow: the
    // executor's blocking pool stays free for logins).
    let cached = match auth.cached_recipient(&rcpt.address) {
        Some(Lookup::Unknown) if rcpt.local != rcpt.address => auth.cached_recipient(&rcpt.local),
        answer => answer,
    };
    let lookup = match cached {
        Some(answer) => answer,
        None => {
            let (address, local) = (rcpt.address.clone(), rcpt.local.clone());
            auth.on_lookup_thread(move |auth| match auth.lookup_recipient(&address) {
                Lookup::Unknown if local != address => auth.lookup_recipient(&local),
                found => found,
            })
            .await
            .unwrap_or_else(Lookup::Unavailable)
        }
    };
    match lookup {
        Lookup::Found(info) => Found::User(info.name, info.quota_bytes),
        Lookup::Unknown => Found::Unknown,
        Lookup::Disabled => Found::Disabled,
        Lookup::Unavailable(why) => Found::Unavailable(why),
    }
}

fn failure_reply(path: &str, e: &StoreError) -> String {
    match e {
        StoreError::OverQuota => format!("552 5.2.2 <{path}> Mailbox is full"),
        StoreError::TooLarge => format!("552 5.3.4 <{path}> Message too large"),
        e if e.is_disk_full() => format!("452 4.3.1 <{path}> Insufficient system storage"),
        _ => format!("451 4.3.0 <{path}> Temporary failure, try again later"),
    }
}

/// The reply for a recipient whose Sieve script refused the message (RFC 5429 §2.1.1):
/// the script's reason on one line, without control characters, cut to a line's length.
fn rejected_reply(path: &str, reason: &str) -> String {
    let text: String = reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let text = text.trim().to_string();
    let mut cut = text.len().min(400);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let reason = if text.is_empty() {
        "Rejected by the recipient's filter"
    } else {
        &text[..cut]
    };
    format!("550 5.7.1 <{path}> {reason}")
}

/// `Return-Path` and `Delivered-To` for one recipient's copy (RFC 5321 4.4; Dovecot's
/// Delivered-To). Control characters cannot reach here: the command parser refuses them.
fn trace_headers(sender: &str, recipient: &str) -> Vec<u8> {
    format!("Return-Path: <{sender}>\r\nDelivered-To: {recipient}\r\n").into_bytes()
}

/// The name in the greeting and the LHLO reply.
pub(crate) fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into a buffer we own.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(name) if !name.is_empty() => name.to_string(),
        _ => "localhost".into(),
    }
}

/// Seconds since the Unix epoch (the INTERNALDATE of a delivered copy).
/// Seconds since the epoch now.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
