//! The fan-out limit: Redis PUBLISH/SUBSCRIBE with the redis crate, one connection per
//! subscriber, on the same redis-server the relay's Redis backend uses.

use std::time::Instant;

use futures_util::StreamExt;
use opsdeck_tests::load::{Publisher, Received, Subscriber};
use redis::aio::{MultiplexedConnection, PubSubStream};

/// PUBLISHes each message and waits for Redis to accept it (as the relay's publisher
/// waits for its XADD).
pub struct RedisPublisher {
    connection: MultiplexedConnection,
    channel: String,
}

impl RedisPublisher {
    pub async fn open(url: &str, channel: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        Ok(Self {
            connection: client.get_multiplexed_async_connection().await?,
            channel: channel.to_owned(),
        })
    }
}

impl Publisher for RedisPublisher {
    async fn publish(&mut self, text: String) -> anyhow::Result<()> {
        redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(text)
            .query_async::<i64>(&mut self.connection)
            .await?;
        Ok(())
    }
}

/// One SUBSCRIBEd connection.
pub struct RedisSubscriber {
    messages: PubSubStream,
}

impl RedisSubscriber {
    pub async fn open(url: &str, channel: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok(Self {
            messages: pubsub.into_on_message(),
        })
    }
}

impl Subscriber for RedisSubscriber {
    async fn next_message(&mut self) -> anyhow::Result<Option<Received>> {
        let Some(message) = self.messages.next().await else {
            return Ok(None);
        };
        let at = Instant::now();
        Ok(Some(Received {
            text: message.get_payload()?,
            at,
        }))
    }
}
