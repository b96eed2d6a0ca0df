//! Real headless Chromium, driven through Debian's chromedriver (WebDriver).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use fantoccini::{Client, ClientBuilder, Locator};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long an expected page change may take before the test fails.
pub const PAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// The browser app built by `trunk build --release` (`dist/`), for a relay's `static_dir`.
pub fn built_app() -> anyhow::Result<PathBuf> {
    let dist = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dist");
    anyhow::ensure!(
        dist.join("index.html").exists(),
        "{} has no built app: run `trunk build --release` first (scripts/test.sh does)",
        dist.display()
    );
    Ok(dist.canonicalize()?)
}

/// A chromedriver process; each [`Chromedriver::browser`] is a new Chromium with its own
/// profile folder.
pub struct Chromedriver {
    port: u16,
    child: Child,
    profiles: Vec<TempDir>,
}

impl Chromedriver {
    /// Starts chromedriver on a port it picks itself (`--port=0`) and reads it from the
    /// line that announces it, so no other process can take the port in between.
    pub async fn start() -> anyhow::Result<Self> {
        let mut child = Command::new("/usr/bin/chromedriver")
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            // Its own process group, which the browsers it starts join: a test that fails
            // before closing its browsers still ends them (see `Drop`).
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .context("starting /usr/bin/chromedriver (install chromium-driver)")?;
        let stdout = child.stdout.take().context("chromedriver's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        const STARTED: &str = "was started successfully on port ";
        let port = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = lines.next_line().await? {
                if let Some((_, port)) = line.split_once(STARTED) {
                    return Ok(port.trim_end_matches('.').parse::<u16>()?);
                }
            }
            bail!("chromedriver exited before it listened")
        })
        .await
        .context("chromedriver did not say its port within 20 s")??;
        // Its later output is not needed, but it must not fill the pipe and block it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            port,
            child,
            profiles: Vec::new(),
        })
    }

    /// A new headless browser window of the given size.
    pub async fn browser(&mut self, width: u32, height: u32) -> anyhow::Result<Client> {
        let profile = tempfile::tempdir()?;
        let args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "binary": "/usr/bin/chromium", "args": args }),
        );
        // The workspace enables both rustls providers; pick one for the process, as the
        // relay does.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = ClientBuilder::rustls()
            .context("TLS setup for the WebDriver client")?
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .context("opening a Chromium session through chromedriver")?;
        self.profiles.push(profile);
        Ok(client)
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // The whole group: a browser left running by a failed test (chromedriver does not
        // close its sessions when killed) went on drawing and took a core from what ran next.
        if let Some(pid) = self.child.id().and_then(|pid| i32::try_from(pid).ok()) {
            // SAFETY: kill(2) with a negative pid signals that process group; no memory is
            // touched.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        let _ = self.child.start_kill();
    }
}

/// Waits until `script` (a JavaScript expression) is truthy in the page; returns its value.
pub async fn wait_for_js(
    client: &Client,
    what: &str,
    script: &str,
) -> anyhow::Result<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + PAGE_TIMEOUT;
    let body = format!("return ({script});");
    loop {
        let value = client.execute(&body, vec![]).await?;
        let truthy = match &value {
            serde_json::Value::Null | serde_json::Value::Bool(false) => false,
            serde_json::Value::String(s) => !s.is_empty(),
            _ => true,
        };
        if truthy {
            return Ok(value);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out waiting for {what} ({script})");
        }
        // The page changes on its own schedule; WebDriver offers no event to await.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A JavaScript expression: the whole text of the terminal's buffer, scrollback included
/// (the page itself holds only the visible rows), one line per line of output (rows that
/// wrapped are joined again). The app puts the xterm.js `Terminal` on its element as
/// `__opsdeckTerminal`.
const TERMINAL_TEXT: &str = "(() => {
    const host = document.querySelector('#terminal');
    const terminal = host && host.__opsdeckTerminal;
    if (!terminal) return '';
    const buffer = terminal.buffer.active;
    let text = '';
    for (let i = 0; i < buffer.length; i++) {
        const line = buffer.getLine(i);
        if (!line) continue;
        text += (i > 0 && !line.isWrapped ? '\\n' : '') + line.translateToString(true);
    }
    return text;
})()";

/// The whole text of the terminal's buffer (see [`TERMINAL_TEXT`]).
pub async fn terminal_text(client: &Client) -> anyhow::Result<String> {
    let text = client
        .execute(&format!("return {TERMINAL_TEXT};"), vec![])
        .await?;
    Ok(text.as_str().unwrap_or_default().to_owned())
}

/// Waits until the terminal's buffer holds `needle`; returns the buffer's text.
pub async fn wait_for_terminal_text(client: &Client, needle: &str) -> anyhow::Result<String> {
    let script = format!(
        "{TERMINAL_TEXT}.includes({})",
        serde_json::to_string(needle)?
    );
    wait_for_js(client, &format!("terminal text {needle:?}"), &script).await?;
    terminal_text(client).await
}

/// Types into the focused terminal.
pub async fn type_in_terminal(client: &Client, text: &str) -> anyhow::Result<()> {
    let input = client
        .wait()
        .at_most(PAGE_TIMEOUT)
        .for_element(Locator::Css("#terminal textarea.xterm-helper-textarea"))
        .await?;
    input.send_keys(text).await?;
    Ok(())
}

/// Waits until `#conn-state` has `data-state = state`.
pub async fn wait_for_state(client: &Client, state: &str) -> anyhow::Result<()> {
    let script = format!(
        "(document.querySelector('#conn-state')||{{dataset:{{}}}}).dataset.state === {}",
        serde_json::to_string(state)?
    );
    wait_for_js(client, &format!("connection state {state}"), &script).await?;
    Ok(())
}

/// Saves a screenshot under `tests/artifacts/` (kept as a test artifact).
pub async fn screenshot(client: &Client, name: &str) -> anyhow::Result<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("artifacts");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, client.screenshot().await?)?;
    Ok(path)
}

/// Logs in through the login page.
pub async fn log_in(client: &Client, base: &str, user: &str, password: &str) -> anyhow::Result<()> {
    client.goto(&format!("{base}/#/login")).await?;
    let username = client
        .wait()
        .at_most(PAGE_TIMEOUT)
        .for_element(Locator::Css("#login-username"))
        .await?;
    username.send_keys(user).await?;
    client
        .find(Locator::Css("#login-password"))
        .await?
        .send_keys(password)
        .await?;
    client
        .find(Locator::Css("#login-submit"))
        .await?
        .click()
        .await?;
    Ok(())
}

/// A Chrome DevTools Protocol command, through chromedriver's `goog/cdp/execute`.
#[derive(Debug)]
struct DevTools {
    method: &'static str,
    params: serde_json::Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for DevTools {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = serde_json::json!({ "cmd": self.method, "params": self.params });
        (http::Method::POST, Some(body.to_string()))
    }
}

/// Types into the focused element as an input method does: each of `composing` is shown
/// as the text being composed (composition events, as for pinyin before a candidate is
/// picked), then `committed` is committed.
pub async fn type_with_ime(
    client: &Client,
    composing: &[&str],
    committed: &str,
) -> anyhow::Result<()> {
    for text in composing {
        let end = text.encode_utf16().count();
        client
            .issue_cmd(DevTools {
                method: "Input.imeSetComposition",
                params: serde_json::json!({
                    "text": text, "selectionStart": end, "selectionEnd": end
                }),
            })
            .await?;
    }
    client
        .issue_cmd(DevTools {
            method: "Input.insertText",
            params: serde_json::json!({ "text": committed }),
        })
        .await?;
    Ok(())
}
