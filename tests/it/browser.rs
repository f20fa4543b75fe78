//! The migration of DESIGN §4.4 in a real browser: headless Debian chromium driven through
//! chromedriver (WebDriver, fantoccini) against two real daemons. A person logs in at the wrong
//! cluster, follows the account page's prompt, logs in at home, confirms, and ends logged in as the
//! home account with the data moved. Every page is saved under `target/screenshots/`.
//!
//! Browsers share cookies between ports of one host, so the harness gives each cluster its own
//! loopback address (127.0.0.1, 127.0.0.2, …): each keeps its own cookies, as clusters on their own
//! hosts do.
//!
//! Missing chromium or chromedriver fails the test (CI installs them); it never skips.

use crate::harness::Federation;
use crate::migration::person_at_two;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A running chromedriver, killed when dropped (also when the test fails).
pub struct Driver {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The browser's profile directory.
    pub profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A session that was not closed (a failed test) leaves its chromium running: end the
        // processes started with this test's own profile directory, and only those.
        let marker = format!("--user-data-dir={}", self.profile.path().display());
        let Ok(procs) = std::fs::read_dir("/proc") else { return };
        for p in procs.flatten() {
            let Ok(pid) = p.file_name().to_string_lossy().parse::<u32>() else { continue };
            let Ok(cmdline) = std::fs::read(p.path().join("cmdline")) else { continue };
            if String::from_utf8_lossy(&cmdline).split('\0').any(|a| a == marker) {
                let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
            }
        }
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Starts chromedriver on a free loopback port and waits until it accepts connections.
pub fn start_chromedriver() -> Driver {
    for bin in [CHROMIUM, CHROMEDRIVER] {
        assert!(Path::new(bin).exists(), "{bin} is missing: install Debian's chromium and chromium-driver");
    }
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn chromedriver");
    let driver =
        Driver { child, url: format!("http://127.0.0.1:{port}"), profile: tempfile::tempdir().expect("tempdir") };
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "chromedriver never listened on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    driver
}

/// A headless chromium session through `driver`.
pub async fn browser(driver: &Driver) -> Client {
    let args = [
        "--headless=new".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-dev-shm-usage".into(),
        "--ignore-certificate-errors".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--window-size=1000,900".into(),
        format!("--user-data-dir={}", driver.profile.path().display()),
    ];
    let caps = json!({
        "acceptInsecureCerts": true,
        "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
    });
    let caps = caps.as_object().cloned().unwrap();
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let mut last = None;
    for _ in 0..3 {
        match ClientBuilder::new(connector.clone()).capabilities(caps.clone()).connect(&driver.url).await {
            Ok(c) => return c,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("no browser session: {last:?}");
}

/// Where the screenshots go: `<workspace>/target/screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("target").join("screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

pub(crate) async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
    std::fs::write(screenshot_dir().join(name), png).expect("write screenshot");
}

pub(crate) async fn text(c: &Client, css: &str) -> String {
    // The element may be found on the page a click is leaving and be gone (stale) by the time its
    // text is read: look again until the page settles.
    let started = Instant::now();
    loop {
        let e = c.wait().at_most(Duration::from_secs(20)).for_element(Locator::Css(css)).await;
        match e {
            Ok(e) => match e.text().await {
                Ok(t) => return t,
                Err(_) if started.elapsed() < Duration::from_secs(20) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(err) => panic!("{css}: {err}"),
            },
            Err(err) => {
                let url = c.current_url().await.map(|u| u.to_string()).unwrap_or_default();
                let src = c.source().await.unwrap_or_default();
                panic!("no {css} on {url}: {err}\n{src}");
            }
        }
    }
}

/// Waits (up to 20 s) until the text of `css` contains `needle`: a click that submits a form may
/// return before the next page is there.
pub(crate) async fn wait_for_text(c: &Client, css: &str, needle: &str) {
    let started = Instant::now();
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await
            && e.text().await.is_ok_and(|t| t.contains(needle))
        {
            return;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let src = c.source().await.unwrap_or_default();
            panic!("{css} never showed {needle:?}\n{src}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn fill(c: &Client, css: &str, value: &str) {
    c.find(Locator::Css(css)).await.expect(css).send_keys(value).await.expect("send keys");
}

pub(crate) async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css)).await.expect(css).click().await.expect("click");
}

#[tokio::test]
async fn a_person_moves_the_wrong_account_home_in_a_browser() {
    let started = Instant::now();
    let fed = Federation::start(&["aaaaa", "bbbbb"]).await;
    let a_url = fed.at("aaaaa").url.clone();
    let b_url = fed.at("bbbbb").url.clone();
    let (home, wrong) = person_at_two(&fed, "aaaaa", "bbbbb", "ada").await;
    let coll = wrong
        .client
        .post("/arvados/v1/collections", &json!({"collection": {"name": "results"}}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let coll_uuid = coll["uuid"].as_str().unwrap().to_string();

    let driver = start_chromedriver();
    let c = browser(&driver).await;

    // 1. The person logs in at the wrong cluster, through its login page.
    c.goto(&format!("{b_url}/login")).await.unwrap();
    assert_eq!(text(&c, "h1").await, "Log in");
    shot(&c, "01-login-bbbbb.png").await;
    fill(&c, "#login", "ada").await;
    fill(&c, "#password", &wrong.password).await;
    click(&c, "#submit").await;

    // 2. The account page says there is an account at aaaaa and offers to move this one there.
    assert_eq!(text(&c, "#user-uuid").await, wrong.uuid);
    assert_eq!(text(&c, "#home-cluster").await, "bbbbb");
    let banner = text(&c, "#migration-aaaaa").await;
    assert!(banner.contains("You also have an account at cluster aaaaa (ada@example.org"), "{banner}");
    assert!(banner.contains("Move this account into it, or make this cluster your home"), "{banner}");
    shot(&c, "02-account-prompt.png").await;
    click(&c, "#move-aaaaa").await;

    // 3. aaaaa's login page, for bbbbb.
    let for_remote = text(&c, "#for-remote").await;
    assert!(for_remote.contains("for cluster bbbbb"), "{for_remote}");
    assert!(c.current_url().await.unwrap().as_str().starts_with(&format!("{a_url}/login?")));
    shot(&c, "03-login-aaaaa.png").await;
    fill(&c, "#login", "ada").await;
    fill(&c, "#password", &home.password).await;
    click(&c, "#submit").await;

    // 4. Back at bbbbb: the confirmation page names exactly what will move.
    let project_name = format!("Migrated from ada@example.org ({})", wrong.uuid);
    assert_eq!(text(&c, "#old-uuid").await, wrong.uuid);
    assert_eq!(text(&c, "#new-uuid").await, home.uuid);
    assert_eq!(text(&c, "#project-name").await, project_name);
    assert_eq!(text(&c, "#object-count").await, "1 object");
    let url = c.current_url().await.unwrap();
    assert!(url.as_str().starts_with(&format!("{b_url}/migrations/")), "{url}");
    shot(&c, "04-confirm.png").await;
    let old_session = c.get_named_cookie("hearth_session").await.unwrap().value().to_string();
    // Nothing has moved yet.
    let got = fed.at("bbbbb").root.get(&format!("/arvados/v1/collections/{coll_uuid}")).await.unwrap().ok().unwrap();
    assert_eq!(got["owner_uuid"], wrong.uuid.as_str());
    click(&c, "#confirm").await;

    // 5. The result page.
    let result = text(&c, "#result").await;
    assert!(result.contains(&format!("now redirects to {}", home.uuid)), "{result}");
    assert_eq!(text(&c, "#project-name").await, project_name);
    let project = text(&c, "#project-uuid").await;
    shot(&c, "05-done.png").await;

    // 6. The person is now logged in at bbbbb as the home account, with a token of aaaaa.
    click(&c, "#continue").await;
    assert_eq!(text(&c, "#user-uuid").await, home.uuid);
    assert_eq!(text(&c, "#home-cluster").await, "aaaaa");
    assert!(c.find(Locator::Css("#migration-aaaaa")).await.is_err(), "no prompt any more");
    shot(&c, "06-account-home.png").await;
    let session = c.get_named_cookie("hearth_session").await.unwrap();
    assert!(session.value().starts_with("v2/aaaaa-gj3su-"), "session is a token of aaaaa: {}", session.value());
    assert_eq!(c.get_named_cookie("hearth_home").await.unwrap().value(), "aaaaa");

    // A browser still holding the old session is told that its account moved.
    c.delete_cookie("hearth_session").await.unwrap();
    let mut old = fantoccini::cookies::Cookie::new("hearth_session", old_session);
    old.set_domain(reqwest::Url::parse(&b_url).unwrap().host_str().unwrap().to_string());
    old.set_path("/");
    old.set_secure(true);
    old.set_http_only(true);
    c.add_cookie(old).await.unwrap();
    c.goto(&format!("{b_url}/account")).await.unwrap();
    let moved = text(&c, "#moved").await;
    assert!(
        moved.contains(&format!("This account ({}) was merged into {} at cluster aaaaa", wrong.uuid, home.uuid)),
        "{moved}"
    );
    shot(&c, "07-moved.png").await;
    click(&c, "#continue").await;
    let notice = text(&c, "#notice").await;
    assert!(
        notice.contains(&format!("Your account {} at cluster bbbbb was merged into an account here", wrong.uuid)),
        "{notice}"
    );
    shot(&c, "08-login-aaaaa-moved.png").await;

    // The data moved (checked through the API).
    let b = fed.at("bbbbb");
    let got = b.root.get(&format!("/arvados/v1/collections/{coll_uuid}")).await.unwrap().ok().unwrap();
    assert_eq!(got["owner_uuid"], project.as_str());
    let g = b.root.get(&format!("/arvados/v1/groups/{project}")).await.unwrap().ok().unwrap();
    assert_eq!(g["name"], project_name);
    assert_eq!(g["owner_uuid"], home.uuid.as_str());

    c.close().await.unwrap();
    drop(driver);
    eprintln!("browser migration: {:.1}s", started.elapsed().as_secs_f64());
}
