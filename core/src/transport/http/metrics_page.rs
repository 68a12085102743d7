//! `/metrics`: the engine's counters in Prometheus text, with the services' own.

use bytes::Bytes;
use http::header::{self, HeaderValue};

use super::{HttpApp, HttpReply};

impl<D> HttpApp<D> {
    /// The `/metrics` answer.
    pub(super) fn metrics_page(&self) -> HttpReply {
        let mut text = self.metrics.render();
        for (_, service) in &self.services {
            service.render_metrics(&mut text);
        }
        // Tasks alive on the engine's runtime (this request's included): back at its
        // idle value once connections are gone, so leaked tasks, and the timers they
        // hold, show here.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            text.push_str(&format!(
                "# HELP switchboard_runtime_tasks Tasks alive on the engine's runtime.\n\
                     # TYPE switchboard_runtime_tasks gauge\n\
                     switchboard_runtime_tasks {}\n",
                runtime.metrics().num_alive_tasks()
            ));
        }
        let mut r = HttpReply::text(Bytes::from(text));
        r.headers = vec![(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )];
        r
    }
}
