//! The chat room: messages with user and time, a presence list, Enter to send, and
//! auto-scroll that stops while the user reads further up.
//!
//! The connection is `opsdeck-client`'s (the chat client other apps embed too): it
//! reconnects, catches up exactly once, and keeps each message sent with a random
//! `client_id` until the relay acknowledges it, sending the pending ones again after a
//! reconnect. The page shows them as pending (below the room) until then; a refused one
//! stays, with the reason and a button to send it again (same id).

use common::chat::{ChatUser, ClientId};
use futures_util::StreamExt;
use leptos::html::Div;
use leptos::prelude::*;
use opsdeck_client::{Auth, ChatClient, ClientConfig, Event};

use crate::config;
use crate::conn::{self, ConnState};
use crate::locale::{Msg, Text, lang_now, msg, tr};
use crate::route::Route;
use crate::session::Session;
use crate::views::{ConnBar, near_bottom, scroll_to_bottom};
use crate::ws::Notice;

/// Messages kept on the page.
const KEPT: usize = 1_000;

/// One line of the room: a message, or a note (joins, leaves).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    key: String,
    user: Option<String>,
    text: String,
    time: u64,
    mine: bool,
}

/// A message sent and not yet acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    client_id: ClientId,
    text: String,
    /// Why the relay refused it, when it did.
    refused: Option<String>,
}

/// A new random client id: 24 hex digits (96 random bits).
fn new_client_id() -> ClientId {
    let part = || (js_sys::Math::random() * f64::from(u32::MAX)) as u32;
    let id = format!("c{:08x}{:08x}{:08x}", part(), part(), part());
    ClientId::new(id).unwrap_or_else(|_| unreachable!("hex digits are a valid client id"))
}

/// The chat client's state as the status bar shows every stream's.
fn shown(state: &opsdeck_client::ConnState) -> ConnState {
    use opsdeck_client::ConnState as Client;
    match state {
        Client::Connecting { attempt } => ConnState::Connecting { attempt: *attempt },
        Client::Live => ConnState::Connected { resumed: false },
        Client::Reconnecting {
            delay,
            attempt,
            error,
        } => ConnState::Reconnecting {
            in_secs: delay.as_secs_f64().ceil() as u32,
            attempt: *attempt,
            reason: error.to_string(),
        },
        Client::Closed(error) => {
            conn::closed(error.close_code().unwrap_or(1000), &error.to_string())
        }
    }
}

/// The room: the chat client (`opsdeck-client`: reconnects, catch-up, acknowledged sends),
/// the message list and its scrolling; the composer and the presence list are components
/// of their own.
#[component]
pub fn ChatPage(room: String) -> impl IntoView {
    let Some(path) = (Route::Chat { room: room.clone() }).ws_path() else {
        return ().into_any();
    };
    let me = use_context::<Session>().map(|s| s.me);
    let lines = RwSignal::new(Vec::<Line>::new());
    let presence = RwSignal::new(Vec::<ChatUser>::new());
    let my_uid = RwSignal::new(None::<String>);
    let pending = RwSignal::new(Vec::<Pending>::new());
    let stick = RwSignal::new(true);
    let unread = RwSignal::new(0usize);
    let state = RwSignal::new(ConnState::Connecting { attempt: 0 });
    let notice = RwSignal::new(None::<Notice>);
    let list = NodeRef::<Div>::new();

    let (client, mut events) =
        opsdeck_client::web::connect(ClientConfig::new(config::ws_url(&path), Auth::Ambient));
    leptos::task::spawn_local(async move {
        let mut notes = 0u64;
        while let Some(event) = events.next().await {
            match event {
                Event::State(now) => {
                    if let opsdeck_client::ConnState::Closed(error) = &now
                        && error.needs_login()
                    {
                        crate::nav::go_login();
                    }
                    state.try_set(shown(&now));
                    continue;
                }
                Event::Acked { client_id, .. } => {
                    pending.try_update(|p| p.retain(|m| m.client_id != client_id));
                    continue;
                }
                Event::Refused {
                    client_id, message, ..
                } => {
                    pending.try_update(|p| {
                        if let Some(m) = p.iter_mut().find(|m| m.client_id == client_id) {
                            m.refused = Some(message);
                        }
                    });
                    continue;
                }
                Event::Gap { message, .. } => {
                    notice.try_set(Some(Notice {
                        kind: "gap",
                        text: message,
                    }));
                    continue;
                }
                _ => {}
            }
            let username =
                me.and_then(|m| m.with_untracked(|m| m.as_ref().map(|m| m.username.clone())));
            let uid = my_uid.get_untracked();
            let line = match event_line(event, &mut notes, uid.as_deref(), username.as_deref()) {
                Some(Change::Line(line)) => line,
                Some(Change::Presence(users)) => {
                    presence.try_set(users);
                    continue;
                }
                Some(Change::Me(user)) => {
                    my_uid.try_set(Some(user.uid));
                    continue;
                }
                None => continue,
            };
            lines.try_update(|l| {
                l.push(line);
                if l.len() > KEPT {
                    l.drain(..l.len() - KEPT);
                }
            });
            if stick.get_untracked() {
                request_animation_frame(move || {
                    if let Some(el) = list.get_untracked() {
                        scroll_to_bottom(&el);
                    }
                });
            } else {
                unread.try_update(|n| *n += 1);
            }
        }
    });
    let closing = client.clone();
    on_cleanup(move || closing.close());
    let resend = client.clone();
    let retry = client.clone();

    let on_scroll = move |_| {
        if let Some(el) = list.get_untracked() {
            let at_bottom = near_bottom(&el);
            stick.set(at_bottom);
            if at_bottom {
                unread.set(0);
            }
        }
    };
    let jump = move |_| {
        if let Some(el) = list.get_untracked() {
            scroll_to_bottom(&el);
        }
        stick.set(true);
        unread.set(0);
    };

    view! {
        <section class="page chat-page" data-room=room.clone()>
            <div class="toolbar">
                <ConnBar state notice on_retry=move || retry.retry_now() />
            </div>
            <div class="chat-body">
                <div class="chat-main">
                    <div id="chat-messages" class="chat-messages" node_ref=list on:scroll=on_scroll>
                        <For each=move || lines.get() key=|l| l.key.clone() let:line>
                            {render_line(line)}
                        </For>
                        <For
                            each=move || pending.get()
                            key=|p| (p.client_id.clone(), p.refused.clone())
                            let:message
                        >
                            {render_pending(message, resend.clone())}
                        </For>
                    </div>
                    <Show when=move || { unread.get() > 0 }>
                        <button id="chat-jump" type="button" on:click=jump>
                            {move || msg(&Msg::NewBelow(unread.get()))}
                        </button>
                    </Show>
                    <MessageComposer client state stick pending />
                </div>
                <PresenceList presence=presence.read_only() />
            </div>
        </section>
    }
    .into_any()
}

/// The message box: Enter sends (Shift+Enter and IME composition do not). The message is
/// pending until acknowledged; while disconnected it waits and goes on the reconnect.
/// Sending follows the room to its bottom again (`stick`).
#[component]
fn MessageComposer(
    client: ChatClient,
    state: RwSignal<ConnState>,
    stick: RwSignal<bool>,
    pending: RwSignal<Vec<Pending>>,
) -> impl IntoView {
    let draft = RwSignal::new(String::new());
    let send_error = RwSignal::new(None::<String>);
    let on_key = move |ev: leptos::ev::KeyboardEvent| {
        if ev.key() != "Enter" || ev.shift_key() || ev.is_composing() {
            return;
        }
        ev.prevent_default();
        let message = draft.get_untracked();
        if message.trim().is_empty() {
            return;
        }
        let message = Pending {
            client_id: new_client_id(),
            text: message,
            refused: None,
        };
        // The client keeps it until the relay has stored it, across reconnects.
        drop(client.send_with_id(message.text.clone(), message.client_id.clone()));
        if state.with_untracked(|s| matches!(s, ConnState::Connected { .. })) {
            send_error.set(None);
        } else {
            send_error.set(Some(Text::ChatNotConnected.get(lang_now()).to_owned()));
        }
        pending.update(|p| p.push(message));
        draft.set(String::new());
        stick.set(true);
    };

    view! {
        <input
            id="chat-input"
            type="text"
            placeholder=tr(Text::ChatPlaceholder)
            aria-label=tr(Text::ChatMessage)
            autocomplete="off"
            maxlength="4000"
            bind:value=draft
            on:keydown=on_key
        />
        {move || send_error.get().map(|e| view! { <p id="chat-send-error" class="error">{e}</p> })}
    }
}

/// Who is in the room now.
#[component]
fn PresenceList(presence: ReadSignal<Vec<ChatUser>>) -> impl IntoView {
    view! {
        <aside id="chat-presence" class="chat-presence">
            <h3>{move || msg(&Msg::HereNow(presence.with(Vec::len)))}</h3>
            <ul>
                <For each=move || presence.get() key=|u| u.uid.clone() let:user>
                    <li class="chat-presence-user" data-uid=user.uid.clone()>{user.username}</li>
                </For>
            </ul>
        </aside>
    }
}

/// A message not yet acknowledged: "sending…", or why it was refused and a button to send
/// it again (with the same id).
fn render_pending(message: Pending, client: ChatClient) -> impl IntoView {
    let (text, client_id) = (message.text.clone(), message.client_id.clone());
    let status = match &message.refused {
        Some(why) => why.clone(),
        None => Text::Sending.get(lang_now()).to_owned(),
    };
    let refused = message.refused.is_some();
    view! {
        <div
            class="chat-message mine chat-pending"
            class:refused=refused
            data-client-id=message.client_id.to_string()
        >
            <span class="chat-text">{message.text}</span>
            <span class="chat-pending-status">{status}</span>
            {refused
                .then(|| {
                    view! {
                        <button
                            class="chat-resend"
                            type="button"
                            on:click=move |_| {
                                drop(client.send_with_id(text.clone(), client_id.clone()));
                            }
                        >
                            {tr(Text::SendAgain)}
                        </button>
                    }
                })}
        </div>
    }
}

fn render_line(line: Line) -> impl IntoView {
    let (short, full) = clock(line.time);
    match line.user {
        Some(user) => view! {
            <div class="chat-message" class:mine=line.mine data-id=line.key.clone()>
                <span class="chat-user">{user}</span>
                <time class="chat-time" title=full>{short}</time>
                <span class="chat-text">{line.text}</span>
            </div>
        }
        .into_any(),
        None => view! {
            <div class="chat-system" data-id=line.key.clone()>
                <time class="chat-time" title=full>{short}</time>
                <span class="chat-text">{line.text}</span>
            </div>
        }
        .into_any(),
    }
}

/// What one chat event changes on the page.
enum Change {
    Line(Line),
    Presence(Vec<ChatUser>),
    Me(ChatUser),
}

fn event_line(
    event: Event,
    notes: &mut u64,
    uid: Option<&str>,
    username: Option<&str>,
) -> Option<Change> {
    let mut note = |text: String, time: u64| {
        *notes += 1;
        Change::Line(Line {
            key: format!("note-{notes}"),
            user: None,
            text,
            time,
            mine: false,
        })
    };
    let now = (js_sys::Date::now() / 1000.0) as u64;
    Some(match event {
        Event::Message { id, message: m } => {
            let mine = match uid {
                Some(uid) => uid == m.uid,
                None => username == Some(m.username.as_str()),
            };
            Change::Line(Line {
                key: id.unwrap_or_else(|| format!("msg-{}-{}", m.time, m.uid)),
                user: Some(m.username),
                text: m.message,
                time: m.time,
                mine,
            })
        }
        Event::Join(user) => note(Msg::Joined(&user.username).text(lang_now()), now),
        Event::Leave(user) => note(Msg::Left(&user.username).text(lang_now()), now),
        Event::Presence(users) => Change::Presence(users),
        Event::Me(user) => Change::Me(user),
        _ => return None,
    })
}

/// `HH:MM` in local time, and the full date for the tooltip.
fn clock(unix_seconds: u64) -> (String, String) {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(
        unix_seconds as f64 * 1000.0,
    ));
    let short = format!("{:02}:{:02}", date.get_hours(), date.get_minutes());
    let full = String::from(date.to_string());
    (short, full)
}
