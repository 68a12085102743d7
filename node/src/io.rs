//! Connections handed over by Node: adopted file descriptors, plaintext bridges for TLS
//! sockets, and HTTP requests.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::FromRawFd;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use switchboard::bindings::http::RequestHead;

/// Builds a request head from what Node parsed (`req.method`, `req.url`, `req.rawHeaders`).
pub fn request_head(
    method: &str,
    url: &str,
    raw_headers: &[String],
    address: &str,
    port: u32,
) -> napi::Result<RequestHead> {
    let invalid = |what: &str| napi::Error::from_reason(format!("invalid request: {what}"));
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| invalid("method"))?;
    let uri = url.parse::<http::Uri>().map_err(|_| invalid("url"))?;
    let mut headers = HeaderMap::new();
    for pair in raw_headers.chunks(2) {
        if let [name, value] = pair {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.append(n, v);
            }
        }
    }
    let ip: IpAddr = address
        .trim_start_matches("::ffff:")
        .parse()
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    Ok(RequestHead {
        method,
        uri,
        headers,
        peer: SocketAddr::new(ip, u16::try_from(port).unwrap_or(0)),
    })
}

/// Duplicates Node's socket descriptor into one the engine owns (`F_DUPFD_CLOEXEC`, so it
/// never leaks into child processes) and checks that it is a TCP socket.
pub fn adopt_fd(fd: i32) -> napi::Result<std::net::TcpStream> {
    if fd < 0 {
        return Err(napi::Error::from_reason("socket has no file descriptor"));
    }
    // SAFETY: fcntl on any integer is memory-safe; an invalid fd yields -1.
    let owned = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if owned < 0 {
        return Err(napi::Error::from_reason(format!(
            "cannot duplicate socket descriptor {fd}: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: `owned` is a fresh descriptor that nothing else owns.
    let stream = unsafe { std::net::TcpStream::from_raw_fd(owned) };
    if stream.peer_addr().is_err() {
        return Err(napi::Error::from_reason(
            "descriptor is not a connected TCP socket",
        ));
    }
    stream
        .set_nonblocking(true)
        .map_err(|e| napi::Error::from_reason(format!("cannot make socket non-blocking: {e}")))?;
    Ok(stream)
}

/// Bytes Node had already read past the request head.
pub fn buffered(head: Option<&[u8]>) -> Bytes {
    head.map_or_else(Bytes::new, Bytes::copy_from_slice)
}
