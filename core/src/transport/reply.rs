//! What the HTTP front door answers: Engine.IO's error answers and the reply type every
//! endpoint builds, independent of the HTTP library that writes it (hyper, or a host).

use std::convert::Infallible;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};

/// An Engine.IO error answer, with the codes the protocol defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EioError {
    /// `0`: the transport is missing or not one we serve.
    UnknownTransport,
    /// `1`: no session has this id (or it lives on another node).
    UnknownSid,
    /// `2`: a handshake must be a GET.
    BadHandshakeMethod,
    /// `3`: the request does not fit the session's state.
    BadRequest,
    /// `4`: the origin is not allowed.
    Forbidden,
    /// `5`: not Engine.IO v4.
    UnsupportedProtocolVersion,
}

impl EioError {
    fn parts(self) -> (StatusCode, u8, &'static str) {
        match self {
            EioError::UnknownTransport => (StatusCode::BAD_REQUEST, 0, "Transport unknown"),
            EioError::UnknownSid => (StatusCode::BAD_REQUEST, 1, "Session ID unknown"),
            EioError::BadHandshakeMethod => (StatusCode::BAD_REQUEST, 2, "Bad handshake method"),
            EioError::BadRequest => (StatusCode::BAD_REQUEST, 3, "Bad request"),
            EioError::Forbidden => (StatusCode::FORBIDDEN, 4, "Forbidden"),
            EioError::UnsupportedProtocolVersion => {
                (StatusCode::BAD_REQUEST, 5, "Unsupported protocol version")
            }
        }
    }

    /// The JSON answer `{"code":N,"message":"…"}`.
    pub fn reply(self) -> HttpReply {
        let (status, code, message) = self.parts();
        HttpReply::json(
            status,
            format!(r#"{{"code":{code},"message":"{message}"}}"#),
        )
    }
}

/// A streamed body (server-sent events): chunks as they come, the end when it ends.
pub struct BodyStream(pub std::pin::Pin<Box<dyn futures_util::Stream<Item = Bytes> + Send>>);

impl std::fmt::Debug for BodyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BodyStream(..)")
    }
}

/// A complete HTTP answer, independent of the HTTP library that sends it.
#[derive(Debug)]
pub struct HttpReply {
    /// The status code.
    pub status: StatusCode,
    /// Extra headers (content type included).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The body (sent before `stream`, if both are set).
    pub body: Bytes,
    /// A body that keeps coming (SSE); `None` for ordinary answers.
    pub stream: Option<BodyStream>,
}

impl HttpReply {
    /// A 200 `text/plain` answer.
    pub fn text(body: Bytes) -> Self {
        HttpReply {
            status: StatusCode::OK,
            headers: vec![(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=UTF-8"),
            )],
            body,
            stream: None,
        }
    }

    /// A JSON answer.
    pub fn json(status: StatusCode, body: impl Into<Bytes>) -> Self {
        HttpReply {
            status,
            headers: vec![(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body: body.into(),
            stream: None,
        }
    }

    /// A status with an empty body.
    pub fn empty(status: StatusCode) -> Self {
        HttpReply {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
            stream: None,
        }
    }

    /// The answer to a POST over `maxPayload`.
    pub fn payload_too_large() -> Self {
        HttpReply::json(
            StatusCode::PAYLOAD_TOO_LARGE,
            &br#"{"code":3,"message":"Payload too large"}"#[..],
        )
    }

    /// The answer in HTTP/1.1 wire form (closing the connection after it).
    pub fn to_http1_bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\n",
            self.status.as_u16(),
            self.status.canonical_reason().unwrap_or("")
        )
        .into_bytes();
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(
            format!(
                "Content-Length: {}\r\nConnection: close\r\n\r\n",
                self.body.len()
            )
            .as_bytes(),
        );
        out.extend_from_slice(&self.body);
        out
    }

    /// An answer whose body is streamed.
    pub fn stream(
        status: StatusCode,
        stream: std::pin::Pin<Box<dyn futures_util::Stream<Item = Bytes> + Send>>,
    ) -> Self {
        HttpReply {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
            stream: Some(BodyStream(stream)),
        }
    }

    pub(crate) fn into_response(self) -> Response<ResponseBody> {
        use futures_util::StreamExt;
        let body = match self.stream {
            None => Full::new(self.body).boxed_unsync(),
            Some(BodyStream(stream)) => {
                let frames =
                    stream.map(|chunk| Ok::<_, Infallible>(hyper::body::Frame::data(chunk)));
                BodyExt::boxed_unsync(http_body_util::StreamBody::new(frames))
            }
        };
        let mut response = Response::new(body);
        *response.status_mut() = self.status;
        response.headers_mut().extend(self.headers);
        response
    }
}

/// The body type of hyper answers: complete or streamed.
pub(crate) type ResponseBody = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;
