//! One file per page, plus the two pieces every page shares: the user menu and the
//! connection status bar.

pub mod chat;
pub mod files;
pub mod login;
pub mod logs;
pub mod picker;
pub mod recordings;
pub mod replay;
pub mod sessions;
pub mod settings;
pub mod terminal;
pub mod workspace;

use leptos::prelude::*;
use web_sys::Element;

use crate::api;
use crate::conn::ConnState;
use crate::locale::{Text, tr};
use crate::nav::navigate;
use crate::route::Route;
use crate::session::Session;
use crate::ws::{Notice, Stream};

/// The logged-in user and the logout button (top right).
#[component]
pub fn UserMenu() -> impl IntoView {
    let Some(session) = use_context::<Session>() else {
        return ().into_any();
    };
    let me = session.me;
    let logout = move |_| {
        leptos::task::spawn_local(async move {
            // Even if the relay cannot be told, forget the user here.
            let end_session = api::logout().await.ok().flatten();
            me.set(None);
            match end_session {
                // A provider login: log out of the provider too.
                Some(url) => {
                    let _ = window().location().set_href(&url);
                }
                None => navigate(&Route::Login {
                    next: None,
                    sso_error: None,
                }),
            }
        });
    };
    view! {
        <Show when=move || me.with(Option::is_some)>
            <nav id="user-menu" aria-label=tr(Text::UserMenu)>
                <a id="nav-targets" href="#/">{tr(Text::Targets)}</a>
                <a id="nav-recordings" href="#/recordings">{tr(Text::Recordings)}</a>
                <span id="user-name">
                    {move || me.with(|m| m.as_ref().map(|m| m.username.clone()).unwrap_or_default())}
                </span>
                <span id="user-groups" class="user-groups" title=tr(Text::YourGroups)>
                    {move || me.with(|m| m.as_ref().map(|m| m.groups.join(", ")).unwrap_or_default())}
                </span>
                <button id="logout" type="button" on:click=logout>
                    {tr(Text::LogOut)}
                </button>
            </nav>
        </Show>
    }
    .into_any()
}

/// The connection state of a stream: [`ConnBar`] for a [`Stream`].
#[component]
pub fn ConnStatus(stream: Stream) -> impl IntoView {
    let state = stream.state();
    let notice = stream.notice();
    view! { <ConnBar state notice on_retry=move || stream.retry_now() /> }
}

/// The connection state in words (`#conn-state`, with `data-state` and, once closed,
/// `data-code`), the latest notice (`#conn-notice`) and a button to connect again now
/// ("Reconnect now" during a countdown, "Retry" once stopped).
#[component]
pub fn ConnBar(
    state: RwSignal<ConnState>,
    notice: RwSignal<Option<Notice>>,
    on_retry: impl Fn() + Clone + Send + Sync + 'static,
) -> impl IntoView {
    let retry = move |_| on_retry();
    view! {
        <div class="conn-bar">
            <span
                id="conn-state"
                class="conn-state"
                data-state=move || state.with(|s| s.key())
                data-code=move || state.with(|s| s.code().map(|c| c.to_string()))
                role="status"
                aria-live="polite"
                aria-label=tr(Text::ConnectionState)
            >
                {move || state.with(|s| s.label())}
            </span>
            <Show when=move || state.with(|s| s.can_retry())>
                <button id="conn-retry" type="button" on:click=retry.clone()>
                    {move || state.with(|s| s.retry_label())}
                </button>
            </Show>
            {move || {
                notice
                    .get()
                    .map(|n| {
                        view! {
                            <span id="conn-notice" class="conn-notice" data-kind=n.kind>
                                {n.text}
                            </span>
                        }
                    })
            }}
        </div>
    }
}

/// Whether a scrolled element is at (or within a few pixels of) its bottom.
pub fn near_bottom(el: &Element) -> bool {
    is_near_bottom(el.scroll_top(), el.scroll_height(), el.client_height())
}

fn is_near_bottom(scroll_top: i32, scroll_height: i32, client_height: i32) -> bool {
    scroll_height - scroll_top - client_height <= 24
}

/// Scrolls an element to its bottom.
pub fn scroll_to_bottom(el: &Element) {
    el.set_scroll_top(el.scroll_height());
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn following_stops_once_the_user_scrolls_up() {
        assert!(is_near_bottom(900, 1000, 100));
        assert!(is_near_bottom(880, 1000, 100));
        assert!(!is_near_bottom(500, 1000, 100));
        assert!(is_near_bottom(0, 50, 100));
    }
}
