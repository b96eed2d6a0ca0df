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
