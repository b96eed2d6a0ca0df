//! Opsdeck's browser app: log in, pick a target, and work in a terminal, a log view or a
//! chat room, with the connection's state always in sight.
//!
//! This file is the root and only that: it mounts the app and shows the page of
//! `location.hash` (see [`route`]); nothing imports from it. The rest:
//! - [`session`]: who is logged in (context); [`nav`]: going to a page, or to the login;
//! - [`config`]: where the relay is (`config.json`, read at start);
//! - [`api`]: the relay's HTTP API; [`ws`]: the one reconnecting WebSocket of the terminal
//!   and log views (the chat view uses `opsdeck-client`, the embeddable chat client);
//! - [`resume`], [`conn`], [`flow`], [`logbuf`]: the plain logic behind them (the backoff
//!   is `opsdeck_client::backoff`);
//! - [`term`]: xterm.js, drawn by the [`renderer`] chosen (WebGL or the DOM), fed by
//!   [`feed`] (coalesced writes); [`early`]: a terminal page's socket, opened as the app
//!   starts; [`views`]: one file per page;
//! - [`i18n`]: every string of the app in English and Chinese; [`locale`]: the language in
//!   force; [`settings`]: the user's settings, kept in this browser.

mod api;
mod config;
mod conn;
mod early;
mod feed;
mod flow;
mod folders;
mod i18n;
mod layout;
mod locale;
mod logbuf;
mod nav;
mod renderer;
mod resume;
mod route;
mod session;
mod settings;
mod term;
mod units;
mod views;
mod ws;

use common::api::Me;
use leptos::prelude::*;

use crate::locale::{Text, tr};
use crate::nav::{current_route, go_login};
use crate::route::Route;
use crate::session::Session;

fn main() {
    console_error_panic_hook::set_once();
    settings::init();
    // Leptos starts its task executor in `mount_to_body`, so this first task uses
    // wasm-bindgen's directly.
    wasm_bindgen_futures::spawn_local(async {
        let config = api::deploy_config().await;
        let origin = window().location().origin().unwrap_or_default();
        config::set(config::Endpoints::resolve(&config, &origin));
        // A terminal page's socket goes out now, beside the login check and the first
        // render (the page takes it when it mounts).
        early::open(&current_route());
        if let Some(boot) = document().get_element_by_id("boot") {
            boot.remove();
        }
        early::mark("opsdeck:mount");
        leptos::mount::mount_to_body(App);
    });
}

#[component]
fn App() -> impl IntoView {
    let route = RwSignal::new(current_route());
    let me = RwSignal::new(None::<Me>);
    let checked = RwSignal::new(false);
    let problem = RwSignal::new(None::<String>);
    provide_context(Session { me });

    let listener = window_event_listener(leptos::ev::hashchange, move |_| {
        early::discard();
        route.set(current_route());
    });
    on_cleanup(move || listener.remove());

    leptos::task::spawn_local(async move {
        match api::me().await {
            Ok(who) => me.set(Some(who)),
            Err(api::ApiFailure::Unauthorized(_)) => early::discard(),
            Err(e) => problem.set(Some(e.to_string())),
        }
        checked.set(true);
    });

    // Pages other than login need a login.
    Effect::new(move |_| {
        if checked.get()
            && me.with(Option::is_none)
            && problem.with(Option::is_none)
            && !matches!(route.get(), Route::Login { .. })
        {
            go_login();
        }
    });

    // The page is shown at once, without waiting for the login check: for a logged-in user
    // (nearly always) a terminal page then starts ~60 ms sooner on a first visit, and the
    // check's answer does not build the page again (a memo: `me` arriving changes nothing
    // here). A user who turns out to be logged out sees it give way to the login page (the
    // effect above); what the page asked of the relay meanwhile was refused. `None`: that
    // redirect is under way.
    let shown = Memo::new(move |_| {
        let route = route.get();
        let logged_out = checked.get() && me.with(Option::is_none) && problem.with(Option::is_none);
        (!logged_out || matches!(route, Route::Login { .. })).then_some(route)
    });
    let page = move || {
        let Some(route) = shown.get() else {
            return view! { <p class="loading">{tr(Text::Redirecting)}</p> }.into_any();
        };
        match route {
            Route::Login { next, sso_error } => {
                view! { <views::login::LoginPage next sso_error /> }.into_any()
            }
            Route::Picker => view! { <views::picker::PickerPage /> }.into_any(),
            r @ (Route::Ssh { .. }
            | Route::Local { .. }
            | Route::K8sExec(_)
            | Route::Job { .. }) => view! { <views::terminal::TerminalPage route=r /> }.into_any(),
            r @ (Route::Tail { .. } | Route::K8sLogs(..)) => {
                view! { <views::logs::LogsPage route=r /> }.into_any()
            }
            Route::Chat { room } => view! { <views::chat::ChatPage room /> }.into_any(),
            Route::Workspace {
                open,
                place,
                session,
            } => view! { <views::workspace::WorkspacePage open place session /> }.into_any(),
            Route::Recordings(filter) => {
                view! { <views::recordings::RecordingsPage filter /> }.into_any()
            }
            Route::Replay { id } => view! { <views::replay::ReplayPage id /> }.into_any(),
            Route::Files { place, path } => {
                view! { <views::files::FilesPage place path /> }.into_any()
            }
            Route::NotFound(_) => view! {
                <section class="page">
                    <p id="not-found">{tr(Text::NoSuchPage)} " " <a href="#/">{tr(Text::BackToTargets)}</a></p>
                </section>
            }
            .into_any(),
        }
    };

    view! {
        <header id="topbar">
            <a id="brand" href="#/">"Opsdeck"</a>
            <span id="page-title">{move || route.get().title()}</span>
            <views::UserMenu />
            <views::settings::SettingsButton />
        </header>
        <views::settings::SettingsNotice />
        {move || problem.get().map(|p| view! { <p id="app-error" class="error">{p}</p> })}
        <main id="page">{page}</main>
    }
}

#[cfg(test)]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// Checks on the sources: this root is imported by nothing.
#[cfg(test)]
mod layering;
