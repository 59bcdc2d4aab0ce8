//! The client against a small SMTP sink on a loopback port that records what it got.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use futures_lite::future::block_on;
use ringmail_sieve::{DateTime, VacationResponse};
use ringmail_smtp_out::{redirect, reject_notice, vacation, Client, Envelope, Error, Rejection};

/// A blocking socket seen as an async one (each poll does the blocking call); the test
/// thread does nothing else meanwhile.
#[derive(Debug)]
struct Blocking(TcpStream);

impl futures_lite::AsyncRead for Blocking {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(self.get_mut().0.read(buf))
    }
}

impl futures_lite::AsyncWrite for Blocking {
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
        Poll::Ready(self.get_mut().0.shutdown(std::net::Shutdown::Write))
    }
}

/// How the sink behaves.
#[derive(Clone)]
struct Sink {
    /// EHLO lines after the greeting line; None refuses EHLO (an old server).
    extensions: Option<Vec<&'static str>>,
    /// RCPT TO addresses answered 550.
    unknown: Vec<&'static str>,
    greeting: &'static str,
}

impl Default for Sink {
    fn default() -> Self {
        Sink {
            extensions: Some(vec!["PIPELINING", "8BITMIME", "SIZE 100000"]),
            unknown: vec!["nobody@example.org"],
            greeting: "220 sink.example.org ESMTP ready",
        }
    }
}

/// What the sink saw on one connection.
#[derive(Debug, Default)]
struct Transcript {
    /// Every command line, in order.
    commands: Vec<String>,
    /// The DATA sections as sent (dot-stuffed, without the final dot line).
    raw_data: Vec<Vec<u8>>,
}

impl Transcript {
    /// A message as the sink would store it: dots unstuffed.
    fn message(&self, i: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for line in self.raw_data[i].split_inclusive(|&b| b == b'\n') {
            out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
        }
        out
    }
}

fn start(sink: Sink) -> (u16, JoinHandle<Transcript>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut out = stream.try_clone().unwrap();
        let mut input = BufReader::new(stream);
        let mut t = Transcript::default();
        let mut say = |s: &str| out.write_all(format!("{s}\r\n").as_bytes()).unwrap();
        say(sink.greeting);
        if !sink.greeting.starts_with("220") {
            return t;
        }
        loop {
            let mut line = String::new();
            if input.read_line(&mut line).unwrap_or(0) == 0 {
                return t;
            }
            let line = line.trim_end_matches(['\r', '\n']).to_string();
            t.commands.push(line.clone());
            let upper = line.to_ascii_uppercase();
            if upper.starts_with("EHLO") {
                match &sink.extensions {
                    None => say("502 5.5.2 EHLO not understood"),
                    Some(ext) => {
                        let mut lines = vec!["sink.example.org greets you"];
                        lines.extend(ext);
                        for (i, l) in lines.iter().enumerate() {
                            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
                            say(&format!("250{sep}{l}"));
                        }
                    }
                }
            } else if upper.starts_with("HELO")
                || upper.starts_with("MAIL FROM:")
                || upper == "RSET"
            {
                say("250 2.0.0 OK");
            } else if let Some(rcpt) = upper.strip_prefix("RCPT TO:<") {
                let addr = rcpt.trim_end_matches('>').to_ascii_lowercase();
                if sink.unknown.iter().any(|u| *u == addr) {
                    say("550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown");
                } else {
                    say("250 2.1.5 OK");
                }
            } else if upper == "DATA" {
                say("354 End data with <CR><LF>.<CR><LF>");
                let mut data = Vec::new();
                loop {
                    let mut l = Vec::new();
                    input.read_until(b'\n', &mut l).unwrap();
                    if l == b".\r\n" || l.is_empty() {
                        break;
                    }
                    data.extend_from_slice(&l);
                }
                t.raw_data.push(data);
                say(&format!("250 2.0.0 Ok: queued as Q{}", t.raw_data.len()));
            } else if upper == "QUIT" {
                say("221 2.0.0 Bye");
                return t;
            } else {
                say("500 5.5.1 Unknown command");
            }
        }
    });
    (port, handle)
}

fn connect(port: u16) -> Result<Client<Blocking>, Error> {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    block_on(Client::connect(Blocking(stream), "mail.example.com"))
}

#[test]
fn messages_are_dot_stuffed_and_arrive_whole() {
    let (port, sink) = start(Sink::default());
    let mut client = connect(port).unwrap();
    assert_eq!(client.extensions().size, Some(100_000));
    let message =
        b"From: alice@example.com\r\nSubject: dots\r\n\r\n.leading dot\r\n.\r\nmiddle\r\n..two\r\n";
    let envelope = Envelope {
        from: "alice@example.com".into(),
        to: vec!["bob@example.org".into()],
    };
    let sent = block_on(client.send(&envelope, message)).unwrap();
    assert_eq!(sent.reply.to_string(), "250 2.0.0 Ok: queued as Q1");
    assert!(sent.refused.is_empty());
    // Bare LF line ends go out as CRLF; 8-bit text is announced.
    let second = "Subject: caf\u{e9}\n\nno CR here\n";
    block_on(client.send(&envelope, second.as_bytes())).unwrap();
    block_on(client.quit()).unwrap();

    let t = sink.join().unwrap();
    assert_eq!(
        t.commands,
        vec![
            "EHLO mail.example.com".to_string(),
            format!("MAIL FROM:<alice@example.com> SIZE={}", message.len()),
            "RCPT TO:<bob@example.org>".into(),
            "DATA".into(),
            format!(
                "MAIL FROM:<alice@example.com> SIZE={} BODY=8BITMIME",
                second.len()
            ),
            "RCPT TO:<bob@example.org>".into(),
            "DATA".into(),
            "QUIT".into(),
        ]
    );
    assert!(t.raw_data[0]
        .windows(16)
        .any(|w| w == b"\r\n..leading dot\r"));
    assert!(t.raw_data[0].ends_with(b"\r\n..\r\nmiddle\r\n...two\r\n"));
    assert_eq!(t.message(0), message);
    assert_eq!(
        t.message(1),
        "Subject: caf\u{e9}\r\n\r\nno CR here\r\n".as_bytes()
    );
}

#[test]
fn refused_recipients_are_reported_with_the_relays_words() {
    let (port, sink) = start(Sink::default());
    let mut client = connect(port).unwrap();
    let some = Envelope {
        from: "alice@example.com".into(),
        to: vec!["nobody@example.org".into(), "bob@example.org".into()],
    };
    let sent = block_on(client.send(&some, b"Subject: x\r\n\r\nx\r\n")).unwrap();
    assert_eq!(sent.refused.len(), 1);
    assert_eq!(sent.refused[0].0, "nobody@example.org");
    assert_eq!(sent.refused[0].1.code, 550);

    let none = Envelope {
        from: "alice@example.com".into(),
        to: vec!["nobody@example.org".into()],
    };
    let e = block_on(client.send(&none, b"Subject: x\r\n\r\nx\r\n")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the SMTP relay refused every recipient: <nobody@example.org>: 550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown"
    );
    assert!(e.is_permanent());

    // Too large for the relay's SIZE: refused before MAIL, and the connection still works.
    let big = vec![b'x'; 100_001];
    let e = block_on(client.send(&some, &big)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the message has 100001 bytes, more than the SMTP relay's limit of 100000"
    );
    let e = block_on(client.send(
        &Envelope {
            from: "a@b>\r\nRCPT TO:<evil@example.net".into(),
            to: vec!["bob@example.org".into()],
        },
        b"x",
    ))
    .unwrap_err();
    assert!(matches!(e, Error::BadAddress(_)), "{e}");
    block_on(client.quit()).unwrap();

    let t = sink.join().unwrap();
    assert_eq!(t.raw_data.len(), 1, "only the first message went through");
    assert!(
        t.commands.contains(&"RSET".to_string()),
        "the refused transaction was reset"
    );
    assert!(
        !t.commands.iter().any(|c| c.contains("evil")),
        "{:?}",
        t.commands
    );
}

#[test]
fn an_old_server_gets_helo_and_a_refusing_one_a_clear_error() {
    let (port, sink) = start(Sink {
        extensions: None,
        ..Sink::default()
    });
    let mut client = connect(port).unwrap();
    let envelope = Envelope {
        from: String::new(),
        to: vec!["bob@example.org".into()],
    };
    block_on(client.send(&envelope, b"Subject: x\r\n\r\n8-bit \xc3\xa9\r\n")).unwrap();
    block_on(client.quit()).unwrap();
    let t = sink.join().unwrap();
    assert_eq!(
        t.commands[..3],
        [
            "EHLO mail.example.com",
            "HELO mail.example.com",
            "MAIL FROM:<>"
        ]
    );

    let (port, sink) = start(Sink {
        greeting: "554 5.3.2 sink.example.org is not taking mail",
        ..Sink::default()
    });
    let e = connect(port).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the SMTP relay refused the connection: 554 5.3.2 sink.example.org is not taking mail"
    );
    assert!(e.is_permanent());
    sink.join().unwrap();
}

#[test]
fn sieve_messages_through_the_relay() {
    let (port, sink) = start(Sink::default());
    let mut client = connect(port).unwrap();
    let original = b"Return-Path: <bob@example.org>\r\nFrom: bob@example.org\r\nMessage-ID: <m1@example.org>\r\nSubject: hello\r\n\r\n.Hi\r\n";
    let date = DateTime {
        unix: 1_710_498_600,
        offset: 0,
    };

    let forward = redirect(
        original,
        "bob@example.org",
        "alice@example.com",
        "alice@elsewhere.example",
    )
    .unwrap();
    block_on(client.send(&forward.envelope, &forward.message)).unwrap();

    let reply = VacationResponse {
        to: "bob@example.org".into(),
        recipient: "alice@example.com".into(),
        from: "alice@example.com".into(),
        subject: "Auto: hello".into(),
        reason: "Away.".into(),
        mime: false,
        handle: "h".into(),
        period: 86400,
        in_reply_to: Some("<m1@example.org>".into()),
        references: None,
        addresses: Vec::new(),
    };
    let auto = vacation(&reply, "<v1@mail.example.com>", date);
    block_on(client.send(&auto.envelope, &auto.message)).unwrap();

    let notice = reject_notice(
        &Rejection {
            message: original,
            sender: "bob@example.org",
            recipient: "alice@example.com",
            original_recipient: None,
            reason: "No thanks.",
            postmaster: "postmaster@example.com",
            host: "mail.example.com",
        },
        "<n1@mail.example.com>",
        date,
    )
    .unwrap();
    block_on(client.send(&notice.envelope, &notice.message)).unwrap();
    block_on(client.quit()).unwrap();

    let t = sink.join().unwrap();
    let mails: Vec<&String> = t
        .commands
        .iter()
        .filter(|c| c.starts_with("MAIL FROM"))
        .collect();
    assert_eq!(
        mails,
        vec![
            &format!("MAIL FROM:<bob@example.org> SIZE={}", forward.message.len()),
            &format!("MAIL FROM:<> SIZE={}", auto.message.len()),
            &format!("MAIL FROM:<> SIZE={}", notice.message.len())
        ]
    );
    assert_eq!(t.message(0), forward.message);
    assert!(t.message(0).starts_with(
        b"X-Sieve: ringmail\r\nX-Sieve-Redirected-From: alice@example.com\r\nFrom: bob"
    ));
    assert_eq!(t.message(1), auto.message);
    assert_eq!(t.message(2), notice.message);
}
