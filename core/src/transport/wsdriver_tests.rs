use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [1u8, 2, 3, 4];
    let mut wire = vec![first, 0x80 | payload.len() as u8];
    wire.extend_from_slice(&mask);
    wire.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    wire
}

/// Runs an echo connection over a pipe; returns the client's end and the driver's task.
fn start() -> (tokio::io::DuplexStream, tokio::task::JoinHandle<()>) {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let task = tokio::spawn(async move {
        let mut server = server;
        let endpoint = Arc::new(Echo {
            outbox: Outbox::new(64, 1 << 20),
            send_timeout: Duration::from_secs(5),
        });
        let mut frames = FrameReader::new(&[], 1 << 16);
        drive(&*endpoint, &mut frames, &mut server).await;
    });
    (client, task)
}

async fn read_until_end(client: &mut tokio::io::DuplexStream) -> Vec<u8> {
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut got)).await;
    got
}

#[tokio::test]
async fn messages_and_pings_are_answered_and_a_close_echoed() {
    let (mut client, task) = start();
    let mut wire = masked(0x81, b"hello");
    wire.extend(masked(0x89, b"p"));
    wire.extend(masked(0x82, &[1, 2, 3]));
    wire.extend(masked(0x88, &[0x03, 0xe8]));
    client.write_all(&wire).await.unwrap();
    let got = read_until_end(&mut client).await;
    let mut expected = vec![0x81, 5];
    expected.extend_from_slice(b"hello");
    expected.extend_from_slice(&[0x8a, 1, b'p', 0x82, 3, 1, 2, 3, 0x88, 2, 0x03, 0xe8]);
    assert_eq!(got, expected);
    drop(client);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the connection ends")
        .unwrap();
}

#[tokio::test]
async fn a_protocol_error_is_told_with_its_close_code() {
    let (mut client, task) = start();
    // Unmasked: 1002.
    client.write_all(&[0x81, 1, b'x']).await.unwrap();
    assert_eq!(read_until_end(&mut client).await, vec![0x88, 2, 0x03, 0xea]);
    drop(client);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the connection ends")
        .unwrap();
}

#[tokio::test]
async fn a_client_that_reads_nothing_is_no_longer_read_from() {
    // The pipe holds 1 KiB each way: the echoes soon fill it, the queue passes half its
    // limit, and the driver stops reading (the client's writes then stall too).
    let (mut client, server) = tokio::io::duplex(1024);
    let endpoint = Arc::new(Echo {
        outbox: Outbox::new(64, 1 << 20),
        send_timeout: Duration::from_secs(60),
    });
    let e = endpoint.clone();
    let task = tokio::spawn(async move {
        let mut server = server;
        let mut frames = FrameReader::new(&[], 1 << 16);
        drive(&*e, &mut frames, &mut server).await;
    });
    let message = masked(0x82, &[7u8; 100]);
    let mut sent = 0usize;
    for _ in 0..10_000 {
        match tokio::time::timeout(Duration::from_millis(200), client.write_all(&message)).await {
            Ok(Ok(())) => sent += 1,
            _ => break,
        }
    }
    // About what the two pipes hold; a driver that kept reading would queue 64 echoes and
    // overflow its queue first.
    assert!(sent < 50, "the server kept reading: {sent} messages");
    assert!(!endpoint.outbox.is_closed(), "the queue did not overflow");
    drop(client);
    task.abort();
}
