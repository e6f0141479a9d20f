//! Outgoing mail (issue #15): invitation links go out by e-mail through SMTP
//! (`serve --smtp FILE`), or — on the embedded default — are written as `.eml` files to
//! `<data-dir>/outbox`, and the server log says where. Plain SMTP only to this machine;
//! anything else needs TLS with a pinned CA. The password, if any, is read from a file
//! only its owner can read, never from the arguments or the environment.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{
    AsyncFileTransport, AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor,
};
use serde::Deserialize;

/// Where mail goes.
#[derive(Clone)]
enum Transport {
    /// Nowhere: pages show links instead (an app assembled without mail).
    Disabled,
    /// An SMTP server.
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// `.eml` files in a directory.
    Directory(AsyncFileTransport<Tokio1Executor>, PathBuf),
}

/// The mailer: a sender address, a transport, and the origin links point to.
#[derive(Clone)]
pub struct Mail {
    from: Option<Mailbox>,
    transport: Transport,
    origin: String,
}

impl std::fmt::Debug for Mail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.transport {
            Transport::Disabled => "disabled",
            Transport::Smtp(_) => "smtp",
            Transport::Directory(..) => "directory",
        };
        f.debug_struct("Mail")
            .field("transport", &kind)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// Why a message was not handed over.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// No mail is configured.
    #[error("no outgoing mail is configured")]
    Disabled,
    /// The address or message is malformed.
    #[error("the message could not be built: {0}")]
    Build(String),
    /// The transport refused or failed.
    #[error("the message was not sent: {0}")]
    Send(String),
}

/// Where a message went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// Handed to the SMTP server.
    Smtp,
    /// Written to this file.
    File(PathBuf),
}

/// The longest a message may take to hand over (connect, TLS, the whole SMTP dialogue).
const SEND_DEADLINE: std::time::Duration = std::time::Duration::from_secs(15);

impl Mail {
    /// No mail: callers show links on the page instead.
    pub fn disabled() -> Self {
        Self {
            from: None,
            transport: Transport::Disabled,
            origin: String::new(),
        }
    }

    /// `.eml` files in `dir` (created 0700), links to `origin`.
    pub fn directory(dir: &Path, origin: &str) -> anyhow::Result<Self> {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        // An outbox that already existed (made by hand, or by an older version) is
        // tightened too: its messages hold invitation links.
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .with_context(|| format!("restricting {} to its owner", dir.display()))?;
        Ok(Self {
            from: Some(
                "ProcuHelp <no-reply@procuhelp.invalid>"
                    .parse()
                    .map_err(|e| anyhow::anyhow!("sender: {e}"))?,
            ),
            transport: Transport::Directory(AsyncFileTransport::new(dir), dir.to_owned()),
            origin: origin.to_owned(),
        })
    }

    /// Whether messages go anywhere.
    pub fn is_enabled(&self) -> bool {
        !matches!(self.transport, Transport::Disabled)
    }

    /// `path` (starting with `/`) on the server's public origin.
    pub fn link(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    /// Sends a plain-text message to `to`.
    pub async fn send(&self, to: &str, subject: &str, text: &str) -> Result<Sent, MailError> {
        let Some(from) = self.from.clone() else {
            return Err(MailError::Disabled);
        };
        // A bare address only: `x<evil@attacker.test>` must not become a display name
        // and another recipient.
        let bare = !to.chars().any(|c| {
            c.is_whitespace()
                || c.is_control()
                || matches!(
                    c,
                    '<' | '>' | '"' | ',' | ';' | ':' | '(' | ')' | '[' | ']' | '\\'
                )
        });
        let address: lettre::Address = to
            .parse()
            .ok()
            .filter(|_| bare)
            .ok_or_else(|| MailError::Build("recipient".into()))?;
        let to = Mailbox::new(None, address);
        let message = Message::builder()
            .from(from)
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(text.to_owned())
            .map_err(|e| MailError::Build(e.to_string()))?;
        match &self.transport {
            Transport::Disabled => Err(MailError::Disabled),
            // A whole deadline, not only lettre's per-command one: the caller holds its
            // request's transaction (and its connection) while the message goes out, so
            // a slow or silent SMTP server must not hold them for long.
            Transport::Smtp(smtp) => tokio::time::timeout(SEND_DEADLINE, smtp.send(message))
                .await
                .map_err(|_| MailError::Send("the SMTP server did not answer in time".into()))?
                .map(|_| Sent::Smtp)
                // The server's answer, never our credentials.
                .map_err(|e| MailError::Send(e.to_string())),
            Transport::Directory(files, dir) => files
                .send(message)
                .await
                .map(|id| Sent::File(dir.join(format!("{id}.eml"))))
                .map_err(|e| MailError::Send(e.to_string())),
        }
    }
}

/// `serve --smtp FILE`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpFile {
    host: String,
    port: u16,
    /// `"ProcuHelp <no-reply@example.com>"`.
    from: String,
    /// `none` (only to this machine), `starttls` or `tls`.
    tls: String,
    /// The CA that signed the SMTP server's certificate (TLS; no built-in roots).
    ca_file: Option<PathBuf>,
    username: Option<String>,
    /// A file holding the password (mode 0600).
    password_file: Option<PathBuf>,
}

impl SmtpFile {
    /// Reads and checks `path`; links point to `origin`.
    pub fn read(path: &Path, origin: &str) -> anyhow::Result<Mail> {
        let meta =
            std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
        if meta.len() > 16 * 1024 {
            anyhow::bail!("{} is larger than 16 KiB", path.display());
        }
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let file: Self = serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: not an SMTP configuration", path.display()))?;
        file.mail(origin)
    }

    fn mail(self, origin: &str) -> anyhow::Result<Mail> {
        let from: Mailbox = self
            .from
            .parse()
            .map_err(|_| anyhow::anyhow!("smtp: from is not an address"))?;
        let loopback = self.host == "localhost"
            || self
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        let tls = |host: &str| -> anyhow::Result<TlsParameters> {
            let ca = self
                .ca_file
                .as_ref()
                .context("smtp: TLS needs ca_file (no built-in roots)")?;
            let pem =
                std::fs::read(ca).with_context(|| format!("smtp: ca_file {}", ca.display()))?;
            let cert = lettre::transport::smtp::client::Certificate::from_pem(&pem)
                .map_err(|_| anyhow::anyhow!("smtp: ca_file is not a PEM certificate"))?;
            TlsParameters::builder(host.to_owned())
                // Only the configured CA: no built-in roots.
                .certificate_store(lettre::transport::smtp::client::CertificateStore::None)
                .add_root_certificate(cert)
                .build_rustls()
                .map_err(|e| anyhow::anyhow!("smtp: TLS: {e}"))
        };
        let tls = match self.tls.as_str() {
            "none" if loopback => Tls::None,
            "none" => anyhow::bail!("smtp: plain SMTP only to this machine; use starttls or tls"),
            "starttls" => Tls::Required(tls(&self.host)?),
            "tls" => Tls::Wrapper(tls(&self.host)?),
            _ => anyhow::bail!("smtp: tls is none, starttls or tls"),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host)
            .port(self.port)
            .tls(tls)
            .timeout(Some(std::time::Duration::from_secs(10)));
        match (self.username, self.password_file) {
            (Some(user), Some(file)) => {
                let password = zeroize::Zeroizing::new(crate::database::read_private_file(&file)?);
                builder = builder.credentials(Credentials::new(user, password.trim().to_owned()));
            }
            (None, None) => {}
            _ => anyhow::bail!("smtp: username and password_file go together"),
        }
        Ok(Mail {
            from: Some(from),
            transport: Transport::Smtp(builder.build()),
            origin: origin.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> anyhow::Result<Mail> {
        serde_json::from_str::<SmtpFile>(json)?.mail("https://procuhelp.test")
    }

    #[test]
    fn smtp_files_are_checked_whole() {
        assert!(
            parse(r#"{"host": "127.0.0.1", "port": 2525, "from": "ProcuHelp <a@b.test>", "tls": "none"}"#)
                .unwrap()
                .is_enabled()
        );
        for bad in [
            r#"{"host": "smtp.example", "port": 25, "from": "a@b.test", "tls": "none"}"#,
            r#"{"host": "smtp.example", "port": 465, "from": "a@b.test", "tls": "tls"}"#,
            r#"{"host": "127.0.0.1", "port": 25, "from": "not an address", "tls": "none"}"#,
            r#"{"host": "127.0.0.1", "port": 25, "from": "a@b.test", "tls": "maybe"}"#,
            r#"{"host": "127.0.0.1", "port": 25, "from": "a@b.test", "tls": "none", "username": "u"}"#,
            r#"{"host": "127.0.0.1", "port": 25, "from": "a@b.test", "tls": "none", "password": "x"}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn the_embedded_default_writes_each_message_to_the_outbox() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("ph-outbox-{}", std::process::id()));
        // One left readable by others (made by hand): tightened at start.
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mail = Mail::directory(&dir, "https://127.0.0.1:8443").unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let link = mail.link("/invitations/accept?token=abc");
        let sent = mail
            .send(
                "ada@example.test",
                "Your invitation",
                &format!("Open {link}"),
            )
            .await
            .unwrap();
        let Sent::File(file) = sent else {
            panic!("{sent:?}")
        };
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("To: ada@example.test"), "{text}");
        assert!(
            text.contains("https://127.0.0.1:8443/invitations/accept?token=abc"),
            "{text}"
        );
        assert!(matches!(
            Mail::disabled().send("a@b.test", "x", "y").await,
            Err(MailError::Disabled)
        ));
        // An address that would parse as "name <other address>" is refused, not rerouted.
        assert!(matches!(
            mail.send("x<evil@attacker.test>", "x", "y").await,
            Err(MailError::Build(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
