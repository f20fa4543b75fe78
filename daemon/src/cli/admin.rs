//! `hearth admin …`: operators' commands. They talk to a running cluster over its HTTP API with an
//! admin token or the system root token; no store logic lives here.

use crate::client::Client;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::path::PathBuf;

/// How to reach the cluster.
#[derive(Debug, Args)]
pub struct Target {
    /// The cluster's base URL, e.g. https://127.0.0.1:8443.
    #[arg(long, env = "HEARTH_URL")]
    pub url: String,
    /// An admin token or the system root token.
    #[arg(long, env = "HEARTH_TOKEN", hide_env_values = true)]
    pub token: String,
    /// CA certificate (PEM) to trust for the cluster's certificate.
    #[arg(long, env = "HEARTH_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
}

impl Target {
    /// A client for the target.
    pub fn client(&self) -> anyhow::Result<Client> {
        let pem = self.ca_cert.as_ref().map(std::fs::read).transpose()?;
        Ok(Client::new(&self.url, pem.as_deref())?.with_token(&self.token))
    }
}

/// Admin subcommands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Users.
    User {
        /// The command.
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Peer status: reachable, queue depth, last success, next retry.
    Peers {
        /// The cluster.
        #[command(flatten)]
        target: Target,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Signing keys.
    Keys {
        /// The command.
        #[command(subcommand)]
        command: KeysCommand,
    },
}

/// `admin keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Rotate the cluster's signing key: peers adopt the new key from its key document, which the
    /// old key signs; requests signed with the old key are refused from then on.
    Rotate {
        /// The cluster.
        #[command(flatten)]
        target: Target,
    },
}

fn when(v: &Value) -> String {
    match v.as_i64() {
        Some(t) => time::OffsetDateTime::from_unix_timestamp(t).map(crate::clock::format_time).unwrap_or_default(),
        None => "-".into(),
    }
}

/// `admin user …`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user (and set its password).
    Create {
        /// The cluster.
        #[command(flatten)]
        target: Target,
        /// Username.
        #[arg(long)]
        username: String,
        /// Email address.
        #[arg(long)]
        email: Option<String>,
        /// Mark the email as verified.
        #[arg(long)]
        verified: bool,
        /// Password (at least 8 characters).
        #[arg(long, env = "HEARTH_NEW_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// Make the user an admin.
        #[arg(long)]
        admin: bool,
        /// First name.
        #[arg(long, default_value = "")]
        first_name: String,
        /// Last name.
        #[arg(long, default_value = "")]
        last_name: String,
    },
    /// List users.
    List {
        /// The cluster.
        #[command(flatten)]
        target: Target,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Runs an admin command.
pub async fn run(cmd: AdminCommand) -> anyhow::Result<()> {
    match cmd {
        AdminCommand::Peers { target, json } => {
            let v = target.client()?.get("/hearth/v1/admin/peers").await?.ok()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            println!(
                "{:<7} {:<10} {:>6} {:<32} {:<32} last error",
                "peer", "reachable", "queue", "last success", "next retry"
            );
            for p in v["items"].as_array().cloned().unwrap_or_default() {
                let reachable = match p["reachable"].as_bool() {
                    Some(true) => "yes",
                    Some(false) => "NO",
                    None => "unknown",
                };
                println!(
                    "{:<7} {:<10} {:>6} {:<32} {:<32} {}",
                    p["cluster_id"].as_str().unwrap_or(""),
                    reachable,
                    p["queue_depth"].as_u64().unwrap_or(0),
                    when(&p["last_success"]),
                    when(&p["next_retry"]),
                    p["last_error"].as_str().unwrap_or("")
                );
            }
            Ok(())
        }
        AdminCommand::Keys { command: KeysCommand::Rotate { target } } => {
            let v = target.client()?.post("/hearth/v1/admin/keys/rotate", &json!({})).await?.ok()?;
            println!("{}", v["public_key"].as_str().unwrap_or(""));
            Ok(())
        }
        AdminCommand::User { command } => match command {
            UserCommand::Create { target, username, email, verified, password, admin, first_name, last_name } => {
                let c = target.client()?;
                let u = c
                    .create_user(
                        json!({"username": username, "email": email, "email_verified": verified, "is_admin": admin,
                               "first_name": first_name, "last_name": last_name}),
                        password.as_deref(),
                    )
                    .await?;
                println!("{}", u["uuid"].as_str().unwrap_or(""));
                Ok(())
            }
            UserCommand::List { target, json } => {
                let c = target.client()?;
                let list = c.get("/arvados/v1/users?limit=1000").await?.ok()?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&list)?);
                    return Ok(());
                }
                println!("{:<28} {:<16} {:<32} {:<6} {:<6}", "uuid", "username", "email", "active", "admin");
                for u in list["items"].as_array().cloned().unwrap_or_default() {
                    let s = |k: &str| u.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                    let b = |k: &str| u.get(k).and_then(Value::as_bool).unwrap_or(false);
                    println!(
                        "{:<28} {:<16} {:<32} {:<6} {:<6}",
                        s("uuid"),
                        s("username"),
                        s("email"),
                        b("is_active"),
                        b("is_admin")
                    );
                }
                Ok(())
            }
        },
    }
}
