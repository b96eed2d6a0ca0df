//! The browser app in real headless Chromium, against a real relay and sshd.
//! Screenshots of each view are saved under `tests/artifacts/`.

use anyhow::Context;
use fantoccini::{Client, Locator};
use opsdeck_tests::browser::{
    Chromedriver, PAGE_TIMEOUT, built_app, log_in, screenshot, terminal_text, type_in_terminal,
    type_with_ime, wait_for_js, wait_for_state, wait_for_terminal_text,
};
use opsdeck_tests::proxy::CuttableProxy;
use opsdeck_tests::relay::{PASSWORD, TestRelay, users_toml};
use opsdeck_tests::sshd::TestSshd;

const ENTER: &str = "\u{E007}";

struct Stack {
    _sshd: TestSshd,
    relay: TestRelay,
    proxy: CuttableProxy,
}

impl Stack {
    async fn start() -> anyhow::Result<Self> {
        let sshd = TestSshd::start().await?;
        let config = format!(
            "static_dir = \"{}\"\n{}\n[[grants]]\ngroups = [\"ops\"]\nssh = [\"*\"]\n{}",
            built_app()?.display(),
            users_toml(),
            sshd.host_toml("box")?
        );
        let relay = TestRelay::start(&config).await?;
        let proxy = CuttableProxy::start(relay.addr).await?;
        Ok(Self {
            _sshd: sshd,
            relay,
            proxy,
        })
    }

    fn base(&self) -> String {
        format!("http://{}", self.proxy.addr)
    }
}

/// The last `rows cols` line `stty size` printed.
fn last_stty_size(text: &str) -> Option<(u16, u16)> {
    text.lines().rev().find_map(|line| {
        let mut parts = line.split_whitespace();
        let rows = parts.next()?.parse().ok()?;
        let cols = parts.next()?.parse().ok()?;
        parts.next().is_none().then_some((rows, cols))
    })
}

async fn stty_size(client: &Client, marker: &str) -> anyhow::Result<(u16, u16)> {
    type_in_terminal(client, &format!("stty size; echo {marker}-$((1+1)){ENTER}")).await?;
    let text = wait_for_terminal_text(client, &format!("{marker}-2")).await?;
    let before_marker = text
        .rsplit_once(&format!("{marker}-2"))
        .map(|(head, _)| head)
        .unwrap_or_default();
    last_stty_size(before_marker).ok_or_else(|| anyhow::anyhow!("no stty size in {text:?}"))
}

#[tokio::test]
async fn wrong_password_shows_an_error_on_the_login_page() -> anyhow::Result<()> {
    let stack = Stack::start().await?;
    let mut driver = Chromedriver::start().await?;
    let client = driver.browser(1200, 800).await?;
    log_in(&client, &stack.base(), "alice", "not the password").await?;
    let error = wait_for_js(
        &client,
        "the login error",
        "(document.querySelector('#login-error')||{innerText:''}).innerText",
    )
    .await?;
    assert!(
        error
            .as_str()
            .unwrap_or_default()
            .to_lowercase()
            .contains("wrong username or password"),
        "{error}"
    );
    screenshot(&client, "login-error").await?;
    client.close().await?;
    Ok(())
}

#[tokio::test]
async fn terminal_echoes_resizes_and_survives_a_cut_connection() -> anyhow::Result<()> {
    let stack = Stack::start().await?;
    let mut driver = Chromedriver::start().await?;
    let client = driver.browser(1200, 800).await?;
    log_in(&client, &stack.base(), "alice", PASSWORD).await?;

    let target = client
        .wait()
        .at_most(PAGE_TIMEOUT)
        .for_element(Locator::Css(".target[data-id='box']"))
        .await?;
    screenshot(&client, "picker").await?;
    target.click().await?;
    wait_for_state(&client, "connected").await?;

    type_in_terminal(&client, &format!("echo hello-$((40+2)){ENTER}")).await?;
    wait_for_terminal_text(&client, "hello-42").await?;
    screenshot(&client, "terminal").await?;

    // Chinese typed through the browser's input method reaches the shell once committed,
    // the pinyin being composed never does.
    type_in_terminal(
        &client,
        &format!("read -r typed; echo \"got:$typed:end\"{ENTER}"),
    )
    .await?;
    type_with_ime(&client, &["n", "ni", "nih", "nihao"], "你好").await?;
    type_in_terminal(&client, ENTER).await?;
    let text = wait_for_terminal_text(&client, "got:你好:end").await?;
    assert!(
        !text.contains("got:n"),
        "composition text reached the shell: {text}"
    );

    let before = stty_size(&client, "size-a").await?;
    client.set_window_size(800, 500).await?;
    let after = wait_for_size_change(&client, before).await?;
    assert!(
        after.0 < before.0 && after.1 < before.1,
        "{before:?} -> {after:?}"
    );

    // Output produced while the connection is cut must arrive once the app reconnects. The
    // shell (on this machine) waits for a line on a FIFO that the test writes only after
    // the cut; `waiting-6` shows that the command runs before the cut.
    let dir = tempfile::tempdir()?;
    let fifo = dir.path().join("go");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status()?;
    anyhow::ensure!(made.success(), "mkfifo {}", fifo.display());
    let resumed_before = stack.relay.relay().terminal_resumes();
    let command = format!(
        "echo waiting-$((2*3)); read -r go < {}; echo missed-$((5*5))",
        fifo.display()
    );
    type_in_terminal(&client, &format!("{command}{ENTER}")).await?;
    wait_for_terminal_text(&client, "waiting-6").await?;
    stack.proxy.cut_all();
    // Opening the FIFO waits for the shell's `read` to open it too.
    tokio::time::timeout(PAGE_TIMEOUT, tokio::fs::write(&fifo, "now\n"))
        .await
        .context("the shell never read the FIFO")??;
    wait_for_terminal_text(&client, "missed-25").await?;
    let resumed_after = stack.relay.relay().terminal_resumes();
    assert!(
        resumed_after > resumed_before,
        "the app did not resume the session"
    );
    type_in_terminal(&client, &format!("echo after-$((1+2)){ENTER}")).await?;
    let text = wait_for_terminal_text(&client, "after-3").await?;
    assert_eq!(
        text.matches("hello-42").count(),
        1,
        "output doubled: {text}"
    );
    assert_eq!(
        text.matches("missed-25").count(),
        1,
        "output lost or doubled: {text}"
    );
    screenshot(&client, "terminal-after-reconnect").await?;
    // Three flow-control windows of output: the app acknowledges what xterm.js displayed,
    // or the relay would stop after the first and the marker would never show.
    type_in_terminal(
        &client,
        &format!("head -c 3000000 /dev/zero | base64 -w 200; echo burst-$((6*7)){ENTER}"),
    )
    .await?;
    wait_for_terminal_text(&client, "burst-42").await?;

    // Loaded afresh, the terminal page's socket goes out as the page starts loading
    // (`early-socket.js`, from what the last visit of this page wrote), before the app is in
    // and before the terminal is fitted: with the size the last terminal page had (at the
    // larger window), corrected to the fitted one once connected; the app adopts it.
    let remembered = client
        .execute("return localStorage.getItem('opsdeck.termSize')", vec![])
        .await?;
    client.goto("about:blank").await?;
    client.goto(&format!("{}/#/ssh/box", stack.base())).await?;
    wait_for_state(&client, "connected").await?;
    let fitted = wait_for_js(
        &client,
        "the fitted terminal",
        "(() => { const t = document.querySelector('.terminal-host')?.__opsdeckTerminal; \
         return t ? `${t.rows},${t.cols}` : null; })()",
    )
    .await?;
    let early = client
        .execute(
            "return document.querySelector('.terminal-host').__opsdeckEarlySocket ?? null",
            vec![],
        )
        .await?;
    assert_eq!(
        early, "page",
        "the app did not adopt the socket the page opened as it started loading"
    );
    assert_ne!(
        remembered, fitted,
        "the early socket should open with the size remembered from the larger window"
    );
    let size = stty_size(&client, "size-c").await?;
    assert_eq!(
        Some(format!("{},{}", size.0, size.1).as_str()),
        fitted.as_str(),
        "the shell's size is not the fitted terminal's"
    );
    // The adopted socket is flow-controlled like any other: past a window of output only
    // the page's acks keep it coming.
    type_in_terminal(
        &client,
        &format!("head -c 3000000 /dev/zero | base64 -w 200; echo adopted-$((6*7)){ENTER}"),
    )
    .await?;
    wait_for_terminal_text(&client, "adopted-42").await?;
    // That output was received off the page's main thread: the socket is an `OpsdeckSocket`
    // (its WebSocket in `socket-worker.js`), and the only one running.
    let worker_sockets = client
        .execute("return window.OpsdeckSocket?.live ?? null", vec![])
        .await?;
    assert_eq!(
        worker_sockets, 1,
        "the terminal's socket should be the one OpsdeckSocket, receiving in a worker"
    );
    client.close().await?;
    Ok(())
}

/// Asks `stty size` until the terminal reports a size other than `before` (the app fits
/// and sends a debounced resize after the window changes).
async fn wait_for_size_change(client: &Client, before: (u16, u16)) -> anyhow::Result<(u16, u16)> {
    for attempt in 0..20 {
        let size = stty_size(client, &format!("size-b{attempt}")).await?;
        if size != before {
            return Ok(size);
        }
    }
    anyhow::bail!("the terminal stayed {before:?} after the window was resized")
}

#[tokio::test]
async fn two_browsers_chat_with_each_other() -> anyhow::Result<()> {
    let config = format!(
        "static_dir = \"{}\"\n{}\n[[grants]]\nusers = [\"alice\", \"bob\"]\nchat = [\"ops\"]\n[[chat_rooms]]\nid = \"ops\"\nlabel = \"Operations\"\n",
        built_app()?.display(),
        users_toml(),
    );
    let relay = TestRelay::start(&config).await?;
    let base = format!("http://{}", relay.addr);
    let mut driver = Chromedriver::start().await?;
    let alice = driver.browser(1000, 700).await?;
    let bob = driver.browser(1000, 700).await?;
    for (client, user) in [(&alice, "alice"), (&bob, "bob")] {
        log_in(client, &base, user, PASSWORD).await?;
        client
            .wait()
            .at_most(PAGE_TIMEOUT)
            .for_element(Locator::Css(".target[data-id='ops']"))
            .await?
            .click()
            .await?;
        wait_for_state(client, "connected").await?;
    }
    let say = |client: &Client, text: &'static str| {
        let client = client.clone();
        async move {
            let input = client.find(Locator::Css("#chat-input")).await?;
            input.send_keys(&format!("{text}{ENTER}")).await?;
            anyhow::Ok(())
        }
    };
    // Text composed through an input method lands in the message box once committed (the
    // pinyin being composed does not stay there), and is sent by Enter like typed text.
    let input = alice.find(Locator::Css("#chat-input")).await?;
    input.click().await?;
    type_with_ime(&alice, &["z", "zai", "zaima"], "在吗").await?;
    input.send_keys(&format!(" ok{ENTER}")).await?;
    say(&alice, "hello bob, 你好").await?;
    let seen = "[...document.querySelectorAll('#chat-messages .chat-message')].map(m => m.innerText).join('\\n')";
    wait_for_js(
        &bob,
        "alice's message at bob",
        &format!("{seen}.includes('hello bob, 你好')"),
    )
    .await?;
    say(&bob, "hi alice").await?;
    wait_for_js(
        &alice,
        "bob's message at alice",
        &format!("{seen}.includes('hi alice')"),
    )
    .await?;
    // Each message as "<sender>: <text>", the sender read from its own element, so the
    // names typed into the messages cannot stand in for it.
    let messages = "[...document.querySelectorAll('#chat-messages .chat-message:not(.chat-pending)')]\
        .map(m => (m.querySelector('.chat-user')||{innerText:'?'}).innerText + ': ' \
        + (m.querySelector('.chat-text')||{innerText:''}).innerText)";
    let at_alice = wait_for_js(&alice, "alice's view", &format!("{messages}.join('\\n')")).await?;
    let lines: Vec<&str> = at_alice.as_str().unwrap_or_default().lines().collect();
    for expected in ["alice: 在吗 ok", "alice: hello bob, 你好", "bob: hi alice"] {
        assert_eq!(
            lines.iter().filter(|l| **l == expected).count(),
            1,
            "{expected:?} in {lines:?}"
        );
    }
    screenshot(&alice, "chat").await?;
    alice.close().await?;
    bob.close().await?;
    Ok(())
}

// Issue 15: a local shell is picked like any other target and opens a working terminal,
// with no sshd anywhere; a refusal that a retry cannot fix (nothing listens on the SSH
// host's port) stops with the reason and a Retry button instead of a reconnect loop.
#[tokio::test]
async fn a_local_shell_opens_from_the_picker_and_a_refused_host_offers_a_retry()
-> anyhow::Result<()> {
    // A port bound but not listening: connecting is refused, and while the socket is held
    // no other service can take the port.
    let closed = tokio::net::TcpSocket::new_v4()?;
    closed.bind(([127, 0, 0, 1], 0).into())?;
    let closed_port = closed.local_addr()?.port();
    let config = format!(
        r#"static_dir = "{}"
{}
[[grants]]
groups = ["ops"]
local = ["*"]
ssh = ["*"]

[[local_shells]]
id = "sh"
label = "Test shell"
command = "/bin/bash"
args = ["--norc", "--noprofile"]

[[ssh_hosts]]
id = "down"
address = "127.0.0.1"
port = {closed_port}
username = "nobody"
password_env = "OPSDECK_UNSET_FOR_TESTS"
"#,
        built_app()?.display(),
        users_toml(),
    );
    let relay = TestRelay::start(&config).await?;
    let base = format!("http://{}", relay.addr);
    let mut driver = Chromedriver::start().await?;
    let client = driver.browser(1200, 800).await?;
    log_in(&client, &base, "alice", PASSWORD).await?;
    client
        .wait()
        .at_most(PAGE_TIMEOUT)
        .for_element(Locator::Css(".target-local[data-id='sh']"))
        .await?
        .click()
        .await?;
    wait_for_state(&client, "connected").await?;
    type_in_terminal(&client, &format!("echo local-$((6*7)){ENTER}")).await?;
    wait_for_terminal_text(&client, "local-42").await?;
    screenshot(&client, "local-shell").await?;

    client.goto(&format!("{base}/#/ssh/down")).await?;
    wait_for_state(&client, "closed").await?;
    let code = wait_for_js(
        &client,
        "the close code",
        "document.querySelector('#conn-state').dataset.code",
    )
    .await?;
    assert_eq!(code.as_str(), Some("4503"), "{code}");
    let retry = client.find(Locator::Css("#conn-retry")).await?;
    assert_eq!(retry.text().await?, "Retry");
    let state = client
        .find(Locator::Css("#conn-state"))
        .await?
        .text()
        .await?;
    assert!(state.contains("Connection refused"), "{state}");
    // However long the reason, the button is on screen, not pushed out of the window.
    let in_view = client
        .execute(
            "const r = document.querySelector('#conn-retry').getBoundingClientRect(); \
             return r.width > 0 && r.left >= 0 && r.right <= window.innerWidth;",
            vec![],
        )
        .await?;
    assert_eq!(
        in_view,
        serde_json::Value::Bool(true),
        "Retry is out of view"
    );
    screenshot(&client, "refused-host-retry").await?;
    client.close().await?;
    Ok(())
}

// Issue 15, item 6: the app's strings come from one catalogue; the tests read the same table.
#[allow(dead_code)]
#[path = "../frontend/src/i18n.rs"]
mod i18n;

/// Every text a user can see or hear on the page: visible text nodes, the options of
/// selects, and the placeholders, labels (`aria-label`) and tooltips of visible elements.
/// Left out: what users and the configuration wrote (target labels and ids, user names,
/// chat messages, log lines) and the terminal's own rows.
const SHOWN_TEXTS: &str = r#"
const skip = '.xterm, .target-label, .target-id, #user-name, #user-groups, .chat-text, .chat-user, .chat-presence-user, .chat-time, .log-line, .container-name, .pod-name, #set-language option';
const out = [];
const shown = el => el.checkVisibility ? el.checkVisibility() : el.getClientRects().length > 0;
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    const text = node.textContent.trim();
    if (!text || !el || el.closest(skip) || el.closest('script, style')) continue;
    if (el.tagName === 'OPTION' ? shown(el.closest('select')) : shown(el)) out.push(text);
}
for (const el of document.querySelectorAll('[placeholder], [aria-label], [title]')) {
    if (el.closest(skip) || !shown(el)) continue;
    for (const name of ['placeholder', 'aria-label', 'title']) {
        const value = el.getAttribute(name);
        if (value) out.push(value);
    }
}
return out;
"#;

async fn shown_texts(client: &Client) -> anyhow::Result<Vec<String>> {
    let value = client.execute(SHOWN_TEXTS, vec![]).await?;
    Ok(serde_json::from_value(value)?)
}

/// Fails if the page shows English from the catalogue while in Chinese, or Chinese while in
/// English; `page` names the page in the failure.
async fn assert_speaks(client: &Client, lang: i18n::Lang, page: &str) -> anyhow::Result<()> {
    let texts = shown_texts(client).await?;
    anyhow::ensure!(!texts.is_empty(), "{page}: nothing shown");
    let cjk = |s: &str| s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
    match lang {
        i18n::Lang::En => {
            let chinese: Vec<&String> = texts.iter().filter(|t| cjk(t)).collect();
            anyhow::ensure!(chinese.is_empty(), "{page} in English shows {chinese:?}");
        }
        i18n::Lang::Zh => {
            // Fixed English strings, and the fixed parts of the strings with values.
            let english = i18n::Text::ALL
                .iter()
                .filter(|key| key.get(i18n::Lang::En) != key.get(i18n::Lang::Zh))
                .map(|key| key.get(i18n::Lang::En))
                .chain([
                    "lines received",
                    "Here now",
                    "reconnecting in",
                    "Closed:",
                    "Pods in",
                ]);
            for entry in english {
                let found: Vec<&String> = texts.iter().filter(|t| t.contains(entry)).collect();
                anyhow::ensure!(
                    found.is_empty(),
                    "{page} in Chinese shows the English {entry:?} in {found:?}"
                );
            }
            anyhow::ensure!(
                texts.iter().any(|t| cjk(t)),
                "{page} in Chinese shows no Chinese: {texts:?}"
            );
        }
    }
    Ok(())
}

/// Chooses a language in the settings dialog (opened and closed by keyboard-reachable
/// buttons).
async fn choose_language(client: &Client, tag: &str) -> anyhow::Result<()> {
    open_settings(client).await?;
    client
        .find(Locator::Css("#set-language"))
        .await?
        .select_by_value(tag)
        .await?;
    wait_for_js(
        client,
        "the page's language",
        &format!("document.documentElement.lang === {tag:?}"),
    )
    .await?;
    client
        .find(Locator::Css("#settings-close"))
        .await?
        .click()
        .await?;
    Ok(())
}

async fn open_settings(client: &Client) -> anyhow::Result<()> {
    client
        .wait()
        .at_most(PAGE_TIMEOUT)
        .for_element(Locator::Css("#open-settings"))
        .await?
        .click()
        .await?;
    wait_for_js(
        client,
        "the settings dialog",
        "document.querySelector('#settings').open",
    )
    .await?;
    Ok(())
}

/// A relay with one of each kind of page: a local shell, a file tail and a chat room.
async fn relay_with_every_page(dir: &std::path::Path) -> anyhow::Result<TestRelay> {
    let log = dir.join("app.log");
    std::fs::write(&log, "first line\nsecond line\n")?;
    let config = format!(
        r#"static_dir = "{}"
{}
[[grants]]
groups = ["ops"]
local = ["*"]
files = ["*"]
chat = ["ops"]

[[local_shells]]
id = "sh"
label = "Test shell"
command = "/bin/bash"
args = ["--norc", "--noprofile"]

[[local_shells]]
id = "toolbox"
label = "Toolbox"
command = "/bin/bash"
args = ["--norc", "--noprofile"]

[[files]]
id = "app"
label = "App log"
path = "{}"

[[chat_rooms]]
id = "ops"
label = "Operations"
"#,
        built_app()?.display(),
        users_toml(),
        log.display(),
    );
    TestRelay::start(&config).await
}

// Issue 15: every page in English, then the same pages in Chinese (chosen in the settings)
// with no English string of the catalogue left on any of them; the picker's search filters
// the targets.
#[tokio::test]
async fn every_page_speaks_the_chosen_language_and_the_picker_searches() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let relay = relay_with_every_page(dir.path()).await?;
    let base = format!("http://{}", relay.addr);
    let mut driver = Chromedriver::start().await?;
    let client = driver.browser(1200, 800).await?;

    for (lang, tag) in [(i18n::Lang::En, "en"), (i18n::Lang::Zh, "zh-CN")] {
        client.goto(&format!("{base}/#/login")).await?;
        choose_language(&client, tag).await?;
        client
            .wait()
            .at_most(PAGE_TIMEOUT)
            .for_element(Locator::Css("#login-username"))
            .await?;
        assert_speaks(&client, lang, "the login page").await?;
        log_in(&client, &base, "alice", PASSWORD).await?;

        client
            .wait()
            .at_most(PAGE_TIMEOUT)
            .for_element(Locator::Css(".target-local[data-id='sh']"))
            .await?;
        // No cluster and no job output here: the picker says so instead of hiding it.
        wait_for_js(
            &client,
            "the notes on what is not offered",
            "document.querySelector('#targets-no-k8s') && document.querySelector('#targets-no-jobs')",
        )
        .await?;
        assert_speaks(&client, lang, "the picker").await?;
        screenshot(&client, &format!("picker-{tag}")).await?;

        open_settings(&client).await?;
        assert_speaks(&client, lang, "the settings").await?;
        screenshot(&client, &format!("settings-{tag}")).await?;
        client
            .find(Locator::Css("#settings-close"))
            .await?
            .click()
            .await?;

        client
            .find(Locator::Css(".target-local[data-id='sh']"))
            .await?
            .click()
            .await?;
        wait_for_state(&client, "connected").await?;
        assert_speaks(&client, lang, "a terminal").await?;
        screenshot(&client, &format!("terminal-{tag}")).await?;

        client.goto(&format!("{base}/#/tail/app")).await?;
        wait_for_state(&client, "connected").await?;
        wait_for_js(
            &client,
            "the log lines",
            "document.querySelectorAll('.log-line').length >= 2",
        )
        .await?;
        assert_speaks(&client, lang, "a log").await?;

        client.goto(&format!("{base}/#/chat/ops")).await?;
        wait_for_state(&client, "connected").await?;
        wait_for_js(
            &client,
            "the presence list",
            "document.querySelectorAll('.chat-presence-user').length >= 1",
        )
        .await?;
        assert_speaks(&client, lang, "a chat room").await?;
        screenshot(&client, &format!("chat-{tag}")).await?;

        // A refusal: the close code's meaning in the language, the relay's reason as sent.
        client.goto(&format!("{base}/#/local/nope")).await?;
        wait_for_state(&client, "closed").await?;
        assert_speaks(&client, lang, "a refused target").await?;

        client.find(Locator::Css("#logout")).await?.click().await?;
        client
            .wait()
            .at_most(PAGE_TIMEOUT)
            .for_element(Locator::Css("#login-username"))
            .await?;
    }

    // The picker's search, still in Chinese.
    log_in(&client, &base, "alice", PASSWORD).await?;
    let search = client
        .wait()
        .at_most(PAGE_TIMEOUT)
        .for_element(Locator::Css("#target-search"))
        .await?;
    let visible_ids = "[...document.querySelectorAll('.target')].filter(a => a.checkVisibility()).map(a => a.dataset.id).sort().join(',')";
    assert_eq!(
        wait_for_js(&client, "every target", visible_ids).await?,
        "app,ops,sh,toolbox"
    );
    search.send_keys("TOOL").await?;
    wait_for_js(
        &client,
        "the search to filter",
        &format!("{visible_ids} === 'toolbox'"),
    )
    .await?;
    search.send_keys("zzz").await?;
    wait_for_js(
        &client,
        "no target left",
        &format!(
            "{visible_ids} === '' && document.querySelector('#targets-no-match').innerText === {:?}",
            i18n::Text::NoTargetMatches.get(i18n::Lang::Zh)
        ),
    )
    .await?;
    // Backspace over "TOOLzzz" (WebDriver's clear() fires no input event).
    search.send_keys(&"\u{E003}".repeat(7)).await?;
    wait_for_js(
        &client,
        "every target again",
        &format!("{visible_ids} === 'app,ops,sh,toolbox'"),
    )
    .await?;
    client.close().await?;
    Ok(())
}

const TERMINAL_OPTIONS: &str = "(() => { const t = document.querySelector('#terminal').__opsdeckTerminal; \
     return t ? [t.options.fontSize, t.options.theme.background, document.documentElement.dataset.theme].join(' ') : ''; })()";

// Issue 15, item 3: the settings change the open terminal at once, persist across a
// reload, and saved settings that cannot be read give the defaults with a notice.
#[tokio::test]
async fn settings_change_the_terminal_and_persist_across_a_reload() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let relay = relay_with_every_page(dir.path()).await?;
    let base = format!("http://{}", relay.addr);
    let mut driver = Chromedriver::start().await?;
    let client = driver.browser(1200, 800).await?;
    log_in(&client, &base, "alice", PASSWORD).await?;
    client
        .wait()
        .at_most(PAGE_TIMEOUT)
        .for_element(Locator::Css(".target-local[data-id='sh']"))
        .await?
        .click()
        .await?;
    wait_for_state(&client, "connected").await?;
    assert_eq!(
        wait_for_js(&client, "the terminal's options", TERMINAL_OPTIONS).await?,
        "14 #0f1419 dark"
    );

    open_settings(&client).await?;
    let size = client.find(Locator::Css("#set-font-size")).await?;
    size.clear().await?;
    // Tab moves on, which commits the number (keyboard only).
    size.send_keys("20\u{E004}").await?;
    client
        .find(Locator::Css("#set-theme"))
        .await?
        .select_by_value("light")
        .await?;
    wait_for_js(
        &client,
        "the new font and theme in the terminal",
        &format!("{TERMINAL_OPTIONS} === '20 #fbfbf8 light'"),
    )
    .await?;
    client
        .find(Locator::Css("#settings-close"))
        .await?
        .click()
        .await?;
    screenshot(&client, "terminal-light-20px").await?;

    client.refresh().await?;
    wait_for_state(&client, "connected").await?;
    assert_eq!(
        wait_for_js(&client, "the terminal's options", TERMINAL_OPTIONS).await?,
        "20 #fbfbf8 light"
    );
    let stored = client
        .execute("return localStorage.getItem('opsdeck.settings');", vec![])
        .await?;
    let stored: serde_json::Value = serde_json::from_str(stored.as_str().unwrap_or_default())?;
    assert_eq!(stored["version"], 1, "{stored}");
    assert_eq!(stored["settings"]["font_size"], 20, "{stored}");

    // Bad input: what cannot be read is replaced by the defaults, and the page says so.
    client
        .execute(
            "localStorage.setItem('opsdeck.settings', '{\"version\":1,\"settings\":[');",
            vec![],
        )
        .await?;
    client.refresh().await?;
    wait_for_state(&client, "connected").await?;
    assert_eq!(
        wait_for_js(&client, "the terminal's options", TERMINAL_OPTIONS).await?,
        "14 #0f1419 dark"
    );
    let notice = wait_for_js(
        &client,
        "the settings notice",
        "(document.querySelector('#settings-notice')||{innerText:''}).innerText",
    )
    .await?;
    assert!(
        notice
            .as_str()
            .unwrap_or_default()
            .contains(i18n::Text::SettingsCorrupt.get(i18n::Lang::En)),
        "{notice}"
    );
    client.close().await?;
    Ok(())
}

/// The time of the first output event by which the output so far holds `needle`.
fn time_of_output(cast: &str, needle: &str) -> anyhow::Result<f64> {
    let mut output = String::new();
    for line in cast.lines().skip(1) {
        let (time, code, data): (f64, String, String) = serde_json::from_str(line)?;
        if code == "o" {
            output.push_str(&data);
            if output.contains(needle) {
                return Ok(time);
            }
        }
    }
    anyhow::bail!("the recording never shows {needle:?}")
}

/// The player's clock (`#replay-time`'s `data-time`) once it is within 0.02 s of `time`.
async fn wait_for_clock(client: &Client, time: f64) -> anyhow::Result<f64> {
    let script = format!(
        "(() => {{ const t = parseFloat((document.querySelector('#replay-time')||{{dataset:{{}}}}).dataset.time); \
         return Math.abs(t - {time}) < 0.02 ? String(t) : ''; }})()"
    );
    let value = wait_for_js(client, &format!("the player at {time}s"), &script).await?;
    Ok(value.as_str().unwrap_or_default().parse()?)
}

// Issue 14: a recording opens from the recordings list in the player, plays to its end,
// scrubs to the middle (the screen as it was then), and a search lands on a later word.
#[tokio::test]
async fn a_recording_plays_scrubs_to_the_middle_and_a_search_lands_on_its_word()
-> anyhow::Result<()> {
    let sshd = TestSshd::start().await?;
    let recordings = tempfile::tempdir()?;
    let config = format!(
        "static_dir = \"{}\"\n[recording]\ndirectory = \"{}\"\n{}\n[[grants]]\ngroups = [\"ops\"]\nssh = [\"*\"]\n[[grants]]\nusers = [\"alice\"]\naudit = true\n{}",
        built_app()?.display(),
        recordings.path().display(),
        users_toml(),
        sshd.host_toml("box")?
    );
    let relay = TestRelay::start(&config).await?;
    // The recording: a word, an idle stretch (the shell sleeps), another word, the end.
    let mut session = relay.connect("alice", "/ws/ssh/box").await?;
    session.connected().await?;
    session.type_line("echo alpha-$((1+1))").await?;
    session.read_until("alpha-2").await?;
    session
        .type_line("sleep 2; echo omega-$((3*3)); exit")
        .await?;
    session.read_until_closed().await?;
    relay.relay().recordings_finished().await;
    let file = std::fs::read_dir(recordings.path())?
        .next()
        .context("no recording")??
        .path();
    let cast = std::fs::read_to_string(&file)?;
    let (alpha, omega) = (
        time_of_output(&cast, "alpha-2")?,
        time_of_output(&cast, "omega-9")?,
    );
    assert!(omega - alpha > 1.0, "{alpha} {omega}");

    let base = format!("http://{}", relay.addr);
    let mut driver = Chromedriver::start().await?;
    let client = driver.browser(1200, 800).await?;
    log_in(&client, &base, "alice", PASSWORD).await?;
    client
        .wait()
        .at_most(PAGE_TIMEOUT)
        .for_element(Locator::Css("#nav-recordings"))
        .await?
        .click()
        .await?;
    client
        .wait()
        .at_most(PAGE_TIMEOUT)
        .for_element(Locator::Css("tr.recording a.play"))
        .await?
        .click()
        .await?;
    let play = client
        .wait()
        .at_most(PAGE_TIMEOUT)
        .for_element(Locator::Css("#replay-play"))
        .await?;
    assert!(!terminal_text(&client).await?.contains("alpha-2"));

    // Play: at 1x with idle stretches skipped, to the end.
    play.click().await?;
    wait_for_terminal_text(&client, "omega-9").await?;
    wait_for_js(
        &client,
        "the end of the recording",
        "document.querySelector('#replay-time').dataset.playing === 'false'",
    )
    .await?;
    screenshot(&client, "replay-played").await?;

    // Scrub to the middle: the screen then has the first word and not yet the second.
    let middle = (alpha + omega) / 2.0;
    client
        .execute(
            "const el = document.querySelector('#replay-timeline'); \
             el.value = String(arguments[0]); el.dispatchEvent(new Event('change'));",
            vec![serde_json::json!(middle)],
        )
        .await?;
    wait_for_clock(&client, middle).await?;
    let text = wait_for_terminal_text(&client, "alpha-2").await?;
    assert!(!text.contains("omega-9"), "{text}");
    screenshot(&client, "replay-middle").await?;

    // Search a word: the player lands on the event that shows it.
    client
        .find(Locator::Css("#replay-search"))
        .await?
        .send_keys("OMEGA-9")
        .await?;
    client
        .find(Locator::Css("#replay-find"))
        .await?
        .click()
        .await?;
    let landed = wait_for_clock(&client, omega).await?;
    assert!(landed >= middle, "{landed}");
    let text = wait_for_terminal_text(&client, "omega-9").await?;
    assert!(text.contains("alpha-2"), "{text}");
    let status = client
        .find(Locator::Css("#replay-status"))
        .await?
        .text()
        .await?;
    assert!(status.starts_with("Found at"), "{status}");
    screenshot(&client, "replay-found").await?;
    client.close().await?;
    Ok(())
}
