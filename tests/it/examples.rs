//! `examples/` kept true (issue 18): a real `hearth demo` is started, and every example runs
//! against it, as the examples' README tells a newcomer to run them; then the demo is stopped with
//! SIGTERM, as a service manager would, and must stop its clusters and say where it left its files.

use crate::harness::{HEARTH, python_with};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn every_example_runs_against_the_demo() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let dir = tempfile::tempdir().unwrap();
    let log = std::fs::File::create(dir.path().join("demo.out")).unwrap();
    let mut demo = Command::new(HEARTH)
        .args(["demo", "--dir"])
        .arg(dir.path().join("demo"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let facts = dir.path().join("demo").join("demo.json");
    let started = Instant::now();
    while !facts.exists() {
        let out = std::fs::read_to_string(dir.path().join("demo.out")).unwrap_or_default();
        assert!(demo.try_wait().unwrap().is_none(), "the demo stopped:\n{out}");
        assert!(started.elapsed() < Duration::from_secs(120), "no demo.json after 2 minutes:\n{out}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The demo writes demo.json just before it says it is running.
    std::thread::sleep(Duration::from_millis(500));
    let python = python_with("arvados");
    let mut examples: Vec<PathBuf> = std::fs::read_dir(root.join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            name.chars().next().is_some_and(|c| c.is_ascii_digit()) && (name.ends_with(".py") || name.ends_with(".sh"))
        })
        .collect();
    examples.sort();
    assert!(examples.len() >= 10, "{examples:?}");
    let mut failed = Vec::new();
    for ex in &examples {
        let mut cmd =
            if ex.extension().is_some_and(|e| e == "sh") { Command::new("bash") } else { Command::new(&python) };
        let out = cmd
            .arg(ex)
            .current_dir(&root)
            .env("HEARTH_DEMO", &facts)
            .env("HEARTH", HEARTH)
            .env("PYTHON", &python)
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        if !out.status.success() {
            failed.push(format!(
                "{}: {}\n{}\n{}",
                ex.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    let _ = Command::new("kill").arg("-TERM").arg(demo.id().to_string()).status();
    let status = demo.wait().unwrap();
    let out = std::fs::read_to_string(dir.path().join("demo.out")).unwrap_or_default();
    assert!(failed.is_empty(), "examples failed:\n{}", failed.join("\n\n"));
    assert!(status.success(), "the demo exited with {status} on SIGTERM:\n{out}");
    assert!(out.contains("Stopped. The clusters' data, configs and logs are left in"), "{out}");
    for line in ["login page   https://", "log          "] {
        assert!(out.contains(line), "the demo did not print {line:?}:\n{out}");
    }
}
