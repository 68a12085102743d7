//! The reaper's grace: a node reaps nobody until its own heartbeat has held for
//! [`reap_grace`] since it started or last failed, and still reaps a dead node after it.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::{beat, reap_grace, Watch};
use crate::cluster::redis::keys::nodes_key;
use crate::cluster::redis::testing::{redis_server, redis_server_on};
use crate::cluster::redis::{Inner, RedisCluster};
use crate::cluster::wire::Message;
use crate::cluster::{ClusterSink, Departure};

const HEARTBEAT: Duration = Duration::from_millis(100);

/// A sink with one present user, recording who was reaped.
struct Recorder {
    user: &'static str,
    departed: Mutex<Vec<String>>,
}

impl Recorder {
    fn new(user: &'static str) -> Self {
        Recorder {
            user,
            departed: Mutex::new(Vec::new()),
        }
    }
}

impl ClusterSink for Recorder {
    fn deliver(&self, _message: &Message) {}

    fn local_presence(&self) -> Vec<(Arc<str>, Arc<str>, Arc<str>)> {
        vec![("lobby".into(), self.user.into(), self.user.into())]
    }

    fn departed(&self, departures: &[Departure]) {
        let mut seen = self.departed.lock();
        seen.extend(
            departures
                .iter()
                .map(|d| format!("{} left {}", d.user_id, d.room)),
        );
    }
}

fn node(url: &str) -> Arc<Inner> {
    RedisCluster::new(url, HEARTBEAT, Arc::new(Default::default()))
        .unwrap()
        .inner
}

async fn registry(inner: &Inner) -> Vec<String> {
    inner
        .run(|mut c| async move {
            redis::cmd("SMEMBERS")
                .arg(nodes_key())
                .query_async::<Vec<String>>(&mut c)
                .await
        })
        .await
        .unwrap()
}

/// A node that beats once (registers itself and its user), then dies: its alive key expires
/// after two heartbeats.
async fn ghost(url: &str) -> Arc<Inner> {
    let ghost = node(url);
    beat(
        &ghost,
        &Recorder::new("gus"),
        &mut Watch::default(),
        reap_grace(HEARTBEAT),
    )
    .await
    .unwrap();
    tokio::time::sleep(HEARTBEAT * 3).await;
    ghost
}

#[tokio::test]
async fn a_node_reaps_nobody_until_its_heartbeat_held_for_the_grace_then_reaps_the_dead() {
    let Some(server) = redis_server() else {
        eprintln!("skipped: no redis-server");
        return;
    };
    let url = format!("redis://127.0.0.1:{}", server.1);
    let grace = reap_grace(HEARTBEAT);
    let sink = Recorder::new("ann");
    let me = node(&url);
    let mut watch = Watch::default();

    // Just started (the first read of the dead node's key counts as two heartbeats of its
    // grace): the key is gone, but this node has not held a grace yet.
    let dead = ghost(&url).await;
    beat(&me, &sink, &mut watch, grace).await.unwrap();
    assert!(sink.departed.lock().is_empty(), "reaped right after start");
    assert!(registry(&me).await.contains(&dead.node_id));

    // Once its heartbeat held for the grace, the dead node is reaped.
    tokio::time::sleep(grace).await;
    beat(&me, &sink, &mut watch, grace).await.unwrap();
    assert_eq!(*sink.departed.lock(), ["gus left lobby"]);
    assert!(!registry(&me).await.contains(&dead.node_id));
    sink.departed.lock().clear();

    // Redis restarts (empty): the first beat fails, which restarts the grace.
    let port = server.1;
    drop(server);
    assert!(beat(&me, &sink, &mut watch, grace).await.is_err());
    assert!(
        watch.healthy_since.is_none(),
        "a failed heartbeat clears the grace"
    );
    let Some(_server) = redis_server_on(port) else {
        eprintln!("skipped: redis-server did not restart");
        return;
    };
    let dead = ghost(&url).await;
    let mut beats = 0;
    while beat(&me, &sink, &mut watch, grace).await.is_err() && beats < 50 {
        beats += 1;
        tokio::time::sleep(HEARTBEAT).await;
    }
    assert!(
        sink.departed.lock().is_empty(),
        "reaped right after an outage"
    );
    tokio::time::sleep(grace).await;
    beat(&me, &sink, &mut watch, grace).await.unwrap();
    assert_eq!(*sink.departed.lock(), ["gus left lobby"]);
    assert!(!registry(&me).await.contains(&dead.node_id));
}
