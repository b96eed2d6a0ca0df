//! The chat room: messages with user and time, a presence list, Enter to send, and
//! auto-scroll that stops while the user reads further up.
//!
//! Each message is sent with a random `client_id` and shown as pending (below the room)
//! until the relay acknowledges it with a `sent` frame; after a reconnect the pending ones
//! are sent again with the same ids, which the relay stores at most once. A refused one
//! stays, with the reason and a button to send it again.

use common::ClientFrame;
use common::chat::{ChatBody, ChatEvent, ChatRequest, ChatUser, ClientId};
use common::server::StreamEvent;
use leptos::html::Div;
use leptos::prelude::*;

use crate::route::Route;
use crate::session::Session;
use crate::views::{ConnStatus, near_bottom, scroll_to_bottom};
use crate::ws::{Incoming, Stream};

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
    /// Why the relay refused it, when it did (it is sent again after a reconnect).
    refused: Option<String>,
}

impl Pending {
    fn frame(&self) -> ClientFrame {
        ClientFrame::Chat(ChatRequest::Message {
            message: self.text.clone(),
            client_id: Some(self.client_id.clone()),
        })
    }
}

/// A new random client id: 24 hex digits (96 random bits).
fn new_client_id() -> ClientId {
    let part = || (js_sys::Math::random() * f64::from(u32::MAX)) as u32;
    let id = format!("c{:08x}{:08x}{:08x}", part(), part(), part());
    ClientId::new(id).unwrap_or_else(|_| unreachable!("hex digits are a valid client id"))
}

/// The room: the stream, the message list and its scrolling; the composer and the presence
/// list are components of their own.
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
    let list = NodeRef::<Div>::new();
    let mut notes = 0u64;

    let stream = Stream::open(path, move |stream, incoming| match incoming {
        Incoming::Event(StreamEvent::Connected { .. }) => {
            stream.send(&ClientFrame::Chat(ChatRequest::UserInfo));
            // Whatever was not acknowledged goes again, with the same ids: the relay stores
            // each at most once and acknowledges it with its id.
            pending.update(|p| {
                for message in p.iter_mut() {
                    message.refused = None;
                    stream.send(&message.frame());
                }
            });
        }
        Incoming::Event(StreamEvent::Sent { client_id, .. }) => {
            pending.update(|p| p.retain(|m| m.client_id != client_id));
        }
        Incoming::Event(StreamEvent::Error {
            client_id: Some(client_id),
            message,
            ..
        }) => {
            pending.update(|p| {
                if let Some(m) = p.iter_mut().find(|m| m.client_id == client_id) {
                    m.refused = Some(message);
                }
            });
        }
        Incoming::Chat(event) => {
            let username =
                me.and_then(|m| m.with_untracked(|m| m.as_ref().map(|m| m.username.clone())));
            let uid = my_uid.get_untracked();
            let line = match event_line(event, &mut notes, uid.as_deref(), username.as_deref()) {
                Change::Line(line) => line,
                Change::Presence(users) => {
                    presence.set(users);
                    return;
                }
                Change::Me(user) => {
                    my_uid.set(Some(user.uid));
                    return;
                }
            };
            lines.update(|l| {
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
                unread.update(|n| *n += 1);
            }
        }
        _ => {}
    });
    let closing = stream.clone();
    on_cleanup(move || closing.close());
    let resend = stream.clone();

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
                <ConnStatus stream=stream.clone() />
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
                            {move || format!("{} new ↓", unread.get())}
                        </button>
                    </Show>
                    <MessageComposer stream=stream.clone() stick pending />
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
    stream: Stream,
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
        if stream.send(&message.frame()) {
            send_error.set(None);
        } else {
            send_error.set(Some(
                "Not connected: the message will be sent when the room is back.".to_owned(),
            ));
        }
        pending.update(|p| p.push(message));
        draft.set(String::new());
        stick.set(true);
    };

    view! {
        <input
            id="chat-input"
            type="text"
            placeholder="Message (Enter to send)"
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
            <h3>{move || format!("Here now ({})", presence.with(Vec::len))}</h3>
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
fn render_pending(message: Pending, stream: Stream) -> impl IntoView {
    let frame = message.frame();
    let status = match &message.refused {
        Some(why) => why.clone(),
        None => "sending…".to_owned(),
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
                                stream.send(&frame);
                            }
                        >
                            "Send again"
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
    event: ChatEvent,
    notes: &mut u64,
    uid: Option<&str>,
    username: Option<&str>,
) -> Change {
    let mut note = |text: String| {
        *notes += 1;
        Change::Line(Line {
            key: format!("note-{notes}"),
            user: None,
            text,
            time: event.time,
            mine: false,
        })
    };
    match event.body {
        ChatBody::Message(m) => {
            let mine = match uid {
                Some(uid) => uid == m.uid,
                None => username == Some(m.username.as_str()),
            };
            Change::Line(Line {
                key: event
                    .id
                    .unwrap_or_else(|| format!("msg-{}-{}", m.time, m.uid)),
                user: Some(m.username),
                text: m.message,
                time: m.time,
                mine,
            })
        }
        ChatBody::Join(user) => note(format!("{} joined", user.username)),
        ChatBody::Leave(user) => note(format!("{} left", user.username)),
        ChatBody::Presence { users } => Change::Presence(users),
        ChatBody::UserInfo(user) => Change::Me(user),
    }
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
