//! One connection type for commands and scripts over a single Redis and a Redis Cluster, so
//! that every store has one code path.
//!
//! On a cluster, one `ClusterConnection` (RESP3) carries the commands and the sharded
//! subscriptions: the `redis` crate follows `MOVED`/`ASK`, refreshes the slot map when a
//! node fails, reconnects, and re-subscribes every tracked channel on the node that owns its
//! slot after a reconnect or a slot-map change. Sharing the connection matters: commands
//! that fail over a dead master are what make the crate refresh its slot map, which in turn
//! moves the subscriptions to the promoted replica.

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// A connection to either set-up; cheap to clone (both sides multiplex).
#[derive(Clone)]
pub(super) enum Conn {
    /// One Redis.
    Single(MultiplexedConnection),
    /// A Redis Cluster.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// How a node reaches Redis.
pub(super) enum Target {
    /// One Redis: commands on a multiplexed connection, classic pub/sub on its own.
    Single(redis::Client),
    /// A Redis Cluster: one cluster connection for commands and sharded pub/sub.
    Cluster(Box<redis::cluster::ClusterClient>),
}

impl Target {
    /// Whether channels are sharded (`SPUBLISH`/`SSUBSCRIBE`).
    pub(super) fn sharded(&self) -> bool {
        matches!(self, Target::Cluster(_))
    }

    /// A new connection.
    pub(super) async fn connect(&self) -> redis::RedisResult<Conn> {
        Ok(match self {
            Target::Single(client) => {
                Conn::Single(client.get_multiplexed_async_connection().await?)
            }
            Target::Cluster(client) => Conn::Cluster(client.get_async_connection().await?),
        })
    }
}
