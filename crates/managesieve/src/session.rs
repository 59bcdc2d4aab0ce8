//! One ManageSieve connection: greeting, commands and their answers, until LOGOUT, the
//! client's close, or a STARTTLS that the caller carries out.

use std::io;
use std::sync::Arc;

use ringmail_auth::sasl::{LoginExchange, LoginStep, SaslError};

use crate::auth::{self, AfterFailure, Authenticator, Login, Verdict};
use crate::capability;
use crate::check::{self, Refusal};
use crate::command::{Command, Payload};
use crate::name;
use crate::options::Options;
use crate::parser::{Arg, Line, Parser, ParserLimits};
use crate::response::{write_literal, write_response, write_string, Code, Status};
use crate::store::{ScriptStore, StoreError};
use crate::transport::Transport;

/// Arguments on one line: the most any command takes is three (RENAMESCRIPT and
/// PUTSCRIPT with its name), and a few spare ones give a better error than the parser's.
const MAX_ARGS: usize = 8;

/// Bytes read from the connection at a time.
const READ_CHUNK: usize = 8 << 10;

/// How the connection is protected, as the caller knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Security {
    /// TLS is on (implicit TLS, or after STARTTLS).
    pub tls: bool,
    /// The client is on a network the server trusts (`secure_networks`), so plaintext
    /// passwords may be sent without TLS.
    pub secure_network: bool,
}

/// Why `Session::run` returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The client logged out; close the connection.
    Logout,
    /// The client closed the connection (or it ended in the middle of a command).
    Closed,
    /// The client asked for TLS and got OK: run the handshake on the connection, then
    /// call `tls_started` and `run` again. Whatever the client sent after STARTTLS and
    /// before the handshake has been discarded.
    StartTls,
    /// The server said BYE (too many invalid commands or failed logins); close.
    Bye,
}

/// The state of one connection.
#[derive(Debug)]
pub struct Session {
    options: Arc<Options>,
    security: Security,
    user: Option<String>,
    parser: Parser,
    /// Bytes read and not yet parsed, from `pos` on.
    input: Vec<u8>,
    pos: usize,
    /// The responses to the current command.
    out: Vec<u8>,
    /// The capabilities and OK are due (a new connection, or after the TLS handshake).
    greet: bool,
    bad_commands: u32,
}

/// What a command leaves the session to do.
enum Flow {
    Continue,
    Exit(Exit),
}

/// Why a SASL exchange gave no credentials.
enum SaslFailure {
    /// The client closed the connection.
    Closed,
    /// The client sent "*" (RFC 5804 §2.1: answered with NO).
    Cancelled,
    /// Not a valid exchange; the text is for the NO.
    Invalid(String),
}

impl From<SaslError> for SaslFailure {
    fn from(e: SaslError) -> Self {
        match e {
            SaslError::Cancelled => SaslFailure::Cancelled,
            e => SaslFailure::Invalid(format!("AUTHENTICATE: {e}")),
        }
    }
}

/// The status of the last response line in `out`: every command ends with one.
fn final_status(out: &[u8]) -> Option<&'static str> {
    let body = out.strip_suffix(b"\r\n")?;
    let last = body
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(body, |i| &body[i + 1..]);
    ["OK", "NO", "BYE"].into_iter().find(|status| {
        last.starts_with(status.as_bytes()) && matches!(last.get(status.len()), None | Some(b' '))
    })
}

impl Session {
    pub fn new(options: Arc<Options>, security: Security) -> Session {
        let parser = Parser::new(ParserLimits {
            max_line: options.max_line,
            max_literal: options.limits.max_script_size,
            max_args: MAX_ARGS,
        });
        Session {
            options,
            security,
            user: None,
            parser,
            input: Vec::new(),
            pos: 0,
            out: Vec::new(),
            greet: true,
            bad_commands: 0,
        }
    }

    /// The logged-in user, if any.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The TLS handshake after STARTTLS succeeded: the next `run` sends the capabilities
    /// again, as RFC 5804 §2.2 requires.
    pub fn tls_started(&mut self) {
        self.security.tls = true;
        self.greet = true;
    }

    /// Serves the client until it logs out, closes, asks for TLS, or is sent away. I/O
    /// errors are the connection's. Timeouts are the caller's: race this future against
    /// the idle timer.
    pub async fn run<T, A, S>(&mut self, io: &mut T, auth: &A, store: &S) -> io::Result<Exit>
    where
        T: Transport,
        A: Authenticator,
        S: ScriptStore,
    {
        loop {
            if self.greet {
                self.greet = false;
                self.write_capabilities();
                let ready = format!("{} ready.", self.options.implementation);
                write_response(&mut self.out, Status::Ok, None, &ready);
                self.flush(io).await?;
            }
            let Some(line) = self.next_line(io).await? else {
                return Ok(Exit::Closed);
            };
            let parsed = line
                .map_err(|e| e.0.to_string())
                .and_then(Command::from_args);
            let mut named = false;
            let flow = match parsed {
                Err(message) => self.bad_command(&message),
                Ok(command) if self.user.is_none() && !command.allowed_unauthenticated() => {
                    self.bad_command(&format!("{}: authenticate first", command.name()))
                }
                Ok(command) => {
                    named = true;
                    io.command_started(command.name());
                    self.execute(command, io, auth, store).await?
                }
            };
            let status = if named { final_status(&self.out) } else { None };
            self.flush(io).await?;
            if let Some(status) = status {
                io.command_ended(status);
            }
            if let Flow::Exit(exit) = flow {
                return Ok(exit);
            }
        }
    }

    async fn execute<T, A, S>(
        &mut self,
        command: Command,
        io: &mut T,
        auth: &A,
        store: &S,
    ) -> io::Result<Flow>
    where
        T: Transport,
        A: Authenticator,
        S: ScriptStore,
    {
        let user = self.user.clone().unwrap_or_default();
        match command {
            Command::Authenticate {
                mechanism,
                initial_response,
            } => {
                return self
                    .authenticate(&mechanism, initial_response, io, auth)
                    .await
            }
            Command::StartTls => return Ok(self.starttls()),
            Command::Logout => {
                self.ok("Logout completed.");
                return Ok(Flow::Exit(Exit::Logout));
            }
            Command::Capability => {
                self.write_capabilities();
                self.ok("Capability completed.");
            }
            Command::Noop { tag: Some(tag) } => {
                write_response(&mut self.out, Status::Ok, Some(&Code::Tag(tag)), "Done");
            }
            Command::Noop { tag: None } => self.ok("NOOP completed."),
            Command::Unauthenticate => {
                self.user = None;
                self.ok("Logged out; authenticate again.");
            }
            Command::HaveSpace { name, size } => {
                let Some(name) = self.script_name(&name) else {
                    return Ok(Flow::Continue);
                };
                if size > self.options.limits.max_script_size as u64 {
                    self.refuse(check::too_large(size, &self.options.limits));
                } else if self.room_for(store, &user, &name).await {
                    self.ok("Putscript would succeed.");
                }
            }
            Command::PutScript { name, script } => {
                let Some(name) = self.script_name(&name) else {
                    return Ok(Flow::Continue);
                };
                let Some(script) = self.check(script) else {
                    return Ok(Flow::Continue);
                };
                if self.room_for(store, &user, &name).await {
                    match store.put(&user, &name, &script).await {
                        Ok(()) => self.ok("Script stored."),
                        Err(e) => self.store_error(e, &name),
                    }
                }
            }
            Command::CheckScript { script } => {
                if self.check(script).is_some() {
                    self.ok("Script is valid.");
                }
            }
            Command::ListScripts => match store.list(&user).await {
                Ok(scripts) => {
                    for s in scripts {
                        write_string(&mut self.out, s.name.as_bytes());
                        if s.active {
                            self.out.extend_from_slice(b" ACTIVE");
                        }
                        self.out.extend_from_slice(b"\r\n");
                    }
                    self.ok("Listscripts completed.");
                }
                Err(e) => self.store_error(e, ""),
            },
            Command::SetActive { name } if name.is_empty() => {
                match store.set_active(&user, None).await {
                    Ok(()) => self.ok("No script is active now."),
                    Err(e) => self.store_error(e, ""),
                }
            }
            Command::SetActive { name } => {
                let Some(name) = self.script_name(&name) else {
                    return Ok(Flow::Continue);
                };
                // Checked again: the limits or the mail policy may have changed since
                // the upload, and delivery would refuse to run it.
                match store.get(&user, &name).await {
                    Ok(source) => {
                        let o = &self.options;
                        match check::check_script(source.as_bytes(), &o.limits, o.mail) {
                            Ok(_) => match store.set_active(&user, Some(&name)).await {
                                Ok(()) => self.ok("Script activated."),
                                Err(e) => self.store_error(e, &name),
                            },
                            Err(Refusal::TooLarge(why) | Refusal::Invalid(why)) => {
                                self.no(None, &format!("the script cannot be activated: {why}"))
                            }
                        }
                    }
                    Err(e) => self.store_error(e, &name),
                }
            }
            Command::GetScript { name } => {
                let Some(name) = self.script_name(&name) else {
                    return Ok(Flow::Continue);
                };
                match store.get(&user, &name).await {
                    Ok(source) => {
                        write_literal(&mut self.out, source.as_bytes());
                        self.out.extend_from_slice(b"\r\n");
                        self.ok("Getscript completed.");
                    }
                    Err(e) => self.store_error(e, &name),
                }
            }
            Command::DeleteScript { name } => {
                let Some(name) = self.script_name(&name) else {
                    return Ok(Flow::Continue);
                };
                match store.delete(&user, &name).await {
                    Ok(()) => self.ok("Script deleted."),
                    Err(e) => self.store_error(e, &name),
                }
            }
            Command::RenameScript { old, new } => {
                let Some(old) = self.script_name(&old) else {
                    return Ok(Flow::Continue);
                };
                let Some(new) = self.script_name(&new) else {
                    return Ok(Flow::Continue);
                };
                match store.rename(&user, &old, &new).await {
                    Ok(()) => self.ok("Script renamed."),
                    Err(StoreError::AlreadyExists) => {
                        self.store_error(StoreError::AlreadyExists, &new)
                    }
                    Err(e) => self.store_error(e, &old),
                }
            }
        }
        Ok(Flow::Continue)
    }

    fn starttls(&mut self) -> Flow {
        if !self.options.starttls {
            self.no(None, "TLS is not available.");
        } else if self.security.tls {
            self.no(None, "TLS is already active.");
        } else if self.user.is_some() {
            self.no(None, "STARTTLS is only allowed before authentication.");
        } else {
            self.ok("Begin TLS negotiation now.");
            // Commands pipelined after STARTTLS came in the clear: drop them.
            self.input.clear();
            self.pos = 0;
            self.parser.reset();
            return Flow::Exit(Exit::StartTls);
        }
        Flow::Continue
    }

    async fn authenticate<T: Transport, A: Authenticator>(
        &mut self,
        mechanism: &str,
        initial_response: Option<Vec<u8>>,
        io: &mut T,
        auth: &A,
    ) -> io::Result<Flow> {
        if self.user.is_some() {
            self.no(None, "Already authenticated.");
            return Ok(Flow::Continue);
        }
        if !self.plaintext_ok() {
            self.no(
                Some(Code::EncryptNeeded),
                "Passwords are only accepted over TLS: use STARTTLS first.",
            );
            return Ok(Flow::Continue);
        }
        if !matches!(mechanism, "PLAIN" | "LOGIN") {
            self.no(None, "Unsupported SASL mechanism: use PLAIN or LOGIN.");
            return Ok(Flow::Continue);
        }
        let login = match self.credentials(mechanism, initial_response, io).await? {
            Ok(login) => login,
            Err(SaslFailure::Closed) => return Ok(Flow::Exit(Exit::Closed)),
            Err(SaslFailure::Cancelled) => {
                self.no(None, "Authentication cancelled.");
                return Ok(Flow::Continue);
            }
            Err(SaslFailure::Invalid(why)) => return Ok(self.bad_command(&why)),
        };
        match auth
            .verify(&login.user, &login.password, login.authzid.as_deref())
            .await
        {
            Verdict::Ok(user) => {
                self.user = Some(user);
                self.ok("Logged in.");
            }
            Verdict::BadCredentials => {
                let after = auth.failed().await;
                self.no(None, "Authentication failed.");
                if after == AfterFailure::Disconnect {
                    write_response(&mut self.out, Status::Bye, None, "Too many failed logins.");
                    return Ok(Flow::Exit(Exit::Bye));
                }
            }
            Verdict::Unavailable => self.no(
                Some(Code::TryLater),
                "Authentication is temporarily unavailable; try again later.",
            ),
            Verdict::Refused(why) => self.no(Some(Code::TryLater), &why),
        }
        Ok(Flow::Continue)
    }

    /// Runs the PLAIN or LOGIN exchange up to the user name and password.
    async fn credentials<T: Transport>(
        &mut self,
        mechanism: &str,
        initial_response: Option<Vec<u8>>,
        io: &mut T,
    ) -> io::Result<Result<Login, SaslFailure>> {
        if mechanism == "PLAIN" {
            let response = match initial_response {
                Some(r) => r,
                // An empty challenge asks for the message (RFC 4616 has no challenge).
                None => match self.challenge(b"", io).await? {
                    Ok(r) => r,
                    Err(failure) => return Ok(Err(failure)),
                },
            };
            return Ok(auth::decode(&response)
                .and_then(|m| auth::plain(&m))
                .map_err(SaslFailure::from));
        }
        let (mut exchange, mut step) = match LoginExchange::start(initial_response.as_deref()) {
            Ok(started) => started,
            Err(e) => return Ok(Err(e.into())),
        };
        loop {
            match step {
                LoginStep::Done(credentials) => {
                    return Ok(Ok(Login {
                        user: credentials.username,
                        password: credentials.password,
                        authzid: None,
                    }))
                }
                LoginStep::Challenge(challenge) => {
                    let response = match self.challenge(challenge.as_bytes(), io).await? {
                        Ok(r) => r,
                        Err(failure) => return Ok(Err(failure)),
                    };
                    step = match exchange.respond(&response) {
                        Ok(step) => step,
                        Err(e) => return Ok(Err(e.into())),
                    };
                }
            }
        }
    }

    /// Sends a SASL challenge (a string line, RFC 5804 §2.1) and reads the response, a
    /// line with one string.
    async fn challenge<T: Transport>(
        &mut self,
        challenge: &[u8],
        io: &mut T,
    ) -> io::Result<Result<Vec<u8>, SaslFailure>> {
        write_string(&mut self.out, challenge);
        self.out.extend_from_slice(b"\r\n");
        self.flush(io).await?;
        Ok(match self.next_line(io).await? {
            None => Err(SaslFailure::Closed),
            Some(Ok(args)) => match <[Arg; 1]>::try_from(args) {
                Ok([Arg::String(s)]) => Ok(s),
                _ => Err(SaslFailure::Invalid(
                    "AUTHENTICATE: expected one string as the response".into(),
                )),
            },
            Some(Err(e)) => Err(SaslFailure::Invalid(format!("AUTHENTICATE: {}", e.0))),
        })
    }

    fn plaintext_ok(&self) -> bool {
        self.security.tls || self.security.secure_network
    }

    /// Reads the next complete line; None when the client closed the connection.
    async fn next_line<T: Transport>(&mut self, io: &mut T) -> io::Result<Option<Line>> {
        loop {
            if self.pos < self.input.len() {
                let (n, line) = self.parser.feed(&self.input[self.pos..]);
                self.pos += n;
                if self.pos == self.input.len() {
                    self.input.clear();
                    self.pos = 0;
                }
                if line.is_some() {
                    return Ok(line);
                }
            }
            // Everything read has been parsed: read more.
            let start = self.input.len();
            self.input.resize(start + READ_CHUNK, 0);
            let n = io.read(&mut self.input[start..]).await;
            self.input.truncate(start + *n.as_ref().unwrap_or(&0));
            if n? == 0 {
                return Ok(None);
            }
        }
    }

    async fn flush<T: Transport>(&mut self, io: &mut T) -> io::Result<()> {
        if !self.out.is_empty() {
            io.write_all(&self.out).await?;
            self.out.clear();
            // A GETSCRIPT of a large script leaves a large buffer: an idle session
            // should hold little.
            if self.out.capacity() > 64 << 10 {
                self.out = Vec::new();
            }
        }
        Ok(())
    }

    fn write_capabilities(&mut self) {
        let state = capability::State {
            tls: self.security.tls,
            plaintext_ok: self.plaintext_ok(),
            user: self.user.as_deref(),
        };
        capability::write(&mut self.out, &self.options, &state);
    }

    /// A name argument, checked; on a bad name the NO is written and None returned.
    fn script_name(&mut self, raw: &[u8]) -> Option<String> {
        match name::check(raw, self.options.max_name_chars) {
            Ok(n) => Some(n.to_string()),
            Err(why) => {
                self.no(None, &why);
                None
            }
        }
    }

    /// Compiles an uploaded script; on refusal the NO is written and None returned.
    fn check(&mut self, payload: Payload) -> Option<ringmail_sieve::Script> {
        let o = &self.options;
        let checked = match payload {
            Payload::Oversized(size) => Err(check::too_large(size, &o.limits)),
            Payload::Bytes(source) => check::check_script(&source, &o.limits, o.mail),
        };
        checked.map_err(|refusal| self.refuse(refusal)).ok()
    }

    fn refuse(&mut self, refusal: Refusal) {
        match refusal {
            Refusal::TooLarge(why) => self.no(Some(Code::QuotaMaxSize), &why),
            Refusal::Invalid(why) => self.no(None, &why),
        }
    }

    /// Whether `name` can be stored without passing the number of scripts (writing the NO
    /// when not).
    async fn room_for<S: ScriptStore>(&mut self, store: &S, user: &str, name: &str) -> bool {
        match store.list(user).await {
            Ok(scripts) => {
                let exists = scripts.iter().any(|s| s.name == name);
                if exists || scripts.len() < self.options.max_scripts {
                    return true;
                }
                self.store_error(StoreError::TooManyScripts, name);
                false
            }
            Err(e) => {
                self.store_error(e, name);
                false
            }
        }
    }

    fn store_error(&mut self, e: StoreError, name: &str) {
        let (code, text) = match e {
            StoreError::NotFound => (
                Code::NonExistent,
                format!("There is no script named \"{name}\"."),
            ),
            StoreError::AlreadyExists => (
                Code::AlreadyExists,
                format!("A script named \"{name}\" exists already."),
            ),
            StoreError::Active => (
                Code::Active,
                format!("\"{name}\" is the active script: activate another one (or none) first."),
            ),
            StoreError::TooManyScripts => (
                Code::QuotaMaxScripts,
                format!(
                    "You have as many scripts as allowed ({}): delete one first.",
                    self.options.max_scripts
                ),
            ),
            StoreError::TooLarge => (Code::QuotaMaxSize, "The script is too large.".to_string()),
            StoreError::Unavailable(why) => (Code::TryLater, why),
        };
        self.no(Some(code), &text);
    }

    /// Answers an invalid command; after too many, says BYE.
    fn bad_command(&mut self, message: &str) -> Flow {
        self.bad_commands += 1;
        self.no(None, message);
        if self.bad_commands >= self.options.max_bad_commands {
            write_response(
                &mut self.out,
                Status::Bye,
                None,
                "Too many invalid commands.",
            );
            return Flow::Exit(Exit::Bye);
        }
        Flow::Continue
    }

    fn ok(&mut self, text: &str) {
        write_response(&mut self.out, Status::Ok, None, text);
    }

    fn no(&mut self, code: Option<Code>, text: &str) {
        write_response(&mut self.out, Status::No, code.as_ref(), text);
    }
}
