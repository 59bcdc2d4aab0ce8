//! The server side of the admin socket: imports into, and exports out of, a running server.
//!
//! Executor 0 listens (a Unix socket path cannot be shared with SO_REUSEPORT), reads the
//! frames and sends each decoded request to the executor that owns the user's partition as
//! a job (`ringmail_runtime::route`); the owner runs the import there with the same
//! [`StoreSink`] the offline tool uses, in a session task of its own, and the job answers
//! with that task's reply. No store is touched from a core that does not own it. (An IMAP
//! session moves its socket to the owner instead; glommio's Unix streams do not give out
//! their descriptor, and an import's cost is in the store, not in reading the socket.)
//!
//! Whoever can connect can write into any mailbox, so the socket is made mode 0600 before it
//! gets its name (bound under a temporary name, restricted, then renamed), inside a data dir
//! that is itself 0700.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use futures_channel::{mpsc, oneshot};
use futures_lite::{future, AsyncReadExt, AsyncWriteExt, StreamExt};
use glommio::net::{UnixListener, UnixStream};
use tracing::{debug, info, warn};

use super::forward::Forwarded;
use super::protocol::{frame_len, Reply, Request, VERSION};
use crate::tools::export::{Source, StoreSource};
use crate::tools::import::{Incoming, Sink, StoreSink};
use crate::tools::sieve;
use ringmail_runtime::nodes::Place;
use ringmail_runtime::partition::partition_of;
use ringmail_runtime::route::{self, OwnerJob};
use ringmail_runtime::runtime::{Executor, LocalTask};

/// One request of an admin connection, run on the executor that owns its user; it answers
/// with the owner's reply.
struct OwnerRequest {
    /// The connection (a process-unique number).
    session: u64,
    /// The canonical user name from the hello.
    user: String,
    /// The request; `None` when the connection ended without finishing.
    request: Option<Request>,
}

impl OwnerJob for OwnerRequest {
    type Answer = Reply;

    fn run(self, exec: Rc<Executor>) -> impl std::future::Future<Output = Reply> {
        let (tell, reply) = oneshot::channel();
        // The end of a connection wants no reply: its sender is dropped at once.
        let responder = self.request.is_some().then_some(tell);
        handle(&exec, self.session, self.user, self.request, responder);
        async move { reply.await.unwrap_or_else(|_| Reply::Error(stopping())) }
    }
}

/// Where the owner's reply to one request goes (nowhere for the end of a connection).
type Responder = Option<oneshot::Sender<Reply>>;

fn respond(responder: Responder, reply: Reply) {
    if let Some(tell) = responder {
        let _ = tell.send(reply);
    }
}

type Queue = mpsc::UnboundedSender<(Option<Request>, Responder)>;

thread_local! {
    /// The admin sessions this executor serves as owner, by connection number.
    static SESSIONS: RefCell<HashMap<u64, Queue>> = RefCell::new(HashMap::new());
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

/// The admin socket as an executor task: executor 0 serves it (a Unix socket path cannot be
/// shared between listeners the way SO_REUSEPORT shares a port); None elsewhere or when the
/// config turns it off.
pub fn task(exec: &Rc<Executor>) -> Result<Option<LocalTask>, String> {
    let Some(path) = exec.config().admin_socket(&exec.data_dir) else {
        return Ok(None);
    };
    if exec.id != 0 {
        return Ok(None);
    }
    let listener = bind(&path)?;
    Ok(Some(Box::pin(accept_loop(exec.clone(), listener))))
}

/// Admin connections served at once. Each may hold a frame of up to `MAX_FRAME` bytes in
/// memory, so even the server's own OS user cannot open an unbounded number of them.
const MAX_CONNECTIONS: usize = 8;

/// One open admin connection, counted until dropped (also when its task panics).
struct Slot(Rc<std::cell::Cell<usize>>);

impl Slot {
    fn take(open: &Rc<std::cell::Cell<usize>>) -> Slot {
        open.set(open.get() + 1);
        Slot(open.clone())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// Accepts admin connections until shutdown.
pub async fn accept_loop(exec: Rc<Executor>, listener: UnixListener) {
    let open = Rc::new(std::cell::Cell::new(0usize));
    loop {
        let accepted = future::or(async { Some(listener.accept().await) }, async {
            exec.shutting_down().await;
            None
        })
        .await;
        match accepted {
            None => return,
            Some(Ok(mut stream)) => {
                if open.get() >= MAX_CONNECTIONS {
                    let why = format!(
                        "{MAX_CONNECTIONS} admin connections are open already; try again when \
                         one has finished"
                    );
                    let _ = send(&mut stream, &Reply::Error(why)).await;
                    continue;
                }
                let slot = Slot::take(&open);
                let exec2 = exec.clone();
                let task = async move {
                    connection(exec2, stream).await;
                    drop(slot);
                };
                if !exec.spawn_task(task) {
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
    let session = exec.new_session_id();
    let owner = exec.owner_of(&user);
    // In a cluster, the node serving the user's partition runs the session.
    let mut remote = match exec.place(&user) {
        Place::Remote(to) => Some(Forwarded::new(to)),
        Place::Here | Place::Unserved => None,
    };
    // The owner's first answer is to the hello: who serves the user.
    let mut request = Request::Hello {
        version: VERSION,
        user: user.clone(),
    };
    loop {
        let end = matches!(request, Request::End);
        let reply = match remote.as_mut() {
            Some(remote) => remote.relay(&exec, &user, Some(request)).await,
            None => relay(&exec, owner, session, &user, Some(request)).await,
        };
        let failed = matches!(reply, Reply::Error(_));
        if send(&mut stream, &reply).await.is_err() || failed || end {
            break;
        }
        request = match read_request(&exec, &mut stream).await {
            Ok(r) => r,
            Err(why) => {
                // Whatever the import stored so far is durable; the tool says to run it again.
                let _ = send(&mut stream, &Reply::Error(why)).await;
                break;
            }
        };
    }
    // Lets the owner close the session (a no-op when it ended it already).
    match remote.as_mut() {
        Some(remote) => {
            remote.relay(&exec, &user, None).await;
        }
        None => {
            relay(&exec, owner, session, &user, None).await;
        }
    }
}

/// Reads and checks the hello; the canonical user name.
async fn hello(exec: &Executor, stream: &mut UnixStream) -> Result<String, String> {
    match read_request(exec, stream).await? {
        Request::Hello { version, user } if version == VERSION => {
            ringmail_auth::canonical_name(&user).map_err(|e| e.to_string())
        }
        Request::Hello { version, .. } => Err(format!(
            "the tool speaks admin protocol {version}, this server {VERSION}: use the ringmail \
             binary the server runs"
        )),
        _ => Err("expected a hello".into()),
    }
}

/// Passes one request to the owner and waits for its reply (none for `None`).
pub(crate) async fn relay(
    exec: &Rc<Executor>,
    owner: usize,
    session: u64,
    user: &str,
    request: Option<Request>,
) -> Reply {
    let job = OwnerRequest {
        session,
        user: user.to_string(),
        request,
    };
    route::ask(exec, owner, job)
        .await
        .unwrap_or_else(|_| Reply::Error(stopping()))
}

fn stopping() -> String {
    "the server is shutting down; run the command again once it is back (an import adds \
     only what is missing)"
        .to_string()
}

/// Takes a request on the executor that owns its user: a hello starts a session task, the
/// rest go to that session's queue in order.
fn handle(
    exec: &Rc<Executor>,
    session: u64,
    user: String,
    request: Option<Request>,
    reply: Responder,
) {
    let queue = SESSIONS.with(|s| s.borrow().get(&session).cloned());
    let queue = match (queue, &request) {
        (Some(queue), _) => queue,
        (None, Some(Request::Hello { .. })) => {
            let (queue, requests) = mpsc::unbounded();
            if !exec.spawn_task(serve(exec.clone(), session, user, requests)) {
                respond(reply, Reply::Error(stopping()));
                return;
            }
            SESSIONS.with(|s| s.borrow_mut().insert(session, queue.clone()));
            queue
        }
        (None, None) => return,
        (None, Some(_)) => {
            respond(reply, Reply::Error("this admin session has ended".into()));
            return;
        }
    };
    // The session task holds the receiver until it ends, and it ends only after removing
    // its queue from the table, so a queue found there takes the request.
    let _ = queue.unbounded_send((request, reply));
}

/// One admin session on the executor that owns its user.
async fn serve(
    exec: Rc<Executor>,
    session: u64,
    user: String,
    mut requests: mpsc::UnboundedReceiver<(Option<Request>, Responder)>,
) {
    let config = exec.config();
    let p = partition_of(&user, config.storage.partitions);
    // In a cluster, only the node serving the partition may open it (docs/cluster.md).
    let here = exec.place_partition(p) == ringmail_runtime::nodes::Place::Here;
    let opened = if here {
        exec.store.get(p).await
    } else {
        Err(ringmail_store::StoreError::NotPermitted(
            "no node of the cluster serves it now (`ringmail cluster status` shows why): run \
             the command again later",
        ))
    };
    let (mut sink, mut source, mail) = match opened {
        Ok(mail) => (
            Some(StoreSink::new(mail.clone(), config.clone(), &user)),
            StoreSource::new(mail.clone(), &user),
            mail,
        ),
        Err(e) => {
            warn!(user = %user, "admin: partition {p}: {e}");
            let why = format!("partition {p} of {user} cannot be opened: {e}");
            while let Some((_, reply)) = requests.next().await {
                respond(reply, Reply::Error(why.clone()));
            }
            SESSIONS.with(|s| s.borrow_mut().remove(&session));
            return;
        }
    };
    info!(user = %user, executor = exec.id, "admin: session started");
    // The connection's reader ends a silent session after the idle limit and says so here;
    // a session forwarded from another node (crate::forward) has no reader on this node,
    // and if that node dies its end never comes: the session ends itself after twice the
    // limit, so its task and its half-filled batch are not kept forever.
    let silence = Duration::from_secs(config.admin.idle_timeout_secs.saturating_mul(2) + 60);
    loop {
        let next = glommio::timer::timeout(silence, async { Ok(requests.next().await) }).await;
        let Ok(Some((request, reply))) = next else {
            if next.is_err() {
                warn!(user = %user, "admin: session silent for {} s, ended", silence.as_secs());
            }
            break;
        };
        let Some(request) = request else { break };
        let Some(store) = sink.as_mut() else { break };
        let ok = |()| Reply::Ok(String::new());
        let done = match request {
            Request::Hello { .. } => Ok(Reply::Ok(format!(
                "ringmail pid {}, executor {} (the owner of {user})",
                std::process::id(),
                exec.id
            ))),
            Request::SetUpUser(list) => store.set_up_user(&list).await.map(ok),
            Request::Open { mailbox, ids } => store.open(&mailbox, ids).await.map(ok),
            Request::Batch(messages) => add_all(store, messages).await.map(ok),
            Request::Close => store.close().await.map(ok),
            Request::End => {
                let answer = match store.close().await {
                    Ok(()) => {
                        let report = sink.take().map(StoreSink::into_report).unwrap_or_default();
                        info!(user = %user, imported = report.imported, "admin: import done");
                        Reply::Report(report)
                    }
                    Err(why) => Reply::Error(why),
                };
                respond(reply, answer);
                break;
            }
            Request::ListMailboxes => source.mailboxes().await.map(Reply::Names),
            Request::Subscriptions => source.subscriptions().await.map(Reply::Names),
            Request::Listing(mailbox) => source.listing(&mailbox).await.map(Reply::Listing),
            Request::Read { mailbox, uids } => {
                source.read(&mailbox, &uids).await.map(Reply::Messages)
            }
            // One script's refusal (the user's limit) is answered, not the session's end.
            Request::PutScript { name, source } => Ok(Reply::Ok(
                sieve::store_script(&mail, &config, &user, &name, &source)
                    .await
                    .err()
                    .unwrap_or_default(),
            )),
            Request::ActivateScript(name) => sieve::activate(&mail, &user, &name).await.map(ok),
            Request::Scripts => sieve::user_scripts(&mail, &user).map(Reply::Scripts),
            Request::SieveLog => Ok(Reply::SieveLog(mail.sieve_log(&user))),
        };
        let answer = done.unwrap_or_else(Reply::Error);
        let failed = matches!(answer, Reply::Error(_));
        respond(reply, answer);
        if failed {
            break;
        }
    }
    SESSIONS.with(|s| s.borrow_mut().remove(&session));
    // A connection that ended before the import did: what the open mailbox's last batch
    // holds is stored too rather than dropped half-way.
    if let Some(mut store) = sink {
        if let Err(why) = store.close().await {
            warn!(user = %user, "admin: import cut off: {why}");
        }
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
