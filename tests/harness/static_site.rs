//! A second origin for pages that embed Opsdeck (the chat client's example page): warp's
//! static file server for one folder on its own loopback port, stopped when dropped.

use std::net::SocketAddr;
use std::path::Path;

use tokio::task::JoinHandle;

pub struct StaticSite {
    pub addr: SocketAddr,
    server: JoinHandle<()>,
}

impl StaticSite {
    /// Serves the files under `dir` on 127.0.0.1 and a port of its own.
    pub async fn start(dir: &Path) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let files = warp::fs::dir(dir.to_owned());
        let server = tokio::spawn(warp::serve(files).incoming(listener).run());
        Ok(Self { addr, server })
    }

    /// `http://127.0.0.1:<port>`: the Origin its pages send.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for StaticSite {
    fn drop(&mut self) {
        self.server.abort();
    }
}
