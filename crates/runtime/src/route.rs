//! "Run this on the owner and give me its answer": the one way work reaches the executor that
//! owns a user's partition.
//!
//! A caller describes its work as an [`OwnerJob`] with a typed answer and calls [`ask`] (or
//! [`tell`], when it wants no answer). On the owner the job is just run; elsewhere it travels
//! on the mesh as a boxed closure and its answer comes back on the mesh, so the runtime needs
//! to know nothing of the protocols whose work it carries.
//!
//! An answer could travel on a `futures_channel::oneshot` shared by the two threads, but then
//! the owner's thread wakes the asking task directly, through glommio's foreign-wake queue,
//! and under LMTP load that path aborted the process (a double free in
//! `SleepNotifier::process_foreign_wakes`, 2 of 16 benchmark runs). Mesh channels notify the
//! other executor through its eventfd and every task is woken by its own thread, so answers go
//! back as mesh messages too: the asker keeps a table of waiting requests (one per executor
//! thread, like everything an executor owns) and its mesh loop hands each answer to its
//! waiter.
//!
//! Today the owner is always an executor of this process. When partitions live on other nodes
//! too, `ask` is where a job whose owner is remote gets sent there; callers do not change.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use futures_channel::oneshot;
use tracing::debug;

use crate::runtime::Executor;

/// Work that must run on the executor owning a partition, and what it answers.
pub trait OwnerJob: Send + 'static {
    /// The answer the caller gets.
    type Answer: Send + 'static;

    /// Runs the job on the owner.
    fn run(self, exec: Rc<Executor>) -> impl Future<Output = Self::Answer> + 'static;
}

/// The owner did not run the job: it is shutting down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable;

/// A job on its way to another executor, its type erased.
type ErasedJob = Box<dyn FnOnce(Rc<Executor>) -> LocalAnswer + Send>;
type LocalAnswer = Pin<Box<dyn Future<Output = Box<dyn Any + Send>>>>;

/// One message on the mesh between executors.
pub struct MeshMessage(Kind);

enum Kind {
    /// Work to run here; answered to `reply` when there is one.
    Job {
        job: ErasedJob,
        reply: Option<ReplyTo>,
    },
    /// The answer to a request this executor sent; `Err` when the owner refused it.
    Answer {
        id: u64,
        answer: Result<Box<dyn Any + Send>, Unavailable>,
    },
}

/// Where an answer goes: the asking executor and its request number there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ReplyTo {
    executor: usize,
    id: u64,
}

type Waiter = oneshot::Sender<Result<Box<dyn Any + Send>, Unavailable>>;

thread_local! {
    static NEXT_ID: Cell<u64> = const { Cell::new(0) };
    static WAITING: RefCell<HashMap<u64, Waiter>> = RefCell::new(HashMap::new());
}

/// Forgets a waiting request when its asker stops waiting (a closed LMTP session), so the
/// table cannot grow with answers nobody will take.
struct Waiting(u64);

impl Drop for Waiting {
    fn drop(&mut self) {
        WAITING.with(|w| w.borrow_mut().remove(&self.0));
    }
}

fn erase<J: OwnerJob>(job: J) -> ErasedJob {
    Box::new(move |exec| {
        Box::pin(async move { Box::new(job.run(exec).await) as Box<dyn Any + Send> })
    })
}

/// Runs `job` on executor `owner` and returns its answer; `Unavailable` when the owner is
/// shutting down and did not run it.
pub async fn ask<J: OwnerJob>(
    exec: &Rc<Executor>,
    owner: usize,
    job: J,
) -> Result<J::Answer, Unavailable> {
    if owner == exec.id {
        return Ok(job.run(exec.clone()).await);
    }
    let id = NEXT_ID.with(|n| {
        let id = n.get() + 1;
        n.set(id);
        id
    });
    let (tell, answer) = oneshot::channel();
    WAITING.with(|w| w.borrow_mut().insert(id, tell));
    let _waiting = Waiting(id);
    let reply = Some(ReplyTo {
        executor: exec.id,
        id,
    });
    let message = MeshMessage(Kind::Job {
        job: erase(job),
        reply,
    });
    exec.send_to(owner, message)
        .await
        .map_err(|()| Unavailable)?;
    let answer = answer.await.map_err(|_| Unavailable)??;
    // The answer was made by the same `J` on the other side: it is a `J::Answer`.
    answer
        .downcast::<J::Answer>()
        .map(|a| *a)
        .map_err(|_| Unavailable)
}

/// Runs `job` on executor `owner` without waiting for it; `Unavailable` when the owner is
/// shutting down (the job is then dropped, with whatever it holds).
pub async fn tell<J: OwnerJob<Answer = ()>>(
    exec: &Rc<Executor>,
    owner: usize,
    job: J,
) -> Result<(), Unavailable> {
    if owner == exec.id {
        if !exec.spawn_task(job.run(exec.clone())) {
            return Err(Unavailable);
        }
        return Ok(());
    }
    let message = MeshMessage(Kind::Job {
        job: erase(job),
        reply: None,
    });
    exec.send_to(owner, message).await.map_err(|()| Unavailable)
}

/// Handles one message from the mesh: runs a job inside the executor's session gate (so
/// shutdown waits for work in flight before it closes the store), or hands an answer to the
/// request waiting for it. A job that arrives once the gate is closed is refused at once.
pub fn receive(exec: &Rc<Executor>, message: MeshMessage) {
    match message.0 {
        Kind::Answer { id, answer } => {
            if let Some(tell) = WAITING.with(|w| w.borrow_mut().remove(&id)) {
                let _ = tell.send(answer);
            }
        }
        Kind::Job { job, reply } => {
            let work = job(exec.clone());
            let task = {
                let exec = exec.clone();
                async move {
                    let answer = work.await;
                    if let Some(to) = reply {
                        send_answer(&exec, to, Ok(answer)).await;
                    }
                }
            };
            if !exec.spawn_task(task) {
                debug!("work for this executor refused: shutting down");
                if let Some(to) = reply {
                    let exec = exec.clone();
                    glommio::spawn_local(async move {
                        send_answer(&exec, to, Err(Unavailable)).await;
                    })
                    .detach();
                }
            }
        }
    }
}

/// Sends an answer back to whoever asked. An asker that is gone is no error.
async fn send_answer(
    exec: &Executor,
    to: ReplyTo,
    answer: Result<Box<dyn Any + Send>, Unavailable>,
) {
    let message = MeshMessage(Kind::Answer { id: to.id, answer });
    let _ = exec.send_to(to.executor, message).await;
}
