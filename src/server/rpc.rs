//! Asking another executor and getting its answer, both over the mesh.
//!
//! An answer could travel on a `futures_channel::oneshot` shared by the two threads, but
//! then the owner's thread wakes the asking task directly, through glommio's foreign-wake
//! queue, and under LMTP load that path aborted the process (a double free in
//! `SleepNotifier::process_foreign_wakes`, 2 of 16 benchmark runs). Mesh channels notify the
//! other executor through its eventfd and every task is woken by its own thread, so answers
//! go back as mesh messages too: the asker keeps a table of waiting requests (one per
//! executor thread, like everything an executor owns) and its mesh loop hands each answer to
//! its waiter.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use futures_channel::oneshot;

use crate::server::mesh::MeshMessage;
use crate::server::runtime::Executor;

/// Where an answer goes: the asking executor and its request number there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyTo {
    /// The asking executor.
    pub executor: usize,
    /// The request, numbered by the asker.
    pub id: u64,
}

/// An answer from the executor that owns a user.
#[derive(Debug)]
pub enum Answer {
    /// LMTP: may the user take a message of the asked size?
    Quota(Result<(), crate::store::StoreError>),
    /// LMTP: where the copy was stored, once durable.
    Delivered(Result<crate::lmtp::delivery::Delivered, crate::store::StoreError>),
    /// The admin socket: the owner's reply to one request.
    Admin(crate::admin::protocol::Reply),
}

/// Why no answer came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoAnswer;

thread_local! {
    static NEXT_ID: Cell<u64> = const { Cell::new(0) };
    static WAITING: RefCell<HashMap<u64, oneshot::Sender<Answer>>> = RefCell::new(HashMap::new());
}

/// Forgets a waiting request when its asker stops waiting (a closed LMTP session), so the
/// table cannot grow with answers nobody will take.
struct Waiting(u64);

impl Drop for Waiting {
    fn drop(&mut self) {
        WAITING.with(|w| w.borrow_mut().remove(&self.0));
    }
}

/// Sends the request `make` builds to executor `to` and waits for its answer. `NoAnswer`
/// when `to` is stopping and did not answer. `to` must be another executor: the mesh has
/// no channel to itself, so callers serve their own executor's requests directly.
pub async fn ask(
    exec: &Executor,
    to: usize,
    make: impl FnOnce(ReplyTo) -> MeshMessage,
) -> Result<Answer, NoAnswer> {
    let id = NEXT_ID.with(|n| {
        let id = n.get() + 1;
        n.set(id);
        id
    });
    let (tell, answer) = oneshot::channel();
    WAITING.with(|w| w.borrow_mut().insert(id, tell));
    let _waiting = Waiting(id);
    let reply_to = ReplyTo {
        executor: exec.id,
        id,
    };
    exec.send_to(to, make(reply_to))
        .await
        .map_err(|()| NoAnswer)?;
    answer.await.map_err(|_| NoAnswer)
}

/// Sends `answer` back to whoever asked. An asker that is gone is no error.
pub async fn answer(exec: &Executor, to: ReplyTo, answer: Answer) {
    if to.executor == exec.id {
        return deliver(to.id, answer);
    }
    let _ = exec
        .send_to(to.executor, MeshMessage::Answer { id: to.id, answer })
        .await;
}

/// Hands an answer that arrived on the mesh to its waiting request.
pub fn deliver(id: u64, answer: Answer) {
    if let Some(tell) = WAITING.with(|w| w.borrow_mut().remove(&id)) {
        let _ = tell.send(answer);
    }
}

/// Answers from a task of its own, for callers that cannot wait (the mesh loop refusing a
/// request during shutdown).
pub fn answer_later(exec: std::rc::Rc<Executor>, to: ReplyTo, reply: Answer) {
    glommio::spawn_local(async move { answer(&exec, to, reply).await }).detach();
}
