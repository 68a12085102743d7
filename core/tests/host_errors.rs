//! A host handler's failure as a client sees it (issue 18): `INTERNAL` "Internal error" with
//! the host's detail only in the log (as a `tracing` event with `hook`, `sid` and `error`),
//! or the host's own code and message when it chose them (`HookError::client`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::SinkExt;
use switchboard::bindings::log::Record;
use switchboard::chat::HookError;
use switchboard::{Config, Engine};
use tokio_tungstenite::tungstenite::Message;
use tracing::span::{Attributes, Id, Record as SpanRecord};
use tracing::{Event, Metadata};

mod common;
use common::next_text;

/// Keeps every event of the test's thread (the engine runs on the test's current-thread
/// runtime, so all its events are logged there).
#[derive(Clone, Default)]
struct Keep(Arc<Mutex<Vec<Record>>>);

impl tracing::Subscriber for Keep {
    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        meta.is_event()
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &SpanRecord<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        if let Ok(mut kept) = self.0.lock() {
            kept.push(Record::from_event(event));
        }
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[tokio::test]
async fn host_details_are_logged_and_client_codes_pass() {
    let kept = Keep::default();
    let _guard = tracing::subscriber::set_default(kept.clone());
    let run = async {
        let engine = Engine::builder(Config::default())
            .namespace("/", |ns| {
                ns.on("crash", |_socket, _payload, ack| async move {
                    if let Some(ack) = ack {
                        let detail = HookError::failed("SELECT failed: password=hunter2");
                        ack.send_result("crash", Err(detail));
                    }
                })
                .on("quota", |_socket, _payload, ack| async move {
                    if let Some(ack) = ack {
                        let e = HookError::client("QUOTA_EXCEEDED", "Upgrade your plan");
                        ack.send_result("quota", Err(e));
                    }
                })
                .on("badcode", |_socket, _payload, ack| async move {
                    if let Some(ack) = ack {
                        ack.send_result("badcode", Err(HookError::client("quota!", "m")));
                    }
                })
            })
            .build_on(tokio::runtime::Handle::current())
            .unwrap();
        let addr = engine.listen("127.0.0.1:0".parse().unwrap()).unwrap().addr;
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        assert!(next_text(&mut ws).await.starts_with("0{"));
        ws.send(Message::text("40")).await.unwrap();
        let connected = next_text(&mut ws).await;
        let sid = connected
            .split('"')
            .nth(3)
            .expect("the CONNECT answer names the socket")
            .to_owned();

        ws.send(Message::text(r#"421["crash"]"#)).await.unwrap();
        assert_eq!(
            next_text(&mut ws).await,
            r#"431[{"code":"INTERNAL","message":"Internal error"}]"#
        );
        ws.send(Message::text(r#"422["quota"]"#)).await.unwrap();
        assert_eq!(
            next_text(&mut ws).await,
            r#"432[{"code":"QUOTA_EXCEEDED","message":"Upgrade your plan"}]"#
        );
        ws.send(Message::text(r#"423["badcode"]"#)).await.unwrap();
        assert_eq!(
            next_text(&mut ws).await,
            r#"433[{"code":"INTERNAL","message":"Internal error"}]"#
        );
        engine.shutdown(Duration::from_millis(100));
        sid
    };
    let sid = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("test timed out");

    let kept = kept.0.lock().unwrap();
    let failed: Vec<&Record> = kept
        .iter()
        .filter(|r| r.message == "host callback failed")
        .collect();
    assert_eq!(failed.len(), 2, "{kept:?}");
    assert_eq!(failed[0].level, "error");
    assert_eq!(failed[0].target, "switchboard::host");
    assert_eq!(failed[0].fields["hook"], "crash");
    assert_eq!(failed[0].fields["sid"], sid.as_str());
    assert_eq!(failed[0].fields["error"], "SELECT failed: password=hunter2");
    assert_eq!(failed[1].fields["hook"], "badcode");
    assert!(failed[1].fields["error"]
        .as_str()
        .is_some_and(|e| e.contains("invalid client error code")));
}
