//! `hearth admin …`: operators' commands. They talk to a running cluster over its HTTP API with an
//! admin token or the system root token; no store logic lives here (`admin store copy`, which works
//! on a stopped cluster's stores, is `cli/store_copy.rs`).

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
    /// Batch migration across the federation: `--report` lists people with accounts on several
    /// clusters and the conflicts; `--plan FILE` merges this cluster's accounts whose home is elsewhere.
    Migrate {
        /// The cluster.
        #[command(flatten)]
        target: Target,
        /// Report people with accounts on several clusters (grouped by email) and conflicts.
        #[arg(long, conflicts_with = "plan")]
        report: bool,
        /// The plan: CSV lines `<email or username>,<home cluster>`.
        #[arg(long, required_unless_present = "report")]
        plan: Option<std::path::PathBuf>,
        /// Show what would be done and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Import accounts of an older system (one JSON object a line: `legacy_id`, `email`, `name`,
    /// `collections`), for their owners to claim by verified email. Idempotent: the same line
    /// again is "unchanged".
    ImportLegacy {
        /// The cluster.
        #[command(flatten)]
        target: Target,
        /// The JSONL file.
        file: PathBuf,
        /// Check every line and report what would happen; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON (every line's result and the totals) instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// A stopped cluster's store.
    Store {
        /// The command.
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Signing keys.
    Keys {
        /// The command.
        #[command(subcommand)]
        command: KeysCommand,
    },
}

/// `admin store …`.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy a stopped cluster's sled store into a PostgreSQL database (for `store.backend =
    /// "postgres"`). Rerunnable: the target must be empty or exactly what an earlier copy from the
    /// same source left; rows are written in pages, and each tree's rows and SHA-256 are compared
    /// on both sides at the end (exit non-zero on a difference). The signing key and TLS files
    /// stay in the data dir.
    Copy {
        /// The cluster's data dir (`cluster.data_dir`) or its `store` directory. No daemon may run
        /// on it (sled's lock is checked).
        #[arg(long)]
        from: PathBuf,
        /// The PostgreSQL connection URL (`store.url`).
        #[arg(long)]
        to: String,
        /// Connections to open.
        #[arg(long, default_value_t = 2)]
        pool_size: usize,
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
                outln!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            outln!(
                "{:<7} {:<10} {:>6} {:<32} {:<32} last error",
                "peer",
                "reachable",
                "queue",
                "last success",
                "next retry"
            );
            for p in v["items"].as_array().cloned().unwrap_or_default() {
                let reachable = match p["reachable"].as_bool() {
                    Some(true) => "yes",
                    Some(false) => "NO",
                    None => "unknown",
                };
                outln!(
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
        AdminCommand::Migrate { target, report, plan, dry_run, json } => {
            let c = target.client()?;
            if report {
                return print_report(&c, json).await;
            }
            let Some(path) = plan else { anyhow::bail!("--plan FILE or --report is required") };
            let text =
                std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            run_plan(&c, &text, dry_run, json).await
        }
        AdminCommand::ImportLegacy { target, file, dry_run, json } => {
            let c = target.client()?;
            let text =
                std::fs::read_to_string(&file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            import_legacy(&c, &text, dry_run, json).await
        }
        AdminCommand::Store { command: StoreCommand::Copy { from, to, pool_size } } => {
            tokio::task::spawn_blocking(move || super::store_copy::copy(&from, &to, pool_size)).await?
        }
        AdminCommand::Keys { command: KeysCommand::Rotate { target } } => {
            let v = target.client()?.post("/hearth/v1/admin/keys/rotate", &json!({})).await?.ok()?;
            outln!("{}", v["public_key"].as_str().unwrap_or(""));
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
                outln!("{}", u["uuid"].as_str().unwrap_or(""));
                Ok(())
            }
            UserCommand::List { target, json } => {
                let c = target.client()?;
                let list = c.get("/arvados/v1/users?limit=1000").await?.ok()?;
                if json {
                    outln!("{}", serde_json::to_string_pretty(&list)?);
                    return Ok(());
                }
                outln!("{:<28} {:<16} {:<32} {:<6} {:<6}", "uuid", "username", "email", "active", "admin");
                for u in list["items"].as_array().cloned().unwrap_or_default() {
                    let s = |k: &str| u.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                    let b = |k: &str| u.get(k).and_then(Value::as_bool).unwrap_or(false);
                    outln!(
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

async fn print_report(c: &Client, json_out: bool) -> anyhow::Result<()> {
    let r = c.get("/hearth/v1/admin/federation_report").await?.ok()?;
    if json_out {
        outln!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    let people = r["people"].as_array().cloned().unwrap_or_default();
    outln!(
        "{} people with accounts on several clusters or with conflicts ({} accounts seen)",
        people.len(),
        r["accounts_seen"]
    );
    outln!(
        "{:<32} {:<7} {:<28} {:<14} {:<8} {:<31}",
        "email",
        "cluster",
        "account",
        "username",
        "verified",
        "last login"
    );
    for p in &people {
        let email = p["email"].as_str().unwrap_or("");
        for (i, a) in p["accounts"].as_array().cloned().unwrap_or_default().iter().enumerate() {
            outln!(
                "{:<32} {:<7} {:<28} {:<14} {:<8} {:<31}",
                if i == 0 { email } else { "" },
                a["cluster_id"].as_str().unwrap_or(""),
                a["uuid"].as_str().unwrap_or(""),
                a["username"].as_str().unwrap_or("-"),
                if a["email_verified"].as_bool() == Some(true) { "yes" } else { "NO" },
                a["last_login_at"].as_str().unwrap_or("never"),
            );
        }
        for conflict in p["conflicts"].as_array().cloned().unwrap_or_default() {
            outln!("{:<32} ! {}", "", conflict.as_str().unwrap_or(""));
        }
    }
    for u in r["unreachable"].as_array().cloned().unwrap_or_default() {
        outln!("unreachable: {} ({})", u["cluster_id"].as_str().unwrap_or(""), u["error"].as_str().unwrap_or(""));
    }
    Ok(())
}

async fn run_plan(c: &Client, text: &str, dry_run: bool, json_out: bool) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let planned = c.post("/hearth/v1/admin/migrate/plan", &json!({"plan": text})).await?.ok()?;
    let cluster = planned["cluster_id"].as_str().unwrap_or("").to_string();
    let actions = planned["actions"].as_array().cloned().unwrap_or_default();
    let merges: Vec<&Value> = actions.iter().filter(|a| a["action"] == "merge").collect();
    let mut rows: Vec<(u64, String, String, String)> = Vec::new();
    for a in &actions {
        if a["action"] != "merge" {
            rows.push((
                a["line"].as_u64().unwrap_or(0),
                a["key"].as_str().unwrap_or("").into(),
                a["action"].as_str().unwrap_or("").into(),
                a["why"].as_str().unwrap_or("").into(),
            ));
        }
    }
    if dry_run {
        for a in &merges {
            let what = format!(
                "would merge {} into {}",
                a["old_user_uuid"].as_str().unwrap_or(""),
                a["home_user_uuid"].as_str().unwrap_or("")
            );
            rows.push((a["line"].as_u64().unwrap_or(0), a["key"].as_str().unwrap_or("").into(), "merge".into(), what));
        }
    } else {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = indicatif::ProgressBar::new(merges.len() as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} merges  {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b
        });
        for (i, a) in merges.iter().enumerate() {
            let line = a["line"].as_u64().unwrap_or(0);
            let key = a["key"].as_str().unwrap_or("").to_string();
            let body = json!({"old_user_uuid": a["old_user_uuid"], "home_user_uuid": a["home_user_uuid"]});
            let answer = c.post("/hearth/v1/admin/migrate/merge", &body).await?;
            let row = if answer.status.is_success() {
                match answer.body["action"].as_str() {
                    Some("merged") => (
                        line,
                        key.clone(),
                        "merged".into(),
                        format!(
                            "into {} (project {})",
                            a["home_user_uuid"].as_str().unwrap_or(""),
                            answer.body["new_owner_uuid"].as_str().unwrap_or("")
                        ),
                    ),
                    _ => (line, key.clone(), "skip".into(), answer.body["why"].as_str().unwrap_or("").into()),
                }
            } else {
                let why = answer.body["errors"][0].as_str().unwrap_or("refused").to_string();
                (line, key.clone(), "refuse".into(), why)
            };
            match &bar {
                Some(b) => {
                    b.set_message(key.clone());
                    b.inc(1);
                }
                None => eprintln!("[{}/{}] line {line} {key}: {}", i + 1, merges.len(), row.2),
            }
            rows.push(row);
        }
        if let Some(b) = bar {
            b.finish_and_clear();
        }
    }
    rows.sort_by_key(|r| r.0);
    if json_out {
        let out: Vec<Value> =
            rows.iter().map(|(l, k, a, w)| json!({"line": l, "key": k, "action": a, "detail": w})).collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({"cluster_id": cluster, "dry_run": dry_run, "results": out}))?
        );
        return Ok(());
    }
    let count = |a: &str| rows.iter().filter(|r| r.2 == a).count();
    let merged = if dry_run { count("merge") } else { count("merged") };
    outln!(
        "{} on {cluster}: {} {}, {} skipped, {} refused",
        if dry_run { "dry run" } else { "migration" },
        merged,
        if dry_run { "to merge" } else { "merged" },
        count("skip"),
        count("refuse")
    );
    if merged == 0 && count("refuse") == 0 {
        outln!("nothing to do: every account in the plan is where it belongs");
    }
    outln!("{:>5}  {:<32} {:<7} detail", "line", "person", "result");
    for (l, k, a, w) in &rows {
        outln!("{l:>5}  {k:<32} {a:<7} {w}");
    }
    Ok(())
}

/// Lines per import request, and bytes: well inside the daemon's body limit.
const IMPORT_CHUNK_LINES: usize = 5000;
const IMPORT_CHUNK_BYTES: usize = 2 * 1024 * 1024;

async fn import_legacy(c: &Client, text: &str, dry_run: bool, json_out: bool) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    // Blank lines are skipped but keep their numbers, so refusals name the line an editor shows.
    let all: Vec<(u64, &str)> =
        text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).map(|(i, l)| (i as u64 + 1, l)).collect();
    // A legacy_id seen on an earlier line refuses the later one before anything is sent, so that a
    // repeat in a later request cannot update what the first line imported.
    let mut first_seen: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    let mut repeats: Vec<Value> = Vec::new();
    let mut lines: Vec<(u64, &str)> = Vec::with_capacity(all.len());
    for (n, l) in all {
        let id = serde_json::from_str::<Value>(l).ok().and_then(|v| match &v["legacy_id"] {
            Value::String(s) => Some(s.clone()),
            Value::Number(x) => Some(x.to_string()),
            _ => None,
        });
        match id.as_ref().and_then(|i| first_seen.get(i)) {
            Some(first) => repeats.push(json!({"line": n, "outcome": "refused", "legacy_id": id,
                "error": format!("legacy_id {:?} is already on line {first}", id.as_deref().unwrap_or(""))})),
            None => {
                if let Some(i) = id {
                    first_seen.insert(i, n);
                }
                lines.push((n, l));
            }
        }
    }
    let bar = (std::io::stderr().is_terminal() && !json_out).then(|| {
        let b = indicatif::ProgressBar::new(lines.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} lines  {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let mut results: Vec<Value> = Vec::with_capacity(lines.len() + repeats.len());
    let mut start = 0;
    while start < lines.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < lines.len()
            && end - start < IMPORT_CHUNK_LINES
            && (end == start || bytes + lines[end].1.len() < IMPORT_CHUNK_BYTES)
        {
            bytes += lines[end].1.len();
            end += 1;
        }
        // One request per run of consecutive lines (the daemon numbers them from first_line).
        let mut i = start;
        while i < end {
            let mut j = i + 1;
            while j < end && lines[j].0 == lines[j - 1].0 + 1 {
                j += 1;
            }
            let chunk: Vec<&str> = lines[i..j].iter().map(|l| l.1).collect();
            let body = json!({"lines": chunk, "first_line": lines[i].0, "dry_run": dry_run});
            let answer = c.post("/hearth/v1/admin/legacy/import", &body).await?.ok()?;
            for r in answer["lines"].as_array().cloned().unwrap_or_default() {
                match &bar {
                    Some(b) => b.inc(1),
                    None if !json_out && r["outcome"] == "refused" => {
                        eprintln!("line {}: refused: {}", r["line"], r["error"].as_str().unwrap_or(""))
                    }
                    None => {}
                }
                results.push(r);
            }
            i = j;
        }
        if bar.is_none() && !json_out {
            eprintln!("{end}/{} lines sent", lines.len());
        }
        start = end;
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    results.extend(repeats);
    results.sort_by_key(|r| r["line"].as_u64().unwrap_or(0));
    let count = |o: &str| results.iter().filter(|r| r["outcome"] == o).count();
    let counts = json!({"imported": count("imported"), "updated": count("updated"), "unchanged": count("unchanged"), "refused": count("refused")});
    if json_out {
        outln!("{}", serde_json::to_string_pretty(&json!({"dry_run": dry_run, "lines": results, "counts": counts}))?);
        return Ok(());
    }
    outln!("{}legacy import: {} lines", if dry_run { "dry run of a " } else { "" }, results.len());
    outln!("{:<10} {:>8}", "result", "lines");
    for o in ["imported", "updated", "unchanged", "refused"] {
        outln!("{o:<10} {:>8}", count(o));
    }
    let refused: Vec<&Value> = results.iter().filter(|r| r["outcome"] == "refused").collect();
    if !refused.is_empty() {
        outln!("\n{:>5}  refused because", "line");
        for r in refused {
            outln!("{:>5}  {}", r["line"], r["error"].as_str().unwrap_or(""));
        }
    }
    Ok(())
}
