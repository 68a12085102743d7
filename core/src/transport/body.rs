//! Reading request bodies within a limit, and answering an oversized one so that its sender
//! reads the answer.

use bytes::Bytes;
use http::header::{self, HeaderMap};
use http_body_util::BodyExt;

use super::http::{EioError, HttpReply};

/// Reads a request body of at most `limit` bytes. A larger one is read to its end and
/// discarded (up to [`discard_limit`]) before the `413` goes out: answering while the client
/// is still sending, then closing with its bytes unread, makes the kernel reset the
/// connection, and the client sees `ECONNRESET` instead of the `413`.
///
/// Any body type: hyper's on the engine's own listeners, a host's (axum's) through
/// [`crate::tower`].
pub(super) async fn read_body<B>(
    headers: &HeaderMap,
    body: B,
    limit: usize,
) -> Result<Bytes, HttpReply>
where
    B: http_body::Body<Data = Bytes>,
{
    let body = std::pin::pin!(body);
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        discard(body, discard_limit(limit)).await;
        return Err(HttpReply::payload_too_large());
    }
    let mut body = body;
    let mut collected = bytes::BytesMut::new();
    loop {
        match body.frame().await {
            None => return Ok(collected.freeze()),
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if collected.len() + data.len() > limit {
                    drop(collected);
                    discard(body, discard_limit(limit)).await;
                    return Err(HttpReply::payload_too_large());
                }
                collected.extend_from_slice(&data);
            }
            Some(Err(_)) => return Err(EioError::BadRequest.reply()),
        }
    }
}

/// How much of an oversized body is read and thrown away so that its sender reads the `413`:
/// the payload limit again, at least 16 MiB. Beyond it the connection is closed at once.
fn discard_limit(limit: usize) -> usize {
    limit.max(16 * 1024 * 1024)
}

/// Reads and drops up to `budget` bytes of a body (the caller's request timeout bounds the
/// time); costs no memory beyond one frame.
async fn discard<B>(mut body: std::pin::Pin<&mut B>, mut budget: usize)
where
    B: http_body::Body<Data = Bytes>,
{
    while let Some(Ok(frame)) = body.frame().await {
        let len = frame.data_ref().map_or(0, Bytes::len);
        if len >= budget {
            return;
        }
        budget -= len;
    }
}
