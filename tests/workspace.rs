//! The workspace (tabs and split panes) in real headless Chromium, against a real relay
//! whose terminals are local shells (no sshd needed). One browser, one relay, one walk
//! through what the issue asks: two terminals side by side, each with its own input and
//! size; a reload that brings back the layout and both sessions with their scrollback; a
//! session taken over from a second window ("My sessions") and taken back. Ending a
//! session through the API is tested in `local.rs`; refusing a corrupt or older stored
//! layout in `frontend/src/layout.rs`. Screenshots go to `tests/artifacts/`.

use anyhow::Context;
use fantoccini::{Client, Locator};
use opsdeck_tests::browser::{
    Chromedriver, PAGE_TIMEOUT, built_app, log_in, screenshot, wait_for_js,
};
use opsdeck_tests::relay::{PASSWORD, TestRelay, users_toml};

/// Enter, as a terminal receives it.
const ENTER: &str = "\r";
// WebDriver's key codes, for real keystrokes (`send_keys`): modifiers stay down until
// RELEASE.
const ALT: &str = "\u{E00A}";
const SHIFT: &str = "\u{E008}";
const RIGHT: &str = "\u{E014}";
const RELEASE: &str = "\u{E000}";
const KEY_ENTER: &str = "\u{E007}";

/// A JavaScript expression: the whole buffer of the terminal in pane `pane`.
fn pane_text_js(pane: u64) -> String {
    format!(
        "(() => {{
    const host = document.querySelector('[data-pane=\"{pane}\"] .terminal-host');
    const terminal = host && host.__opsdeckTerminal;
    if (!terminal) return '';
    const buffer = terminal.buffer.active;
    let text = '';
    for (let i = 0; i < buffer.length; i++) {{
        const line = buffer.getLine(i);
        if (!line) continue;
        text += (i > 0 && !line.isWrapped ? '\\n' : '') + line.translateToString(true);
    }}
    return text;
}})()"
    )
}

async fn pane_text(client: &Client, pane: u64) -> anyhow::Result<String> {
    let text = client
        .execute(&format!("return {};", pane_text_js(pane)), vec![])
        .await?;
    Ok(text.as_str().unwrap_or_default().to_owned())
}

async fn wait_for_pane_text(client: &Client, pane: u64, needle: &str) -> anyhow::Result<String> {
    let script = format!(
        "{}.includes({})",
        pane_text_js(pane),
        serde_json::to_string(needle)?
    );
    wait_for_js(client, &format!("pane {pane} text {needle:?}"), &script).await?;
    pane_text(client, pane).await
}

/// Types into a pane's terminal: xterm.js `input` (what a keystroke in that terminal
/// produces: its `onData`, hence its own socket), so keyboard focus, which the browser
/// gives one pane at a time, does not decide where the text goes.
async fn type_in_pane(client: &Client, pane: u64, text: &str) -> anyhow::Result<()> {
    client
        .execute(
            &format!(
                "document.querySelector('[data-pane=\"{pane}\"] .terminal-host').__opsdeckTerminal.input(arguments[0], true);"
            ),
            vec![serde_json::Value::String(text.to_owned())],
        )
        .await?;
    Ok(())
}

/// Waits until the keyboard focus is in pane `pane`.
async fn wait_for_focus_in(client: &Client, pane: u64) -> anyhow::Result<()> {
    wait_for_js(
        client,
        &format!("the keyboard focus in pane {pane}"),
        &format!(
            "((document.activeElement && document.activeElement.closest('[data-pane]'))||{{dataset:{{}}}}).dataset.pane === '{pane}'"
        ),
    )
    .await?;
    Ok(())
}

/// A JavaScript expression: pane `pane`'s `#conn-state` element.
fn state_js(pane: u64) -> String {
    format!("(document.querySelector('[data-pane=\"{pane}\"] #conn-state')||{{dataset:{{}}}})")
}

async fn wait_for_pane_state(client: &Client, pane: u64, state: &str) -> anyhow::Result<()> {
    let script = format!(
        "{}.dataset.state === {}",
        state_js(pane),
        serde_json::to_string(state)?
    );
    wait_for_js(client, &format!("pane {pane} {state}"), &script).await?;
    Ok(())
}

async fn wait_for_pane_code(client: &Client, pane: u64, code: u16) -> anyhow::Result<()> {
    let script = format!("{}.dataset.code === '{code}'", state_js(pane));
    wait_for_js(client, &format!("pane {pane} closed with {code}"), &script).await?;
    Ok(())
}

/// The ids of the panes on the page, in document order.
async fn pane_ids(client: &Client) -> anyhow::Result<Vec<u64>> {
    let ids = client
        .execute(
            "return Array.from(document.querySelectorAll('[data-pane]')).map(e => +e.dataset.pane);",
            vec![],
        )
        .await?;
    Ok(serde_json::from_value(ids)?)
}

/// Waits until the page has `n` panes; returns their ids.
async fn wait_for_panes(client: &Client, n: usize) -> anyhow::Result<Vec<u64>> {
    wait_for_js(
        client,
        &format!("{n} panes"),
        &format!("document.querySelectorAll('[data-pane]').length === {n}"),
    )
    .await?;
    pane_ids(client).await
}

async fn click(client: &Client, css: &str) -> anyhow::Result<()> {
    client
        .wait()
        .at_most(PAGE_TIMEOUT)
        .for_element(Locator::Css(css))
        .await?
        .click()
        .await
        .with_context(|| format!("clicking {css}"))?;
    Ok(())
}

/// The last `rows cols` line `stty size` printed in a pane before `marker`.
async fn stty_size(client: &Client, pane: u64, marker: &str) -> anyhow::Result<(u16, u16)> {
    type_in_pane(
        client,
        pane,
        &format!("stty size; echo {marker}-$((1+1)){ENTER}"),
    )
    .await?;
    let text = wait_for_pane_text(client, pane, &format!("{marker}-2")).await?;
    let head = text
        .rsplit_once(&format!("{marker}-2"))
        .map(|(head, _)| head)
        .unwrap_or_default();
    head.lines()
        .rev()
        .find_map(|line| {
            let mut parts = line.split_whitespace();
            let rows = parts.next()?.parse().ok()?;
            let cols = parts.next()?.parse().ok()?;
            parts.next().is_none().then_some((rows, cols))
        })
        .ok_or_else(|| anyhow::anyhow!("no stty size in {text:?}"))
}

/// The xterm.js size of a pane's terminal, (rows, cols).
async fn xterm_size(client: &Client, pane: u64) -> anyhow::Result<(u16, u16)> {
    let size = client
        .execute(
            &format!(
                "const t = document.querySelector('[data-pane=\"{pane}\"] .terminal-host').__opsdeckTerminal; return [t.rows, t.cols];"
            ),
            vec![],
        )
        .await?;
    let [rows, cols]: [u16; 2] = serde_json::from_value(size)?;
    Ok((rows, cols))
}

async fn session_of(client: &Client, pane: u64) -> anyhow::Result<String> {
    let session = wait_for_js(
        client,
        &format!("pane {pane}'s session"),
        &format!("document.querySelector('[data-pane=\"{pane}\"]').dataset.session"),
    )
    .await?;
    Ok(session.as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn panes_side_by_side_survive_a_reload_and_a_session_is_taken_over_and_ended()
-> anyhow::Result<()> {
    let config = format!(
        r#"static_dir = "{}"
{}
[[grants]]
groups = ["ops"]
local = ["*"]

[[local_shells]]
id = "sh"
label = "Test shell"
command = "/bin/bash"
args = ["--norc", "--noprofile"]
"#,
        built_app()?.display(),
        users_toml(),
    );
    let relay = TestRelay::start(&config).await?;
    let base = format!("http://{}", relay.addr);
    let mut driver = Chromedriver::start().await?;
    let client = driver.browser(1400, 900).await?;
    log_in(&client, &base, "alice", PASSWORD).await?;

    // From the list of targets: "New tab" opens the shell in the workspace.
    click(
        &client,
        ".target-local[data-id='sh'] + .open-in-workspace .open-tab",
    )
    .await?;
    let first = wait_for_panes(&client, 1).await?[0];
    wait_for_pane_state(&client, first, "connected").await?;
    // Beside it, a second shell.
    click(
        &client,
        &format!("[data-pane=\"{first}\"] .pane-split-right"),
    )
    .await?;
    let panes = wait_for_panes(&client, 2).await?;
    let (left, right) = (panes[0], panes[1]);
    assert_eq!(left, first);
    wait_for_pane_state(&client, right, "connected").await?;

    // Each echoes its own input, and only its own.
    type_in_pane(&client, left, &format!("echo left-$((6*7)){ENTER}")).await?;
    type_in_pane(&client, right, &format!("echo right-$((6*7)){ENTER}")).await?;
    wait_for_pane_text(&client, left, "left-42").await?;
    wait_for_pane_text(&client, right, "right-42").await?;
    assert!(!pane_text(&client, left).await?.contains("right-42"));
    assert!(!pane_text(&client, right).await?.contains("left-42"));

    // Keyboard only, with real keystrokes: Alt+Shift+→ moves the keyboard focus from the
    // left pane to the right one (the shell never sees the keys), and typing goes there.
    click(&client, &format!("[data-pane=\"{left}\"] .terminal-host")).await?;
    wait_for_focus_in(&client, left).await?;
    client
        .active_element()
        .await?
        .send_keys(&format!("{ALT}{SHIFT}{RIGHT}{RELEASE}"))
        .await?;
    wait_for_focus_in(&client, right).await?;
    client
        .active_element()
        .await?
        .send_keys(&format!("echo keys-$((3*3)){KEY_ENTER}"))
        .await?;
    wait_for_pane_text(&client, right, "keys-9").await?;
    assert!(!pane_text(&client, left).await?.contains("keys-9"));

    // Sizes are each pane's own: split the right pane below, and it has fewer rows than
    // the left one; close the new pane, and it grows back while the left one stays.
    let left_size = stty_size(&client, left, "size-a").await?;
    click(
        &client,
        &format!("[data-pane=\"{right}\"] .pane-split-below"),
    )
    .await?;
    let below = *wait_for_panes(&client, 3)
        .await?
        .iter()
        .find(|id| ![left, right].contains(id))
        .context("the new pane")?;
    wait_for_pane_state(&client, below, "connected").await?;
    wait_for_js(
        &client,
        "the right pane refitted to half height",
        &format!(
            "document.querySelector('[data-pane=\"{right}\"] .terminal-host').__opsdeckTerminal.rows < {}",
            left_size.0 * 2 / 3
        ),
    )
    .await?;
    let half = stty_size(&client, right, "size-b").await?;
    assert!(half.0 < left_size.0, "{half:?} vs {left_size:?}");
    screenshot(&client, "workspace-three-panes").await?;
    click(&client, &format!("[data-pane=\"{below}\"] .pane-close")).await?;
    wait_for_panes(&client, 2).await?;
    wait_for_js(
        &client,
        "the right pane refitted to full height",
        &format!(
            "document.querySelector('[data-pane=\"{right}\"] .terminal-host').__opsdeckTerminal.rows === {}",
            xterm_size(&client, left).await?.0
        ),
    )
    .await?;
    let full = stty_size(&client, right, "size-c").await?;
    assert!(full.0 > half.0, "{full:?} vs {half:?}");
    assert_eq!(stty_size(&client, left, "size-d").await?, left_size);
    screenshot(&client, "workspace-two-panes").await?;

    // A reload brings back both panes, resumed, with their scrollback.
    let left_session = session_of(&client, left).await?;
    let right_session = session_of(&client, right).await?;
    assert_ne!(left_session, right_session);
    client.refresh().await?;
    assert_eq!(wait_for_panes(&client, 2).await?, vec![left, right]);
    for pane in [left, right] {
        wait_for_pane_state(&client, pane, "connected").await?;
    }
    wait_for_pane_text(&client, left, "left-42").await?;
    wait_for_pane_text(&client, right, "right-42").await?;
    assert_eq!(session_of(&client, left).await?, left_session);
    assert_eq!(session_of(&client, right).await?, right_session);
    let resumed = client
        .find(Locator::Css(&format!("[data-pane=\"{left}\"] #conn-state")))
        .await?
        .text()
        .await?;
    assert!(resumed.contains("resumed"), "{resumed}");
    type_in_pane(&client, left, &format!("echo again-$((2*3)){ENTER}")).await?;
    wait_for_pane_text(&client, left, "again-6").await?;
    screenshot(&client, "workspace-after-reload").await?;

    // A second window opens the left session from "My sessions": it takes it over, and
    // the first window's pane says so and offers to take it back.
    let first_window = client.window().await?;
    let second_window = client.new_window(false).await?.handle;
    client.switch_to_window(second_window.clone()).await?;
    client.goto(&format!("{base}/#/workspace")).await?;
    click(&client, "#sessions-toggle").await?;
    click(
        &client,
        &format!(".session[data-session=\"{left_session}\"] .session-open"),
    )
    .await?;
    let taken = wait_for_js(
        &client,
        "the pane of the taken session",
        &format!("(document.querySelector('[data-session=\"{left_session}\"][data-pane]')||{{dataset:{{}}}}).dataset.pane"),
    )
    .await?;
    let taken: u64 = taken.as_str().context("pane id")?.parse()?;
    wait_for_pane_state(&client, taken, "connected").await?;
    wait_for_pane_text(&client, taken, "again-6").await?;
    screenshot(&client, "workspace-second-window").await?;

    client.switch_to_window(first_window.clone()).await?;
    wait_for_pane_code(&client, left, 4409).await?;
    let state = client
        .find(Locator::Css(&format!("[data-pane=\"{left}\"] #conn-state")))
        .await?
        .text()
        .await?;
    assert!(state.contains("opened elsewhere"), "{state}");
    let take_back = client
        .find(Locator::Css(&format!("[data-pane=\"{left}\"] #conn-retry")))
        .await?;
    assert_eq!(take_back.text().await?, "Take it back");
    screenshot(&client, "workspace-taken-over").await?;
    take_back.click().await?;
    wait_for_pane_state(&client, left, "connected").await?;
    client.switch_to_window(second_window).await?;
    wait_for_pane_code(&client, taken, 4409).await?;
    client.close_window().await?;
    client.switch_to_window(first_window).await?;

    // A stored layout that is corrupt or from another version is ignored with a notice
    // saying so, and the workspace still works: never a blank page. The layout is written
    // while another page is shown (an open workspace saves its own on every change).
    for (stored, says) in [
        (r#"{"version":1,"tabs":[{"#, "could not be read"),
        (r#"{"version":999,"tabs":[]}"#, "another version"),
    ] {
        client.goto(&format!("{base}/#/")).await?;
        wait_for_js(
            &client,
            "the workspace closed",
            "!document.querySelector('#workspace')",
        )
        .await?;
        client
            .execute(
                "sessionStorage.setItem('opsdeck.workspace', arguments[0]);                 localStorage.setItem('opsdeck.workspace', arguments[0]);",
                vec![serde_json::json!(stored)],
            )
            .await?;
        client.goto(&format!("{base}/#/workspace")).await?;
        let notice = wait_for_js(
            &client,
            "the notice about the ignored layout",
            "(document.querySelector('#workspace-notice')||{}).innerText",
        )
        .await?;
        let notice = notice.as_str().unwrap_or_default();
        assert!(notice.contains(says), "{notice}");
        assert!(notice.contains("a new workspace was started"), "{notice}");
        assert!(pane_ids(&client).await?.is_empty());
        client.find(Locator::Css("#workspace-open")).await?;
    }
    screenshot(&client, "workspace-corrupt-layout").await?;

    client.close().await?;
    Ok(())
}
