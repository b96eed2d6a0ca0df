//! The chat client the app holds: [`ChatClient`] to send and close, [`Events`] to read, and
//! the driver future that runs the [`Machine`] over a [`Transport`] (spawned by
//! [`crate::native::connect`] or [`crate::web::connect`], or by the caller).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use common::chat::ClientId;
use common::server::ErrorCode;
use futures_channel::{mpsc, oneshot};
use futures_util::{FutureExt, SinkExt, Stream, StreamExt, pin_mut, select};

use crate::close::ChatError;
use crate::machine::{ClientConfig, ConnState, Event, Machine, Next};
use crate::transport::{Socket, SocketEvent, Transport};

/// Events waiting for the app before the driver waits for it: a client whose app does not
/// read [`Events`] stops at this many (drop `Events` to ignore them).
pub const EVENT_BUFFER: usize = 256;

/// Why a send did not end with an acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The relay refused this message (too large, rate limited, ...); it was not stored.
    #[error("the message was refused ({code:?}): {message}")]
    Refused { code: ErrorCode, message: String },
    /// The client stopped before the relay acknowledged it; it may or may not be stored
    /// (connect again and send it with the same client id to find out).
    #[error("the client stopped before the message was acknowledged: {0}")]
    Stopped(ChatError),
}

enum Command {
    Send {
        text: String,
        client_id: Option<ClientId>,
        reply: oneshot::Sender<Result<String, SendError>>,
    },
    RetryNow,
    Close,
}

/// A handle to a running chat client; clones share it. Dropping every handle closes it.
#[derive(Clone)]
pub struct ChatClient {
    commands: mpsc::UnboundedSender<Command>,
}

/// What happens in the room, in order; ends once the client is closed
/// ([`ChatClient::close`], or every handle dropped). After a final close it stays open,
/// waiting for [`ChatClient::retry_now`].
pub struct Events {
    events: mpsc::Receiver<Event>,
}

impl Stream for Events {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.events.poll_next_unpin(cx)
    }
}

impl ChatClient {
    /// A client for `config` over `transport`: the handle, its events, and the future that
    /// runs it (spawn it; it ends when the client stops).
    pub fn new<T: Transport>(
        transport: T,
        config: ClientConfig,
    ) -> (Self, Events, impl Future<Output = ()>) {
        let (commands, commands_rx) = mpsc::unbounded();
        let (events_tx, events) = mpsc::channel(EVENT_BUFFER);
        let driver = Driver {
            transport,
            machine: Machine::new(config),
            events: events_tx,
            replies: Vec::new(),
        };
        (
            Self { commands },
            Events { events },
            driver.run(commands_rx),
        )
    }

    /// Sends `text` with a new random client id; resolves with the message's id once the
    /// relay has stored it. While disconnected it waits and goes on the next connection.
    pub fn send(
        &self,
        text: impl Into<String>,
    ) -> impl Future<Output = Result<String, SendError>> + 'static {
        self.send_inner(text.into(), None)
    }

    /// Sends `text` with the app's own `client_id`: sending the same id again (even from
    /// another process of the same user) stores it at most once.
    pub fn send_with_id(
        &self,
        text: impl Into<String>,
        client_id: ClientId,
    ) -> impl Future<Output = Result<String, SendError>> + 'static {
        self.send_inner(text.into(), Some(client_id))
    }

    fn send_inner(
        &self,
        text: String,
        client_id: Option<ClientId>,
    ) -> impl Future<Output = Result<String, SendError>> + 'static {
        let (reply, answer) = oneshot::channel();
        let queued = self
            .commands
            .unbounded_send(Command::Send {
                text,
                client_id,
                reply,
            })
            .is_ok();
        async move {
            if !queued {
                return Err(SendError::Stopped(ChatError::ClosedByClient));
            }
            answer
                .await
                .unwrap_or(Err(SendError::Stopped(ChatError::ClosedByClient)))
        }
    }

    /// Connects again right away: while waiting to reconnect (the wait is cut short and the
    /// backoff starts over), or after the client stopped on a final close (e.g. once the
    /// user logged in again). Does nothing while connecting or live.
    pub fn retry_now(&self) {
        let _ = self.commands.unbounded_send(Command::RetryNow);
    }

    /// Closes the connection for good and ends [`Events`]; pending sends fail with
    /// [`ChatError::ClosedByClient`].
    pub fn close(&self) {
        let _ = self.commands.unbounded_send(Command::Close);
    }
}

type Reply = oneshot::Sender<Result<String, SendError>>;

struct Driver<T> {
    transport: T,
    machine: Machine,
    events: mpsc::Sender<Event>,
    replies: Vec<(ClientId, Reply)>,
}

/// What a command asks of the driver.
enum Asked {
    /// Nothing more (a send was queued); the frame to send now, if any.
    Continue(Option<String>),
    RetryNow,
    Close,
}

impl<T: Transport> Driver<T> {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        loop {
            let error = self.connection(&mut commands).await;
            for client_id in self.machine.stop() {
                self.reply(&client_id, Err(SendError::Stopped(error.clone())));
            }
            let closed_by_client = error == ChatError::ClosedByClient;
            self.emit(Event::State(ConnState::Closed(error.clone())))
                .await;
            if closed_by_client {
                return;
            }
            // Stopped on a final close: sends fail until the app asks to connect again.
            loop {
                match commands.next().await {
                    None | Some(Command::Close) => return,
                    Some(Command::RetryNow) => break,
                    Some(Command::Send { reply, .. }) => {
                        let _ = reply.send(Err(SendError::Stopped(error.clone())));
                    }
                }
            }
            self.machine.reset_backoff();
        }
    }

    /// Connects and reconnects until a final close (its error) or the app closes the
    /// client ([`ChatError::ClosedByClient`]).
    async fn connection(&mut self, commands: &mut mpsc::UnboundedReceiver<Command>) -> ChatError {
        loop {
            let state = self.machine.connecting();
            self.emit(Event::State(state)).await;
            let request = self.machine.connect_request();
            let opened = {
                let open = self.transport.open(&request).fuse();
                pin_mut!(open);
                loop {
                    select! {
                        opened = open => break Some(opened),
                        command = commands.next() => {
                            if let Asked::Close = take(command, &mut self.machine, &mut self.replies, &self.transport) {
                                break None;
                            }
                        }
                    }
                }
            };
            let (error, open_for) = match opened {
                None => return ChatError::ClosedByClient,
                Some(Err(error)) => (error, None),
                Some(Ok(mut socket)) => {
                    let opened_at = self.transport.now_ms();
                    match self.live(&mut socket, commands).await {
                        Some(error) => {
                            let ms = (self.transport.now_ms() - opened_at).max(0.0);
                            (error, Some(Duration::from_millis(ms as u64)))
                        }
                        None => {
                            socket.close(1000, "closed by the client").await;
                            return ChatError::ClosedByClient;
                        }
                    }
                }
            };
            let random = self.transport.random();
            match self.machine.on_closed(error, open_for, random) {
                Next::Stop(error) => return error,
                Next::Reconnect { delay, error } => {
                    let attempt = self.machine.connecting();
                    let ConnState::Connecting { attempt } = attempt else {
                        unreachable!("connecting() is a Connecting state")
                    };
                    self.emit(Event::State(ConnState::Reconnecting {
                        delay,
                        attempt,
                        error,
                    }))
                    .await;
                    if !self.wait(delay, commands).await {
                        return ChatError::ClosedByClient;
                    }
                }
            }
        }
    }

    /// Runs one open socket until it closes (`Some(why)`) or the app closes the client
    /// (`None`).
    async fn live(
        &mut self,
        socket: &mut T::Socket,
        commands: &mut mpsc::UnboundedReceiver<Command>,
    ) -> Option<ChatError> {
        loop {
            let frame = select! {
                event = socket.next().fuse() => match event {
                    SocketEvent::Closed { code, reason } => {
                        return Some(ChatError::from_close(code, &reason));
                    }
                    SocketEvent::Text(text) => {
                        let step = self.machine.on_text(&text);
                        for frame in step.frames {
                            // A failed send shows up as the socket's close.
                            let _ = socket.send(frame).await;
                        }
                        for event in step.events {
                            self.settle(&event);
                            self.emit(event).await;
                        }
                        None
                    }
                },
                command = commands.next() => {
                    match take(command, &mut self.machine, &mut self.replies, &self.transport) {
                        Asked::Close => return None,
                        Asked::Continue(frame) => frame,
                        Asked::RetryNow => None,
                    }
                }
            };
            if let Some(frame) = frame {
                let _ = socket.send(frame).await;
            }
        }
    }

    /// Waits `delay` before the next attempt, queueing sends meanwhile (cut short by
    /// [`ChatClient::retry_now`]); `false` if the app closed the client.
    async fn wait(
        &mut self,
        delay: Duration,
        commands: &mut mpsc::UnboundedReceiver<Command>,
    ) -> bool {
        let sleep = self.transport.sleep(delay).fuse();
        pin_mut!(sleep);
        loop {
            select! {
                () = sleep => return true,
                command = commands.next() => {
                    match take(command, &mut self.machine, &mut self.replies, &self.transport) {
                        Asked::Close => return false,
                        Asked::RetryNow => {
                            self.machine.reset_backoff();
                            return true;
                        }
                        Asked::Continue(_) => {}
                    }
                }
            }
        }
    }

    /// Resolves the send an acknowledgement or a final refusal is about.
    fn settle(&mut self, event: &Event) {
        match event {
            Event::Acked { client_id, id } => self.reply(client_id, Ok(id.clone())),
            Event::Refused {
                client_id,
                code,
                message,
                retrying: false,
            } => self.reply(
                client_id,
                Err(SendError::Refused {
                    code: *code,
                    message: message.clone(),
                }),
            ),
            _ => {}
        }
    }

    fn reply(&mut self, client_id: &ClientId, answer: Result<String, SendError>) {
        if let Some(at) = self.replies.iter().position(|(id, _)| id == client_id) {
            let (_, reply) = self.replies.swap_remove(at);
            let _ = reply.send(answer);
        }
    }

    async fn emit(&mut self, event: Event) {
        // Nobody listening is fine: the app dropped its `Events`.
        let _ = self.events.send(event).await;
    }
}

/// Takes in a command from the app (`None`: every handle was dropped, which closes).
fn take<T: Transport>(
    command: Option<Command>,
    machine: &mut Machine,
    replies: &mut Vec<(ClientId, Reply)>,
    transport: &T,
) -> Asked {
    match command {
        None | Some(Command::Close) => Asked::Close,
        Some(Command::RetryNow) => Asked::RetryNow,
        Some(Command::Send {
            text,
            client_id,
            reply,
        }) => {
            let client_id = client_id.unwrap_or_else(|| new_client_id(transport));
            replies.push((client_id.clone(), reply));
            Asked::Continue(machine.send(client_id, text))
        }
    }
}

/// A new random client id: `c` and 24 hex digits (96 random bits).
fn new_client_id<T: Transport>(transport: &T) -> ClientId {
    let part = || (transport.random() * f64::from(u32::MAX)) as u32;
    let id = format!("c{:08x}{:08x}{:08x}", part(), part(), part());
    ClientId::new(id).unwrap_or_else(|_| unreachable!("hex digits are a valid client id"))
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use common::chat::{ChatBody, ChatEvent, ChatMessage};
    use common::server::{ServerFrame, StreamEvent};
    use common::{Position, StreamKind};

    use super::*;
    use crate::machine::{Auth, ConnectRequest};

    /// The relay's end of one scripted socket.
    struct Relay {
        to_client: mpsc::UnboundedSender<SocketEvent>,
        from_client: mpsc::UnboundedReceiver<String>,
    }

    struct FakeSocket {
        incoming: mpsc::UnboundedReceiver<SocketEvent>,
        outgoing: mpsc::UnboundedSender<String>,
    }

    /// Hands out the prepared sockets in turn and records the URLs asked for.
    #[derive(Clone, Default)]
    struct Fake {
        sockets: Arc<Mutex<VecDeque<FakeSocket>>>,
        urls: Arc<Mutex<Vec<String>>>,
    }

    impl Fake {
        fn prepare(&self) -> Relay {
            let (to_client, incoming) = mpsc::unbounded();
            let (outgoing, from_client) = mpsc::unbounded();
            self.sockets
                .lock()
                .unwrap()
                .push_back(FakeSocket { incoming, outgoing });
            Relay {
                to_client,
                from_client,
            }
        }
    }

    impl Transport for Fake {
        type Socket = FakeSocket;

        async fn open(&self, request: &ConnectRequest) -> Result<FakeSocket, ChatError> {
            self.urls.lock().unwrap().push(request.url.clone());
            let socket = self.sockets.lock().unwrap().pop_front();
            socket.ok_or(ChatError::ConnectionLost {
                code: 1006,
                reason: "no socket prepared".into(),
            })
        }

        async fn sleep(&self, _: Duration) {}

        fn random(&self) -> f64 {
            0.5
        }

        fn now_ms(&self) -> f64 {
            0.0
        }
    }

    impl Socket for FakeSocket {
        async fn send(&mut self, text: String) -> Result<(), ChatError> {
            let _ = self.outgoing.unbounded_send(text);
            Ok(())
        }

        async fn next(&mut self) -> SocketEvent {
            self.incoming.next().await.unwrap_or(SocketEvent::Closed {
                code: 1006,
                reason: String::new(),
            })
        }

        async fn close(&mut self, _: u16, _: &str) {}
    }

    impl Relay {
        fn say(&self, frame: ServerFrame) {
            self.to_client
                .unbounded_send(SocketEvent::Text(frame.to_json()))
                .unwrap();
        }

        fn connected(&self) {
            self.say(ServerFrame::Event(StreamEvent::Connected {
                stream: StreamKind::Chat,
                session: "ops".into(),
                position: Position::default(),
                resumed: false,
            }));
        }

        fn message(&self, id: &str, text: &str) {
            self.say(ServerFrame::Chat(ChatEvent {
                id: Some(id.into()),
                time: 1,
                body: ChatBody::Message(ChatMessage {
                    uid: "7".into(),
                    username: "bob".into(),
                    message: text.into(),
                    time: 1,
                }),
            }));
        }

        /// The client id of the next chat message the client sends (skipping `userinfo`).
        async fn next_send(&mut self) -> ClientId {
            loop {
                let text = self.from_client.next().await.expect("the client sends");
                if let Ok(common::ClientFrame::Chat(common::chat::ChatRequest::Message {
                    client_id: Some(id),
                    ..
                })) = common::ClientFrame::parse(&text)
                {
                    return id;
                }
            }
        }
    }

    async fn next_text(events: &mut Events) -> String {
        loop {
            if let Some(Event::Message { message, .. }) = events.next().await {
                return message.message;
            }
        }
    }

    #[tokio::test]
    async fn a_send_cut_off_by_a_drop_goes_again_with_its_id_and_resolves_once_stored() {
        let fake = Fake::default();
        let mut first = fake.prepare();
        let mut second = fake.prepare();
        let config = ClientConfig::new("ws://relay/ws/chat/ops", Auth::Bearer("t".into()));
        let (chat, mut events, driver) = ChatClient::new(fake.clone(), config);
        tokio::spawn(driver);

        first.connected();
        first.message("5-0", "before");
        assert_eq!(next_text(&mut events).await, "before");
        let sending = tokio::spawn(chat.send("hello"));
        let id = first.next_send().await;
        // The socket drops before the relay acknowledged it.
        first
            .to_client
            .unbounded_send(SocketEvent::Closed {
                code: 1006,
                reason: String::new(),
            })
            .unwrap();

        second.connected();
        assert_eq!(second.next_send().await, id, "sent again with the same id");
        // The relay replays from before what the client has, then goes on.
        second.message("5-0", "before");
        second.message("6-0", "after");
        second.say(ServerFrame::Event(StreamEvent::Sent {
            client_id: id,
            id: "7-0".into(),
        }));
        assert_eq!(next_text(&mut events).await, "after");
        assert_eq!(sending.await.unwrap(), Ok("7-0".to_owned()));
        let urls = fake.urls.lock().unwrap().clone();
        assert_eq!(
            urls,
            ["ws://relay/ws/chat/ops", "ws://relay/ws/chat/ops?since=5-0"]
        );
        chat.close();
        while let Some(event) = events.next().await {
            assert!(
                !matches!(event, Event::Message { .. }),
                "nothing handed over twice: {event:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_final_close_fails_pending_sends_and_waits_for_retry_now() {
        let fake = Fake::default();
        let first = fake.prepare();
        let config = ClientConfig::new("ws://relay/ws/chat/ops", Auth::Ambient);
        let (chat, mut events, driver) = ChatClient::new(fake.clone(), config);
        tokio::spawn(driver);
        let sending = chat.send("hello");
        first
            .to_client
            .unbounded_send(SocketEvent::Closed {
                code: 4403,
                reason: "not yours".into(),
            })
            .unwrap();
        let forbidden = ChatError::Forbidden {
            reason: "not yours".into(),
        };
        assert_eq!(sending.await, Err(SendError::Stopped(forbidden.clone())));
        loop {
            if let Some(Event::State(ConnState::Closed(error))) = events.next().await {
                assert_eq!(error, forbidden);
                break;
            }
        }
        assert_eq!(chat.send("later").await, Err(SendError::Stopped(forbidden)));
        let again = fake.prepare();
        chat.retry_now();
        again.connected();
        loop {
            if let Some(Event::State(ConnState::Live)) = events.next().await {
                break;
            }
        }
        assert_eq!(fake.urls.lock().unwrap().len(), 2);
    }
}
