//! Where a login is checked: never on the executor. What costs only CPU (a hash, the
//! passwd-file, an auth cache hit, a token against a key set from a file) runs on the
//! executor's blocking pool; what waits on the network (a directory search and bind, an
//! issuer's key set or introspection) runs on the authenticator's lookup threads, shared by
//! the process, so that a slow directory never holds up the other logins of a core
//! (ringmail_auth::lookups, docs/auth.md "Threads").

use std::sync::Arc;

use ringmail_auth::{Authenticator, Credential, Login, LoginError};

/// Checks the credential `attempt` holds (`credential` borrows it as the backends take it).
/// A login the lookup threads cannot take now (their queue is full, or it waited past the
/// backends' timeout) is [`LoginError::Unavailable`].
pub async fn check<A: Send + Sync + 'static>(
    auth: &Arc<Authenticator>,
    attempt: A,
    credential: for<'a> fn(&'a A) -> Credential<'a>,
) -> Result<Login, LoginError> {
    let attempt = Arc::new(attempt);
    let (local_auth, local_attempt) = (Arc::clone(auth), Arc::clone(&attempt));
    let local = glommio::executor()
        .spawn_blocking(move || local_auth.login_local(&credential(&local_attempt)))
        .await;
    if let Some(outcome) = local {
        return outcome;
    }
    auth.on_lookup_thread(move |auth| auth.login(&credential(&attempt)))
        .await
        .unwrap_or_else(|why| Err(LoginError::Unavailable(why)))
}
