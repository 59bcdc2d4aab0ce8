//! The tool's side of the admin socket: a [`Sink`] that sends what the import's source side
//! reads to the running server, in batches, and an export [`Source`] that asks the server
//! for a user's mailboxes and messages.
//!
//! Plain blocking socket I/O: the tool does one thing at a time and needs no executor (nor
//! the memlock limit glommio wants). One batch may be in flight while the next is read from
//! disk, so the server's commit and the tool's file reads overlap.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use super::protocol::{frame_len, Reply, Request, BATCH_BYTES, BATCH_MESSAGES, VERSION};
use crate::tools::export::{Listing, Source, READ_BATCH_MESSAGES};
use crate::tools::import::{FolderIds, ImportReport, Incoming, Sink};

/// A connection to a running server's admin socket, serving one user.
pub struct AdminClient {
    stream: UnixStream,
    /// Who answered the hello (pid and executor), for the tool's summary.
    server: String,
    batch: Vec<Incoming>,
    batch_bytes: usize,
    /// Requests sent whose reply has not been read yet.
    in_flight: usize,
    /// Messages the server could never take, found before sending them.
    problems: Vec<String>,
}

impl AdminClient {
    /// Connects to the socket at `path` and says which user the work is for.
    pub fn connect(path: &Path, user: &str) -> Result<AdminClient, String> {
        let stream = connect_while_starting(path)
            .map_err(|e| format!("cannot connect to the admin socket {}: {e}", path.display()))?;
        let mut client = AdminClient {
            stream,
            server: String::new(),
            batch: Vec::new(),
            batch_bytes: 0,
            in_flight: 0,
            problems: Vec::new(),
        };
        client.send(&Request::Hello {
            version: VERSION,
            user: user.to_string(),
        })?;
        client.server = client.ok()?;
        Ok(client)
    }

    /// Who answered: the server's pid and the executor that owns the user.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Ends the import and returns the server's report; everything is durable by then.
    pub fn finish(mut self) -> Result<ImportReport, String> {
        self.send_batch()?;
        self.send(&Request::End)?;
        while self.in_flight > 1 {
            self.ok()?;
        }
        match self.reply()? {
            Reply::Report(mut report) => {
                report.problems.append(&mut self.problems);
                Ok(report)
            }
            Reply::Error(why) => Err(why),
            other => Err(unexpected(&other)),
        }
    }

    fn send(&mut self, request: &Request) -> Result<(), String> {
        if let Err(e) = self.stream.write_all(&request.encode()) {
            // The server may have refused an earlier request and closed: its reason is
            // waiting in the socket, behind the answers to requests before it, and says
            // more than EPIPE.
            while let Ok(reply) = self.reply() {
                if let Reply::Error(why) = reply {
                    return Err(why);
                }
            }
            return Err(format!("the server closed the admin connection: {e}"));
        }
        self.in_flight += 1;
        Ok(())
    }

    fn reply(&mut self) -> Result<Reply, String> {
        let lost = |e: std::io::Error| format!("the server closed the admin connection: {e}");
        let mut header = [0u8; 4];
        self.stream.read_exact(&mut header).map_err(lost)?;
        let len = frame_len(header).map_err(|e| e.to_string())?;
        let mut frame = vec![0u8; len];
        self.stream.read_exact(&mut frame).map_err(lost)?;
        self.in_flight = self.in_flight.saturating_sub(1);
        Reply::decode(&frame).map_err(|e| e.to_string())
    }

    /// Reads one reply that must be an `Ok`.
    fn ok(&mut self) -> Result<String, String> {
        match self.reply()? {
            Reply::Ok(text) => Ok(text),
            Reply::Error(why) => Err(why),
            other => Err(unexpected(&other)),
        }
    }

    /// Sends `request` and waits for its answer (an export question: nothing else is in
    /// flight then).
    pub(crate) fn ask(&mut self, request: &Request) -> Result<Reply, String> {
        self.settle()?;
        self.send(request)?;
        match self.reply()? {
            Reply::Error(why) => Err(why),
            reply => Ok(reply),
        }
    }

    /// Waits until nothing is in flight.
    fn settle(&mut self) -> Result<(), String> {
        while self.in_flight > 0 {
            self.ok()?;
        }
        Ok(())
    }

    fn send_batch(&mut self) -> Result<(), String> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = Request::Batch(std::mem::take(&mut self.batch));
        self.batch_bytes = 0;
        self.send(&batch)?;
        // One batch stays in flight while the next one is read from disk.
        while self.in_flight > 1 {
            self.ok()?;
        }
        Ok(())
    }
}

impl crate::tools::sieve::ScriptSink for AdminClient {
    async fn put_script(&mut self, name: &str, source: &str) -> Result<(), String> {
        let request = Request::PutScript {
            name: name.to_string(),
            source: source.to_string(),
        };
        match self.ask(&request)? {
            Reply::Ok(refused) if refused.is_empty() => Ok(()),
            Reply::Ok(refused) => Err(refused),
            other => Err(unexpected(&other)),
        }
    }

    async fn activate_script(&mut self, name: &str) -> Result<(), String> {
        self.ask(&Request::ActivateScript(name.to_string()))
            .map(drop)
    }
}

/// How long a server that holds the data dir may take to open its admin socket: it binds
/// the socket only once its partitions are recovered.
const STARTING: std::time::Duration = std::time::Duration::from_secs(30);

/// Connects to `path`, waiting while the socket is missing or not yet listening (a server
/// that has just started and is still recovering its partitions).
fn connect_while_starting(path: &Path) -> std::io::Result<UnixStream> {
    let deadline = std::time::Instant::now() + STARTING;
    loop {
        match UnixStream::connect(path) {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            result => return result,
        }
    }
}

pub(crate) fn unexpected(reply: &Reply) -> String {
    let what = match reply {
        Reply::Ok(_) => "an ok",
        Reply::Error(_) => "an error",
        Reply::Report(_) => "a report",
        Reply::Names(_) => "a list of names",
        Reply::Listing(_) => "a mailbox listing",
        Reply::Messages(_) => "messages",
        Reply::Scripts(_) => "scripts",
        Reply::SieveLog(_) => "a Sieve log",
    };
    format!("the server answered with {what} where something else was due")
}

impl Source for AdminClient {
    async fn mailboxes(&mut self) -> Result<Vec<String>, String> {
        match self.ask(&Request::ListMailboxes)? {
            Reply::Names(names) => Ok(names),
            other => Err(unexpected(&other)),
        }
    }

    async fn subscriptions(&mut self) -> Result<Vec<String>, String> {
        match self.ask(&Request::Subscriptions)? {
            Reply::Names(names) => Ok(names),
            other => Err(unexpected(&other)),
        }
    }

    async fn listing(&mut self, mailbox: &str) -> Result<Listing, String> {
        match self.ask(&Request::Listing(mailbox.to_string()))? {
            Reply::Listing(listing) => Ok(listing),
            other => Err(unexpected(&other)),
        }
    }

    async fn read(&mut self, mailbox: &str, uids: &[u32]) -> Result<Vec<Option<Vec<u8>>>, String> {
        // The server answers at most a batch's worth; asking for more would only make the
        // request bigger.
        let uids = uids[..uids.len().min(READ_BATCH_MESSAGES)].to_vec();
        let request = Request::Read {
            mailbox: mailbox.to_string(),
            uids,
        };
        match self.ask(&request)? {
            Reply::Messages(list) => Ok(list),
            other => Err(unexpected(&other)),
        }
    }
}

impl Sink for AdminClient {
    async fn set_up_user(&mut self, uidvalidities: &[(String, u32)]) -> Result<(), String> {
        self.send(&Request::SetUpUser(uidvalidities.to_vec()))?;
        self.settle()
    }

    async fn open(&mut self, mailbox: &str, ids: Option<FolderIds>) -> Result<(), String> {
        self.send_batch()?;
        self.send(&Request::Open {
            mailbox: mailbox.to_string(),
            ids,
        })?;
        self.settle()
    }

    async fn add(&mut self, msg: Incoming) -> Result<(), String> {
        if msg.bytes.len() > ringmail_store::MAX_MESSAGE_SIZE {
            // The offline import reports such a message and goes on; so does this one,
            // instead of sending a frame the server must refuse.
            self.problems.push(format!(
                "a message of {} bytes was not stored: over the store's limit of {} bytes",
                msg.bytes.len(),
                ringmail_store::MAX_MESSAGE_SIZE
            ));
            return Ok(());
        }
        if !self.batch.is_empty() && self.batch_bytes + msg.bytes.len() > BATCH_BYTES {
            self.send_batch()?;
        }
        self.batch_bytes += msg.bytes.len();
        self.batch.push(msg);
        if self.batch.len() >= BATCH_MESSAGES {
            self.send_batch()?;
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<(), String> {
        self.send_batch()?;
        self.send(&Request::Close)?;
        self.settle()
    }
}
