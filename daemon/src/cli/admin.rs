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
