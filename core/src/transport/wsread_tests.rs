use std::collections::VecDeque;

use super::*;

/// A client frame, masked with `mask`, its length in the shortest form.
fn frame(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut wire = vec![(u8::from(fin) << 7) | opcode];
    match payload.len() {
        n if n < 126 => wire.push(0x80 | n as u8),
        n if n <= 0xffff => {
            wire.push(0x80 | 126);
            wire.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            wire.push(0x80 | 127);
            wire.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    wire.extend_from_slice(&mask);
    wire.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    wire
}

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn text(payload: &[u8]) -> Vec<u8> {
    frame(true, TEXT, payload, MASK)
}

/// A socket that hands out `chunks` one per read, then is idle (or at its end).
struct Chunks {
    chunks: VecDeque<Vec<u8>>,
    eof: bool,
}

impl AsyncRead for Chunks {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.chunks.pop_front() {
            Some(mut chunk) => {
                // As a socket would: what fits now, the rest on the next read.
                let n = chunk.len().min(buf.remaining());
                buf.put_slice(&chunk[..n]);
                if n < chunk.len() {
                    self.chunks.push_front(chunk.split_off(n));
                }
                Poll::Ready(Ok(()))
            }
            None if self.eof => Poll::Ready(Ok(())),
            None => Poll::Pending,
        }
    }
}

/// Everything `reader` makes of `chunks`, up to the first error; the socket stays idle after.
fn read_all(reader: &mut FrameReader, chunks: Vec<Vec<u8>>) -> Vec<Result<Incoming, ReadError>> {
    let mut io = Chunks {
        chunks: chunks.into(),
        eof: false,
    };
    let waker = futures_util::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut out = Vec::new();
    loop {
        match reader.poll_next(&mut cx, &mut io) {
            Poll::Ready(Some(Ok(event))) => out.push(Ok(event)),
            Poll::Ready(Some(Err(e))) => {
                out.push(Err(e));
                return out;
            }
            Poll::Ready(None) | Poll::Pending => return out,
        }
    }
}

fn reader() -> FrameReader {
    FrameReader::new(&[], 100_000)
}

fn events(chunks: Vec<Vec<u8>>) -> Vec<Incoming> {
    read_all(&mut reader(), chunks)
        .into_iter()
        .map(|r| r.expect("no error"))
        .collect()
}

fn error_code(chunks: Vec<Vec<u8>>) -> Option<u16> {
    let out = read_all(&mut reader(), chunks);
    match out.last() {
        Some(Err(e)) => e.close_code(),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn a_text_frame_is_a_text_message() {
    assert_eq!(
        events(vec![text(b"4hello")]),
        vec![Incoming::Text(Bytes::from_static(b"4hello"))]
    );
}

#[test]
fn frames_split_at_every_byte_give_the_same_messages() {
    // 7-bit, 16-bit and 64-bit lengths.
    for size in [5usize, 200, 70_000] {
        let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let mut wire = frame(true, BINARY, &payload, MASK);
        wire.extend(text(b"next"));
        let expected = vec![
            Incoming::Binary(Bytes::from(payload.clone())),
            Incoming::Text(Bytes::from_static(b"next")),
        ];
        let header = if size < 126 {
            6
        } else if size <= 0xffff {
            8
        } else {
            14
        };
        // Every split inside the header and around the payload's ends.
        let splits = (1..=header + 1).chain([wire.len() - 10, wire.len() - 1]);
        for at in splits {
            let chunks = vec![wire[..at].to_vec(), wire[at..].to_vec()];
            assert_eq!(events(chunks), expected, "size {size}, split at {at}");
        }
        if size < 1000 {
            let bytes = wire.iter().map(|b| vec![*b]).collect();
            assert_eq!(events(bytes), expected, "size {size}, byte by byte");
        }
    }
}

#[test]
fn several_frames_in_one_read_come_out_one_by_one() {
    let mut wire = text(b"a");
    wire.extend(frame(true, PING, b"p", MASK));
    wire.extend(text(b"b"));
    let mut r = reader();
    let out = read_all(&mut r, vec![wire]);
    let out: Vec<_> = out.into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(
        out,
        vec![
            Incoming::Text(Bytes::from_static(b"a")),
            Incoming::Ping(Bytes::from_static(b"p")),
            Incoming::Text(Bytes::from_static(b"b")),
        ]
    );
    assert_eq!(r.held(), 0, "nothing kept once parsed");
}

#[test]
fn a_fragmented_text_with_a_character_split_and_a_ping_in_between() {
    let e_acute = "é".as_bytes(); // c3 a9
    let mut wire = frame(false, TEXT, &[b'4', e_acute[0]], MASK);
    wire.extend(frame(true, PING, b"x", [1, 2, 3, 4]));
    wire.extend(frame(
        false,
        CONTINUATION,
        &[e_acute[1], b'!'],
        [9, 8, 7, 6],
    ));
    wire.extend(frame(true, PONG, b"", MASK));
    wire.extend(frame(true, CONTINUATION, b"end", [5, 5, 5, 5]));
    let expected = vec![
        Incoming::Ping(Bytes::from_static(b"x")),
        Incoming::Pong,
        Incoming::Text(Bytes::from("4é!end")),
    ];
    assert_eq!(events(vec![wire.clone()]), expected);
    let bytes = wire.iter().map(|b| vec![*b]).collect();
    assert_eq!(events(bytes), expected);
}

#[test]
fn an_idle_reader_holds_nothing() {
    let mut r = reader();
    let half = text(b"4partial");
    let out = read_all(&mut r, vec![half[..5].to_vec()]);
    assert!(out.is_empty());
    assert!(r.held() > 0 && r.held() < 64, "a partial frame's few bytes");
    let out = read_all(&mut r, vec![half[5..].to_vec()]);
    assert_eq!(out.len(), 1);
    assert_eq!(r.held(), 0, "the frame done, its bytes are freed");
}

#[test]
fn a_header_sent_byte_by_byte_holds_a_few_bytes() {
    let wire = frame(true, BINARY, &[0u8; 70_000], MASK);
    let mut r = reader();
    for b in &wire[..14] {
        assert!(read_all(&mut r, vec![vec![*b]]).is_empty());
        assert!(r.held() <= 64, "held {}", r.held());
    }
}

#[test]
fn a_huge_declared_length_is_refused_before_its_payload() {
    let mut wire = vec![0x82, 0x80 | 127];
    wire.extend_from_slice(&(1u64 << 40).to_be_bytes());
    assert_eq!(error_code(vec![wire]), Some(1009));
    // Before the mask arrives, too.
    let mut wire = vec![0x82, 0x80 | 126];
    wire.extend_from_slice(&60_000u16.to_be_bytes());
    let mut r = FrameReader::new(&[], 1000);
    let out = read_all(&mut r, vec![wire]);
    assert_eq!(out[0].as_ref().unwrap_err().close_code(), Some(1009));
    // A length with its top bit set is a protocol error.
    let mut wire = vec![0x82, 0x80 | 127];
    wire.extend_from_slice(&u64::MAX.to_be_bytes());
    assert_eq!(error_code(vec![wire]), Some(1002));
}

#[test]
fn fragments_over_the_limit_together_are_refused() {
    let mut r = FrameReader::new(&[], 100);
    let mut wire = Vec::new();
    for _ in 0..3 {
        wire.extend(frame(
            false,
            if wire.is_empty() {
                BINARY
            } else {
                CONTINUATION
            },
            &[0; 40],
            MASK,
        ));
    }
    let out = read_all(&mut r, vec![wire]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].as_ref().unwrap_err().close_code(), Some(1009));
}

#[test]
fn protocol_violations_close_with_1002() {
    let unmasked = vec![0x81, 0x01, b'x'];
    assert_eq!(error_code(vec![unmasked]), Some(1002));
    let mut rsv = text(b"x");
    rsv[0] |= 0x40;
    assert_eq!(error_code(vec![rsv]), Some(1002));
    for opcode in [3u8, 7, 0xb, 0xf] {
        assert_eq!(error_code(vec![frame(true, opcode, b"", MASK)]), Some(1002));
    }
    assert_eq!(
        error_code(vec![frame(true, PING, &[0; 126], MASK)]),
        Some(1002)
    );
    assert_eq!(error_code(vec![frame(false, PING, b"", MASK)]), Some(1002));
    assert_eq!(
        error_code(vec![frame(true, CONTINUATION, b"x", MASK)]),
        Some(1002)
    );
    let mut twice = frame(false, TEXT, b"a", MASK);
    twice.extend(text(b"b"));
    assert_eq!(error_code(vec![twice]), Some(1002));
}

#[test]
fn invalid_utf8_closes_with_1007() {
    assert_eq!(error_code(vec![text(&[b'4', 0xff])]), Some(1007));
    // An incomplete sequence at the end of a complete message.
    assert_eq!(error_code(vec![text(&[b'4', 0xc3])]), Some(1007));
    // In a fragment, before the message ends (fail fast).
    let out = read_all(
        &mut reader(),
        vec![frame(false, TEXT, &[0xce, 0xba, 0xff], MASK)],
    );
    assert_eq!(out[0].as_ref().unwrap_err().close_code(), Some(1007));
    // Binary messages are not checked.
    assert_eq!(
        events(vec![frame(true, BINARY, &[0xff], MASK)]),
        vec![Incoming::Binary(Bytes::from_static(&[0xff]))]
    );
}

#[test]
fn close_frames_are_checked() {
    let close = |payload: &[u8]| frame(true, CLOSE, payload, MASK);
    assert_eq!(
        events(vec![close(b"")]),
        vec![Incoming::Close(Bytes::new())]
    );
    let mut ok = 1000u16.to_be_bytes().to_vec();
    ok.extend_from_slice("bye é".as_bytes());
    assert_eq!(
        events(vec![close(&ok)]),
        vec![Incoming::Close(Bytes::from(ok))]
    );
    assert_eq!(error_code(vec![close(&[0x03])]), Some(1002));
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 2999, 5000] {
        assert_eq!(
            error_code(vec![close(&code.to_be_bytes())]),
            Some(1002),
            "{code}"
        );
    }
    let mut bad_reason = 1000u16.to_be_bytes().to_vec();
    bad_reason.push(0xff);
    assert_eq!(error_code(vec![close(&bad_reason)]), Some(1007));
}

#[test]
fn the_end_of_the_stream_between_frames_is_none_and_inside_one_an_error() {
    let waker = futures_util::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut io = Chunks {
        chunks: VecDeque::new(),
        eof: true,
    };
    assert!(matches!(
        reader().poll_next(&mut cx, &mut io),
        Poll::Ready(None)
    ));
    let mut io = Chunks {
        chunks: vec![text(b"abc")[..3].to_vec()].into(),
        eof: true,
    };
    let r = reader().poll_next(&mut cx, &mut io);
    assert!(matches!(r, Poll::Ready(Some(Err(ReadError::Io(_))))));
}

#[test]
fn the_prefix_is_read_first() {
    let mut wire = text(b"first");
    let rest = wire.split_off(4);
    let mut r = FrameReader::new(&wire, 1000);
    let out = read_all(&mut r, vec![rest]);
    assert_eq!(
        out[0].as_ref().unwrap(),
        &Incoming::Text(Bytes::from_static(b"first"))
    );
}

#[test]
fn unmasking_word_at_a_time_matches_byte_by_byte() {
    for len in 0..40 {
        let data: Vec<u8> = (0..len as u8).collect();
        let mut fast = data.clone();
        unmask(&mut fast, MASK);
        let slow: Vec<u8> = data
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ MASK[i % 4])
            .collect();
        assert_eq!(fast, slow, "{len}");
    }
}
