//! The DNS64 server: UDP and TCP listeners, forwarding to the upstreams, and
//! synthesis through `xlat64-dns64`.

use crate::config::Dns64Section;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Counters of the DNS64 server.
#[derive(Debug, Default)]
pub struct Dns64Counters {}

impl Dns64Counters {
    /// Adds every counter (zeros included) to `out`, names prefixed `dns64_`.
    pub fn snapshot(&self, out: &mut BTreeMap<String, u64>) {
        let _ = out;
        todo!()
    }
}

/// A bound DNS64 server, ready to run.
pub struct Dns64Server {
    counters: Arc<Dns64Counters>,
}

impl Dns64Server {
    /// Binds every listen address (UDP and TCP). The error names the address and cause.
    pub async fn bind(section: &Dns64Section) -> Result<Self, String> {
        let _ = section;
        todo!()
    }

    /// The server's counters.
    pub fn counters(&self) -> Arc<Dns64Counters> {
        self.counters.clone()
    }

    /// Serves until `shutdown` is cancelled.
    pub async fn run(self, shutdown: CancellationToken) {
        let _ = shutdown;
        todo!()
    }
}
