//! Email to admins about work waiting for them (a new pending person claim), through a real SMTP
//! client (`lettre`). Sending happens after the change is committed, off the request: a mail
//! server that is slow or down never holds up or fails the request, and is logged and counted
//! (`hearth_notify_mail_total{result}`). Without `notify.smtp_url` and `notify.admin_emails`
//! nothing is sent and the admin queue page is the only notice.

use crate::config::NotifySettings;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// The admins' mail, if configured.
pub struct Notifier {
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: String,
    to: Vec<String>,
}

impl Notifier {
    /// A notifier for `settings` (nothing is sent when they name no server or no admins).
    pub fn new(settings: &NotifySettings, cluster: &str) -> anyhow::Result<Notifier> {
        let transport = match (&settings.smtp_url, settings.admin_emails.is_empty()) {
            (Some(url), false) => Some(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| anyhow::anyhow!("notify.smtp_url: {e}"))?
                    .timeout(Some(std::time::Duration::from_secs(20)))
                    .build(),
            ),
            _ => None,
        };
        Ok(Notifier {
            transport,
            from: settings.from.clone().unwrap_or_else(|| format!("hearth@{cluster}.invalid")),
            to: settings.admin_emails.clone(),
        })
    }

    /// Whether mail is configured.
    pub fn enabled(&self) -> bool {
        self.transport.is_some()
    }

    /// Sends `subject`/`body` to every admin address, in the background.
    pub fn tell_admins(&self, subject: String, body: String) {
        let Some(transport) = self.transport.clone() else { return };
        let (from, to) = (self.from.clone(), self.to.clone());
        tokio::spawn(async move {
            let result = send(&transport, &from, &to, &subject, body).await;
            let label = if result.is_ok() { "sent" } else { "failed" };
            metrics::counter!("hearth_notify_mail_total", "result" => label).increment(1);
            if let Err(e) = result {
                tracing::warn!(error = %e, subject = %subject, "could not mail the admins");
            }
        });
    }
}

async fn send(
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    from: &str,
    to: &[String],
    subject: &str,
    body: String,
) -> anyhow::Result<()> {
    let mut m = Message::builder().from(from.parse::<Mailbox>()?).subject(subject);
    for t in to {
        m = m.to(t.parse::<Mailbox>()?);
    }
    transport.send(m.body(body)?).await?;
    Ok(())
}
