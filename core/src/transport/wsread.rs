//! Reading a client's WebSocket frames (RFC 6455, server side) without a read buffer per
//! connection.
//!
//! A connection reads through a buffer borrowed from its worker thread for the duration of
//! one `poll_read` ([`READ_CHUNK`] bytes, one per thread): a read that returns `Pending`
//! holds nothing, so an idle connection costs no buffer. The connection keeps bytes of its
//! own only for a frame it received in part (or frames read past the one returned), in a
//! `Vec` freed as soon as they are parsed, and for a fragmented message in progress.
//!
//! Every rule tungstenite enforced on this path is kept: frames must be masked, RSV bits
//! clear, opcodes known, control frames ≤ 125 bytes and final, continuation frames only
//! inside a fragmented message, a message at most `max_payload` bytes (checked on the
//! declared length, before its payload arrives: close 1009), text and close reasons valid
//! UTF-8 (close 1007, checked fragment by fragment so a bad sequence fails fast), close codes
//! valid (close 1002).

use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, ReadBuf};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Bytes one read takes from the socket: the worker thread's buffer, shared by all of its
/// connections.
pub(crate) const READ_CHUNK: usize = 16 * 1024;

thread_local! {
    /// The worker thread's read buffer, taken out while a read runs (so a nested read, which
    /// cannot happen today, would get a fresh one rather than alias it).
    static READ_BUFFER: Cell<Option<Box<[u8]>>> = const { Cell::new(None) };
}

/// Runs `f` with the thread's read buffer.
fn with_read_buffer<T>(f: impl FnOnce(&mut [u8]) -> T) -> T {
    let mut buf = READ_BUFFER
        .with(Cell::take)
        .unwrap_or_else(|| vec![0u8; READ_CHUNK].into_boxed_slice());
    let out = f(&mut buf);
    READ_BUFFER.with(|slot| slot.set(Some(buf)));
    out
}

/// A complete message or control frame from the client.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Incoming {
    /// A text message, valid UTF-8.
    Text(Bytes),
    /// A binary message.
    Binary(Bytes),
    /// A ping with its payload (to be answered with a pong carrying it).
    Ping(Bytes),
    /// A pong (nothing to do).
    Pong,
    /// A close frame; its payload (code and reason, already validated) for the echo.
    Close(Bytes),
}

/// Why reading stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// The client broke the protocol (close 1002).
    #[error("WebSocket protocol violation: {0}")]
    Protocol(&'static str),
    /// A text message or close reason is not UTF-8 (close 1007).
    #[error("invalid UTF-8 in a text message or close reason")]
    Utf8,
    /// A message over `max_payload` (close 1009).
    #[error("message larger than the limit")]
    TooBig,
    /// The socket failed, or closed in the middle of a frame.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl ReadError {
    /// The close code to tell the client, when the connection can still carry one.
    pub(crate) fn close_code(&self) -> Option<u16> {
        match self {
            ReadError::Protocol(_) => Some(1002),
            ReadError::Utf8 => Some(1007),
            ReadError::TooBig => Some(1009),
            ReadError::Io(_) => None,
        }
    }
}

/// A fragmented message being received.
struct Fragmented {
    text: bool,
    data: Vec<u8>,
    /// How far `data` is known to be valid UTF-8 (text only).
    checked: usize,
}

/// One connection's reading state: empty (two words and a limit) between messages.
pub(crate) struct FrameReader {
    /// Bytes read and not yet parsed; unallocated when there are none.
    pending: Vec<u8>,
    /// A fragmented message in progress (boxed: rare, and it should not widen every
    /// connection's state).
    message: Option<Box<Fragmented>>,
    max_payload: usize,
}

/// A parsed frame header.
struct Header {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    /// Header bytes, mask included.
    len: usize,
    payload: usize,
}

const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xa;

impl FrameReader {
    /// A reader whose first bytes are `prefix` (what arrived with the upgrade request),
    /// accepting messages of up to `max_payload` bytes.
    pub(crate) fn new(prefix: &[u8], max_payload: usize) -> Self {
        FrameReader {
            pending: prefix.to_vec(),
            message: None,
            max_payload,
        }
    }

    /// Whether bytes already read wait to be parsed (the rest of a read that carried several
    /// frames, or part of one).
    pub(crate) fn has_buffered(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Bytes this connection holds for frames in progress (for tests and limits).
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.pending.capacity() + self.message.as_ref().map_or(0, |m| m.data.capacity())
    }

    /// Reads until one message or control frame is complete. `Ready(None)`: the client
    /// closed the connection between frames. Cancel-safe: all state is in `self`.
    pub(crate) fn poll_next<R: AsyncRead + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut R,
    ) -> Poll<Option<Result<Incoming, ReadError>>> {
        loop {
            if !self.pending.is_empty() {
                let pending = std::mem::take(&mut self.pending);
                let mut at = 0;
                let mut found = None;
                while at < pending.len() {
                    match self.step(&pending[at..]) {
                        Ok((0, _)) => break,
                        Ok((used, event)) => {
                            at += used;
                            if event.is_some() {
                                found = event;
                                break;
                            }
                        }
                        Err(e) => return Poll::Ready(Some(Err(e))),
                    }
                }
                self.keep(pending, at);
                if let Some(event) = found {
                    return Poll::Ready(Some(Ok(event)));
                }
            }
            let read = with_read_buffer(|buf| {
                let mut rb = ReadBuf::new(buf);
                match Pin::new(&mut *io).poll_read(cx, &mut rb) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Err(e)) => Poll::Ready(Err(ReadError::Io(e))),
                    Poll::Ready(Ok(())) => Poll::Ready(self.take_read(rb.filled())),
                }
            });
            match read {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Ok(Read::Eof)) => {
                    if self.pending.is_empty() && self.message.is_none() {
                        return Poll::Ready(None);
                    }
                    let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
                    return Poll::Ready(Some(Err(ReadError::Io(eof))));
                }
                Poll::Ready(Ok(Read::Event(event))) => return Poll::Ready(Some(Ok(event))),
                Poll::Ready(Ok(Read::More)) => {}
            }
        }
    }

    /// Keeps what `pending` holds past `at`, freeing it when nothing is left.
    fn keep(&mut self, mut pending: Vec<u8>, at: usize) {
        if at < pending.len() {
            pending.drain(..at);
            // A large frame's room is not kept for the few bytes of the next one.
            if pending.capacity() > 2 * pending.len() + READ_CHUNK {
                pending.shrink_to_fit();
            }
            self.pending = pending;
        }
    }

    /// Parses what one read brought. With nothing pending, frames are parsed straight from
    /// the thread's buffer; only the bytes past the first event are copied to `pending`.
    fn take_read(&mut self, filled: &[u8]) -> Result<Read, ReadError> {
        if filled.is_empty() {
            return Ok(Read::Eof);
        }
        if !self.pending.is_empty() {
            self.pending.extend_from_slice(filled);
            return Ok(Read::More);
        }
        let mut at = 0;
        while at < filled.len() {
            let (used, event) = self.step(&filled[at..])?;
            if used == 0 {
                break;
            }
            at += used;
            if let Some(event) = event {
                self.pending.extend_from_slice(&filled[at..]);
                return Ok(Read::Event(event));
            }
        }
        self.pending.extend_from_slice(&filled[at..]);
        Ok(Read::More)
    }

    /// Parses one frame from the start of `data`: the bytes it used (0 when the frame is
    /// not complete yet) and the event it completes, if any. Limits are checked on the
    /// header alone, so a frame that will not be accepted is refused before its payload.
    fn step(&mut self, data: &[u8]) -> Result<(usize, Option<Incoming>), ReadError> {
        let Some(header) = self.header(data)? else {
            return Ok((0, None));
        };
        let end = header.len + header.payload;
        if data.len() < end {
            return Ok((0, None));
        }
        let event = self.frame(&header, &data[header.len..end])?;
        Ok((end, event))
    }

    /// The header at the start of `data`, checked against the protocol and the limits;
    /// `None` while it is incomplete.
    fn header(&self, data: &[u8]) -> Result<Option<Header>, ReadError> {
        let [b0, b1, ..] = *data else {
            return Ok(None);
        };
        let fin = b0 & 0x80 != 0;
        let opcode = b0 & 0x0f;
        if b0 & 0x70 != 0 {
            return Err(ReadError::Protocol("reserved bits set"));
        }
        if !matches!(opcode, CONTINUATION | TEXT | BINARY | CLOSE | PING | PONG) {
            return Err(ReadError::Protocol("reserved opcode"));
        }
        if b1 & 0x80 == 0 {
            return Err(ReadError::Protocol("unmasked client frame"));
        }
        let short = usize::from(b1 & 0x7f);
        if opcode >= CLOSE {
            if !fin {
                return Err(ReadError::Protocol("fragmented control frame"));
            }
            if short > 125 {
                return Err(ReadError::Protocol("control frame over 125 bytes"));
            }
        } else {
            match (opcode, &self.message) {
                (CONTINUATION, None) => {
                    return Err(ReadError::Protocol("continuation outside a message"))
                }
                (TEXT | BINARY, Some(_)) => {
                    return Err(ReadError::Protocol("new message inside a fragmented one"))
                }
                _ => {}
            }
        }
        let (payload, at) = match short {
            126 => match data.get(2..4) {
                Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
                None => return Ok(None),
            },
            127 => match data.get(2..10) {
                Some(b) => {
                    let mut len = [0u8; 8];
                    len.copy_from_slice(b);
                    let len = u64::from_be_bytes(len);
                    if len >> 63 != 0 {
                        return Err(ReadError::Protocol("length with its high bit set"));
                    }
                    (len, 10)
                }
                None => return Ok(None),
            },
            n => (n as u64, 2),
        };
        if opcode < CLOSE {
            let before = self.message.as_ref().map_or(0, |m| m.data.len()) as u64;
            if before.saturating_add(payload) > self.max_payload as u64 {
                return Err(ReadError::TooBig);
            }
        }
        let Some(mask) = data.get(at..at + 4) else {
            return Ok(None);
        };
        Ok(Some(Header {
            fin,
            opcode,
            mask: [mask[0], mask[1], mask[2], mask[3]],
            len: at + 4,
            // At most max_payload (data) or 125 (control): fits.
            payload: payload as usize,
        }))
    }

    /// Handles a complete frame.
    fn frame(&mut self, header: &Header, masked: &[u8]) -> Result<Option<Incoming>, ReadError> {
        match header.opcode {
            PING => Ok(Some(Incoming::Ping(unmasked(masked, header.mask)))),
            PONG => Ok(Some(Incoming::Pong)),
            CLOSE => {
                let payload = unmasked(masked, header.mask);
                check_close(&payload)?;
                Ok(Some(Incoming::Close(payload)))
            }
            CONTINUATION => {
                let Some(message) = self.message.as_mut() else {
                    return Err(ReadError::Protocol("continuation outside a message"));
                };
                let from = message.data.len();
                message.data.extend_from_slice(masked);
                unmask(&mut message.data[from..], header.mask);
                if message.text {
                    message.checked = check_utf8(&message.data, message.checked, header.fin)?;
                }
                if !header.fin {
                    return Ok(None);
                }
                let Some(message) = self.message.take() else {
                    return Ok(None);
                };
                let data = Bytes::from(message.data);
                Ok(Some(if message.text {
                    Incoming::Text(data)
                } else {
                    Incoming::Binary(data)
                }))
            }
            opcode => {
                let text = opcode == TEXT;
                if header.fin {
                    let data = unmasked(masked, header.mask);
                    if text {
                        std::str::from_utf8(&data).map_err(|_| ReadError::Utf8)?;
                        return Ok(Some(Incoming::Text(data)));
                    }
                    return Ok(Some(Incoming::Binary(data)));
                }
                let mut data = masked.to_vec();
                unmask(&mut data, header.mask);
                let checked = if text {
                    check_utf8(&data, 0, false)?
                } else {
                    0
                };
                self.message = Some(Box::new(Fragmented {
                    text,
                    data,
                    checked,
                }));
                Ok(None)
            }
        }
    }
}

/// What one read brought.
enum Read {
    Eof,
    Event(Incoming),
    More,
}

/// Checks `data[from..]` as UTF-8 (`from` is a character boundary); an incomplete sequence
/// at the end is fine unless the message is `complete`. Returns how far it is valid.
fn check_utf8(data: &[u8], from: usize, complete: bool) -> Result<usize, ReadError> {
    match std::str::from_utf8(&data[from..]) {
        Ok(_) => Ok(data.len()),
        Err(e) if e.error_len().is_none() && !complete => Ok(from + e.valid_up_to()),
        Err(_) => Err(ReadError::Utf8),
    }
}

/// A close frame's payload: empty, or a valid code and a UTF-8 reason.
fn check_close(payload: &[u8]) -> Result<(), ReadError> {
    match payload {
        [] => Ok(()),
        [_] => Err(ReadError::Protocol("close frame with a 1-byte payload")),
        [hi, lo, reason @ ..] => {
            if !CloseCode::from(u16::from_be_bytes([*hi, *lo])).is_allowed() {
                return Err(ReadError::Protocol("invalid close code"));
            }
            std::str::from_utf8(reason).map_err(|_| ReadError::Utf8)?;
            Ok(())
        }
    }
}

/// The payload unmasked into a buffer of its own.
fn unmasked(masked: &[u8], mask: [u8; 4]) -> Bytes {
    let mut data = masked.to_vec();
    unmask(&mut data, mask);
    Bytes::from(data)
}

/// Unmasks in place, eight bytes at a time (the mask repeats every four bytes; `data`
/// starts at the payload's first byte).
pub(crate) fn unmask(data: &mut [u8], mask: [u8; 4]) {
    let word = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= mask[i & 3];
    }
}

#[cfg(test)]
#[path = "wsread_tests.rs"]
mod tests;
