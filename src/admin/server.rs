//! The server side of the admin socket.
//!
//! Executor 0 listens (a Unix socket path cannot be shared with SO_REUSEPORT), reads the
//! frames and sends each decoded request to the executor that owns the user's partition,
//! which runs the import there with the same [`StoreSink`] the offline tool uses and
//! answers on a oneshot channel. No store is touched from a core that does not own it. (An
//! IMAP session moves its socket to the owner instead; glommio's Unix streams do not give
//! out their descriptor, and an import's cost is in the store, not in reading the socket.)
//!
//! Whoever can connect can write into any mailbox, so the socket is made mode 0600 before it
//! gets its name (bound under a temporary name, restricted, then renamed), inside a data dir
//! that is itself 0700.

use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use futures_channel::{mpsc, oneshot};
use futures_lite::{future, AsyncReadExt, AsyncWriteExt, StreamExt};
use glommio::net::{UnixListener, UnixStream};
use tracing::{debug, info, warn};

use super::protocol::{frame_len, Reply, Request, VERSION};
use crate::server::partition::partition_of;
use crate::server::runtime::Executor;
use crate::tools::import::{Incoming, Sink, StoreSink};

/// One request for the owner executor, with where its reply goes.
type Exchange = (Request, oneshot::Sender<Reply>);

/// An admin connection's work, sent to the executor that owns its user.
pub struct AdminSession {
    /// The canonical user name from the hello.
    pub user: String,
    /// The connection's requests in order; closed when the connection ends.
    pub requests: mpsc::Receiver<Exchange>,
}

/// Binds the admin socket at `path` (replacing a stale one: the caller holds the data-dir
/// lock, so no other server can be using it), private to this OS user from the start.
pub fn bind(path: &Path) -> Result<UnixListener, String> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let shown = path.display();
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(format!(
                "[admin] socket {shown}: exists and is not a socket; remove it or choose \
                 another path"
            ));
        }
        std::fs::remove_file(path).map_err(|e| format!("[admin] socket {shown}: {e}"))?;
    }
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".{}.new", std::process::id()));
    let temporary = std::path::PathBuf::from(temporary);
    let _ = std::fs::remove_file(&temporary);
    let listener = UnixListener::bind(&temporary)
        .map_err(|e| format!("[admin] socket {shown}: cannot listen: {e}"))?;
    std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&temporary);
            format!("[admin] socket {shown}: {e}")
        })?;
    Ok(listener)
}

/// Accepts admin connections until shutdown.
pub async fn accept_loop(exec: Rc<Executor>, listener: UnixListener) {
    loop {
        let accepted = future::or(async { Some(listener.accept().await) }, async {
            exec.shutting_down().await;
            None
        })
        .await;
        match accepted {
            None => return,
            Some(Ok(stream)) => {
                if !exec.spawn_task(connection(exec.clone(), stream)) {
                    return;
                }
            }
            Some(Err(e)) => {
                warn!("admin socket: accept failed: {e}");
                glommio::timer::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Reads one connection's frames and relays them to the owner of its user.
async fn connection(exec: Rc<Executor>, mut stream: UnixStream) {
    let user = match hello(&exec, &mut stream).await {
        Ok(user) => user,
        Err(why) => {
            debug!("admin socket: {why}");
            let _ = send(&mut stream, &Reply::Error(why)).await;
            return;
        }
    };
    let (to_owner, requests) = mpsc::channel(1);
    let owner = exec.owner_of(&user);
    let session = AdminSession {
        user: user.clone(),
        requests,
    };
    if owner == exec.id {
        start(exec.clone(), session);
    } else if exec
        .send_to(owner, crate::server::mesh::MeshMessage::Admin(session))
        .await
        .is_err()
    {
        let _ = send(&mut stream, &Reply::Error(stopping())).await;
        return;
    }
    relay(&exec, stream, to_owner).await;
}

/// Reads and checks the hello; the canonical user name.
async fn hello(exec: &Executor, stream: &mut UnixStream) -> Result<String, String> {
    match read_request(exec, stream).await? {
        Request::Hello { version, user } if version == VERSION => {
            crate::auth::canonical_name(&user).map_err(|e| e.to_string())
        }
        Request::Hello { version, .. } => Err(format!(
            "the tool speaks admin protocol {version}, this server {VERSION}: use the ringmail \
             binary the server runs"
        )),
        _ => Err("expected a hello".into()),
    }
}

/// Passes requests to the owner and its replies back, one at a time, until the connection
/// or the import ends.
async fn relay(exec: &Executor, mut stream: UnixStream, mut to_owner: mpsc::Sender<Exchange>) {
    // The owner's first answer is to the hello: who serves the user.
    let mut request = Request::Hello {
        version: VERSION,
        user: String::new(),
    };
    loop {
        let end = matches!(request, Request::End);
        let (reply_to, reply) = oneshot::channel();
        let reply = match futures_lite::SinkExt::send(&mut to_owner, (request, reply_to)).await {
            Ok(()) => reply.await.unwrap_or_else(|_| Reply::Error(stopping())),
            Err(_) => Reply::Error(stopping()),
        };
        let failed = matches!(reply, Reply::Error(_));
        if send(&mut stream, &reply).await.is_err() || failed || end {
            return;
        }
        request = match read_request(exec, &mut stream).await {
            Ok(r) => r,
            Err(why) => {
                // Whatever the import stored so far is durable; the tool says to run it again.
                let _ = send(&mut stream, &Reply::Error(why)).await;
                return;
            }
        };
    }
}

fn stopping() -> String {
    "the server is shutting down; run the import again once it is back".to_string()
}

/// Serves an admin session on the executor that owns its user.
pub fn start(exec: Rc<Executor>, session: AdminSession) {
    let task = serve(exec.clone(), session);
    if !exec.spawn_task(task) {
        debug!("admin session dropped: shutting down");
    }
}

async fn serve(exec: Rc<Executor>, session: AdminSession) {
    let AdminSession { user, mut requests } = session;
    let config = exec.config();
    let p = partition_of(&user, config.storage.partitions);
    let mut sink = match exec.store.get(p).await {
        Ok(mail) => StoreSink::new(mail, config, &user),
        Err(e) => {
            if let Some((_, reply)) = requests.next().await {
                let _ = reply.send(Reply::Error(format!("partition {p} of {user}: {e}")));
            }
            return;
        }
    };
    info!(user = %user, executor = exec.id, "admin: import started");
    while let Some((request, reply)) = requests.next().await {
        let done = match request {
            Request::Hello { .. } => Ok(format!(
                "ringmail pid {}, executor {} (the owner of {user})",
                std::process::id(),
                exec.id
            )),
            Request::SetUpUser(list) => sink.set_up_user(&list).await.map(|()| String::new()),
            Request::Open { mailbox, ids } => sink.open(&mailbox, ids).await.map(|()| String::new()),
            Request::Batch(messages) => add_all(&mut sink, messages).await.map(|()| String::new()),
            Request::Close => sink.close().await.map(|()| String::new()),
            Request::End => {
                let answer = match sink.close().await {
                    Ok(()) => {
                        let report = sink.into_report();
                        info!(user = %user, imported = report.imported, "admin: import done");
                        Reply::Report(report)
                    }
                    Err(why) => Reply::Error(why),
                };
                let _ = reply.send(answer);
                return;
            }
        };
        let _ = reply.send(match done {
            Ok(text) => Reply::Ok(text),
            Err(why) => Reply::Error(why),
        });
    }
    // The connection ended before the import did: what was committed stays, the rest of
    // the open mailbox's last batch is stored too rather than dropped half-way.
    if let Err(why) = sink.close().await {
        warn!(user = %user, "admin: import cut off: {why}");
    }
}

async fn add_all(sink: &mut StoreSink, messages: Vec<Incoming>) -> Result<(), String> {
    for m in messages {
        sink.add(m).await?;
        // MIME analysis of a large batch must not hold up the sessions sharing this core.
        glommio::yield_if_needed().await;
    }
    Ok(())
}

/// Reads one request, waiting at most the idle limit and not past shutdown.
async fn read_request(exec: &Executor, stream: &mut UnixStream) -> Result<Request, String> {
    let idle = Duration::from_secs(exec.config().admin.idle_timeout_secs);
    let read = async {
        let mut header = [0u8; 4];
        stream
            .read_exact(&mut header)
            .await
            .map_err(|e| format!("connection lost: {e}"))?;
        let len = frame_len(header).map_err(|e| e.to_string())?;
        let mut frame = vec![0u8; len];
        stream
            .read_exact(&mut frame)
            .await
            .map_err(|e| format!("connection lost: {e}"))?;
        Request::decode(&frame).map_err(|e| e.to_string())
    };
    let stopping = async {
        exec.shutting_down().await;
        Err(stopping())
    };
    match glommio::timer::timeout(idle, async { Ok(future::or(read, stopping).await) }).await {
        Ok(result) => result,
        Err(_) => Err(format!("idle for {} s: closed", idle.as_secs())),
    }
}

async fn send(stream: &mut UnixStream, reply: &Reply) -> std::io::Result<()> {
    stream.write_all(&reply.encode()).await?;
    stream.flush().await
}
