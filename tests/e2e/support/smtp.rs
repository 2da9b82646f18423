//! A real SMTP server for tests: plain SMTP over TCP on 127.0.0.1, the protocol spoken by
//! the `mailin` crate's server-side state machine, every accepted message parsed with
//! `mail-parser`. No TLS, no authentication: point the app at it with `SMTP_URL`.
//!
//! ```ignore
//! let smtp = SmtpServer::start().await;
//! let app = spawn_app_with(|config| config.smtp_url = Some(smtp.url())).await;
//! // … something that sends mail to ada@example.com …
//! let mail = smtp.wait_for("ada@example.com", Duration::from_secs(10)).await;
//! let code = mail.code(); // the first run of 6+ digits in the text body
//! assert!(mail.subject.contains("sign-in"));
//! ```
//!
//! `wait_for` takes the oldest mail to that address that no earlier `wait_for` took, so
//! two requests for a code give two mails in order. For a server that starts later on a
//! known port (an app that must find SMTP down first), take a port with
//! [`free_port`](super::free_port), give the app `smtp://127.0.0.1:{port}`, and later call
//! [`SmtpServer::start_on`]. The server stops when dropped.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailin::{Action, Handler, Response, SessionBuilder};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// One mail as the server received it, for one envelope recipient.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReceivedMail {
    /// Envelope recipient (`RCPT TO`), lower-cased.
    pub(crate) to: String,
    /// `From:` header, as `Name <addr>` or `addr`.
    pub(crate) from: String,
    /// Address of the `From:` header alone.
    pub(crate) from_address: String,
    /// Decoded subject.
    pub(crate) subject: String,
    /// Decoded plain-text body.
    pub(crate) text: String,
    /// Decoded HTML body, when the mail has one.
    pub(crate) html: Option<String>,
    /// The message as received (headers and MIME body).
    pub(crate) raw: String,
}

impl ReceivedMail {
    /// The first run of at least six digits in the text body (a one-time code).
    pub(crate) fn code(&self) -> String {
        let mut run = String::new();
        for c in self.text.chars() {
            if c.is_ascii_digit() {
                run.push(c);
            } else if run.len() >= 6 {
                return run;
            } else {
                run.clear();
            }
        }
        assert!(run.len() >= 6, "no code in mail text: {}", self.text);
        run
    }
}

#[derive(Default)]
struct Inbox {
    mails: Mutex<VecDeque<ReceivedMail>>,
    arrived: Notify,
}

/// A running test SMTP server; stops when dropped.
pub(crate) struct SmtpServer {
    addr: SocketAddr,
    inbox: Arc<Inbox>,
    task: tokio::task::JoinHandle<()>,
}

impl SmtpServer {
    /// Start on a free port of 127.0.0.1.
    pub(crate) async fn start() -> Self {
        Self::start_on(0).await
    }

    /// Start on `port` of 127.0.0.1 (0: any free port). Retries for a few seconds while
    /// the port is still held by a closing socket.
    pub(crate) async fn start_on(port: u16) -> Self {
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", port)).await {
                Ok(listener) => break listener,
                Err(error) if tries < 50 => {
                    tries += 1;
                    let _ = error;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => panic!("test SMTP server cannot bind port {port}: {error}"),
            }
        };
        let addr = listener.local_addr().expect("local addr");
        let inbox = Arc::new(Inbox::default());
        let task = tokio::spawn(accept(listener, inbox.clone()));
        Self { addr, inbox, task }
    }

    /// `smtp://127.0.0.1:PORT`, for `SMTP_URL`.
    pub(crate) fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Take the oldest mail to `to` (case-insensitive) not taken yet, waiting up to
    /// `timeout` for it to arrive; panics on timeout, naming what did arrive.
    pub(crate) async fn wait_for(&self, to: &str, timeout: Duration) -> ReceivedMail {
        let to = to.trim().to_lowercase();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.inbox.arrived.notified();
            if let Some(mail) = self.take(&to) {
                return mail;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                if let Some(mail) = self.take(&to) {
                    return mail;
                }
                let seen: Vec<String> = self
                    .received()
                    .into_iter()
                    .map(|mail| format!("{} ({})", mail.to, mail.subject))
                    .collect();
                panic!("no mail to {to} within {timeout:?}; waiting in the inbox: {seen:?}");
            }
        }
    }

    /// Mails received and not taken yet, oldest first.
    pub(crate) fn received(&self) -> Vec<ReceivedMail> {
        self.inbox
            .mails
            .lock()
            .expect("inbox")
            .iter()
            .cloned()
            .collect()
    }

    fn take(&self, to: &str) -> Option<ReceivedMail> {
        let mut mails = self.inbox.mails.lock().expect("inbox");
        let index = mails.iter().position(|mail| mail.to == to)?;
        mails.remove(index)
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept(listener: TcpListener, inbox: Arc<Inbox>) {
    let mut sessions = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        sessions.spawn(session(stream, peer.ip(), inbox.clone()));
        while sessions.try_join_next().is_some() {}
    }
}

/// One SMTP session: lines in, `mailin` responses out, until QUIT or EOF.
async fn session(stream: TcpStream, peer: IpAddr, inbox: Arc<Inbox>) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let handler = Collector {
        inbox,
        ..Collector::default()
    };
    let mut session = SessionBuilder::new("smtp.test").build(peer, handler);
    if write_response(&mut write, &session.greeting())
        .await
        .is_err()
    {
        return;
    }
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        match read.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let response = session.process(&line);
        match response.action {
            Action::NoReply => {}
            Action::Reply => {
                if write_response(&mut write, &response).await.is_err() {
                    return;
                }
            }
            Action::Close | Action::UpgradeTls => {
                let _ = write_response(&mut write, &response).await;
                return;
            }
        }
    }
}

async fn write_response(
    write: &mut tokio::net::tcp::OwnedWriteHalf,
    response: &Response,
) -> std::io::Result<()> {
    let bytes = response.buffer()?;
    write.write_all(&bytes).await?;
    write.flush().await
}

/// Collects one message per `DATA` and files it for each envelope recipient.
#[derive(Default)]
struct Collector {
    inbox: Arc<Inbox>,
    recipients: Vec<String>,
    data: Vec<u8>,
}

impl Handler for Collector {
    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.recipients = to.iter().map(|to| to.trim().to_lowercase()).collect();
        self.data.clear();
        mailin::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let parsed = parse(&self.data);
        let mut mails = self.inbox.mails.lock().expect("inbox");
        for to in self.recipients.drain(..) {
            mails.push_back(ReceivedMail {
                to,
                ..parsed.clone()
            });
        }
        drop(mails);
        self.inbox.arrived.notify_waiters();
        mailin::response::OK
    }
}

fn parse(raw: &[u8]) -> ReceivedMail {
    let text_of_raw = String::from_utf8_lossy(raw).into_owned();
    let Some(message) = mail_parser::MessageParser::default().parse(raw) else {
        return ReceivedMail {
            raw: text_of_raw,
            ..ReceivedMail::default()
        };
    };
    let from = message.from().and_then(|from| from.first());
    let from_address = from
        .and_then(|addr| addr.address())
        .unwrap_or_default()
        .to_owned();
    let from_display = match from.and_then(|addr| addr.name()) {
        Some(name) => format!("{name} <{from_address}>"),
        None => from_address.clone(),
    };
    let html = message
        .parts
        .iter()
        .find(|part| part.is_text_html())
        .and_then(|part| part.text_contents())
        .map(str::to_owned);
    ReceivedMail {
        to: String::new(),
        from: from_display,
        from_address,
        subject: message.subject().unwrap_or_default().to_owned(),
        text: message
            .body_text(0)
            .map(|text| text.into_owned())
            .unwrap_or_default(),
        html,
        raw: text_of_raw,
    }
}
