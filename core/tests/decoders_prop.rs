//! Property tests over every decoder a client's bytes reach (stable Rust, part of
//! `cargo test`; the coverage-guided fuzz targets in `fuzz/` run the same entry points with
//! `make fuzz`): arbitrary input never panics, and what the engine encodes decodes back to
//! the same thing.

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::{json, Value};
use switchboard::bindings::http::query_param;
use switchboard::testing;
use switchboard::testing::protocol::engineio::{self, Packet as EioPacket};
use switchboard::testing::protocol::socketio::{self, PacketKind};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 1024,
        ..ProptestConfig::default()
    }
}

/// An Engine.IO packet a client may send (no `open`), as text or binary.
fn eio_packet() -> impl Strategy<Value = EioPacket> {
    let text = "[^\u{1e}]{0,40}".prop_map(Bytes::from);
    prop_oneof![
        Just(EioPacket::Close),
        text.clone().prop_map(EioPacket::Ping),
        text.clone().prop_map(EioPacket::Pong),
        text.prop_map(EioPacket::Message),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(|b| EioPacket::Binary(b.into())),
        Just(EioPacket::Upgrade),
        Just(EioPacket::Noop),
    ]
}

/// A JSON value of a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// What a browser's `encodeURIComponent` does to a query value.
fn encode_component(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The reference query decoding (WHATWG URL): `+` is a space, `%` followed by two hex
/// digits is that byte, any other `%` stays.
fn reference_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && b[i + 1].is_ascii_hexdigit()
            && b[i + 2].is_ascii_hexdigit()
        {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("00");
            out.push(u8::from_str_radix(hex, 16).unwrap_or(0));
            i += 3;
        } else {
            out.push(if b[i] == b'+' { b' ' } else { b[i] });
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn engineio_decoders_take_any_bytes(data in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = testing::engineio_decode(&data);
    }

    #[test]
    fn engineio_packets_round_trip(packets in prop::collection::vec(eio_packet(), 1..6)) {
        for p in &packets {
            if !matches!(p, EioPacket::Binary(_)) {
                prop_assert_eq!(&EioPacket::decode_text(p.encode_text()).unwrap(), p);
            }
        }
        let entries: Vec<Bytes> = packets.iter().map(EioPacket::encode_text).collect();
        let body = engineio::encode_payload(entries.iter().map(|e| &e[..]));
        prop_assert_eq!(engineio::decode_payload(body).unwrap(), packets);
    }

    #[test]
    fn socketio_decoder_takes_any_text(text in ".{0,200}", n in 0usize..4) {
        let attachments = vec![Bytes::from_static(b"\x00\x01"); n];
        let _ = testing::socketio_decode(&text, &attachments);
    }

    #[test]
    fn socketio_decoder_takes_packet_shaped_text(
        kind in 0u8..7,
        count in "[0-9]{0,4}-?",
        nsp in "(/[a-z]{0,5},)?",
        id in "[0-9]{0,22}",
        data in json_value(),
    ) {
        let text = format!("{kind}{count}{nsp}{id}{data}");
        let _ = testing::socketio_decode(&text, &[Bytes::new()]);
    }

    #[test]
    fn socketio_packets_round_trip(
        binary in any::<bool>(),
        nsp in prop_oneof![Just("/".to_owned()), "/[a-z]{1,8}"],
        id in proptest::option::of(any::<u64>()),
        event in "[a-zA-Z]{1,10}",
        args in prop::collection::vec(json_value(), 0..4),
        n in 1usize..4,
    ) {
        let kind = if binary { PacketKind::BinaryEvent } else { PacketKind::Event };
        let mut data = vec![Value::String(event)];
        data.extend(args);
        let attachments: Vec<Bytes> = (0..n).map(|i| Bytes::from(vec![i as u8; i])).collect();
        if binary {
            data.extend((0..n).map(socketio::placeholder));
        }
        let count = if binary { n } else { 0 };
        let data = Value::Array(data);
        let mut wire = Vec::new();
        socketio::write_packet(&mut wire, kind, &nsp, id, count, Some(&data));
        let text = String::from_utf8(wire).unwrap();
        let (packet, dispatched) = testing::socketio_decode(&text, &attachments).unwrap();
        prop_assert!(dispatched, "{}", text);
        prop_assert_eq!(packet.kind, kind);
        prop_assert_eq!(packet.nsp, nsp);
        prop_assert_eq!(packet.id, id);
        prop_assert_eq!(packet.attachments, count);
        prop_assert_eq!(packet.data, Some(data));
    }

    #[test]
    fn binary_placeholders_beyond_the_attachments_are_refused(n in 1usize..4, extra in 0usize..3) {
        let text = format!(
            "5{n}-[\"e\",{}]",
            socketio::placeholder(n + extra)
        );
        let attachments = vec![Bytes::new(); n];
        let (_, dispatched) = testing::socketio_decode(&text, &attachments).unwrap();
        prop_assert!(!dispatched);
    }

    #[test]
    fn yjs_decoder_takes_any_bytes(data in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = testing::yjs_decode(&data);
        let _ = testing::yjs_apply(&data);
    }

    #[test]
    fn token_extraction_takes_any_input(
        auth in proptest::option::of(".{0,80}"),
        header in prop::collection::vec(any::<u8>(), 0..80),
        query in ".{0,80}",
    ) {
        let _ = testing::token_verify(auth.as_deref(), &header, &query);
    }

    #[test]
    fn a_valid_token_is_found_wherever_it_is(sub in "[a-zA-Z0-9]{1,12}", place in 0u8..3) {
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            // `exp` is required by default: an hour ahead.
            &json!({ "sub": sub, "exp": jsonwebtoken::get_current_timestamp() + 3600 }),
            &jsonwebtoken::EncodingKey::from_secret(testing::FUZZ_SECRET.as_bytes()),
        ).unwrap();
        let user = match place {
            0 => testing::token_verify(Some(&token), b"", ""),
            1 => testing::token_verify(None, format!("Bearer {token}").as_bytes(), ""),
            _ => testing::token_verify(None, b"", &format!("EIO=4&token={}", encode_component(&token))),
        };
        prop_assert_eq!(user.unwrap().id, sub);
    }

    #[test]
    fn request_heads_take_any_input(target in ".{0,120}", headers in ".{0,200}") {
        let _ = testing::http_head(&target, &headers);
    }

    #[test]
    fn query_values_decode_as_browsers_encode_them(value in ".{0,40}") {
        let query = format!("EIO=4&token={}&t=x", encode_component(&value));
        prop_assert_eq!(query_param(&query, "token"), Some(value));
    }

    #[test]
    fn query_decoding_matches_the_url_standard(raw in "[a-zA-Z0-9%+=& -]{0,40}") {
        let query = format!("v={}", raw.replace('&', ""));
        let expected = reference_decode(&query[2..]);
        prop_assert_eq!(query_param(&query, "v"), Some(expected), "{}", query);
    }
}
