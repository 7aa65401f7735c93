//! A remote cache shared by machines with no common disk: the cache's entries
//! under their keys on an HTTP server that takes GET and PUT, the protocol of
//! Bazel's and sccache's HTTP caches (nginx with its WebDAV PUT method is
//! enough). `GET <url>/<key>.json` reads an entry, `PUT` writes one. An entry
//! is the same bytes as in the local cache (its header holds its key and the
//! SHA-256 of its body), so `cache.rs` verifies what comes back exactly as it
//! verifies a local file: a damaged or truncated remote entry is reported and
//! recomputed, never served.
//!
//! A remote that is down or slow must not stop a run: a request that fails or
//! passes its timeout is noted (`problems`), the remote is not asked again in
//! this run, and the run trains what it lacks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{ensure, Result};

/// What a fetch found.
pub enum Fetched {
    Found(Vec<u8>),
    /// The server has no entry of that key (404).
    Absent,
    /// The request failed (noted in `problems`).
    Failed,
}

pub struct Remote {
    /// Ends with '/'.
    base: String,
    write: bool,
    agent: ureq::Agent,
    /// Set at the first failed request: the rest of the run does without.
    gave_up: AtomicBool,
    problems: Mutex<Vec<String>>,
}

impl Remote {
    /// `url`: http:// or https://, the directory the entries live in.
    /// `write`: also store every entry this run computes. `timeout`: for
    /// each request as a whole (connecting, sending, receiving).
    pub fn new(url: &str, write: bool, timeout: Duration) -> Result<Remote> {
        ensure!(
            url.starts_with("http://") || url.starts_with("https://"),
            "--remote-cache {url:?}: expected an http:// or https:// URL"
        );
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .timeout_connect(Some(timeout.min(Duration::from_secs(10))))
            // A status is an answer to read, not an error: 404 is a miss.
            .http_status_as_error(false)
            .build()
            .into();
        let base = if url.ends_with('/') { url.to_string() } else { format!("{url}/") };
        Ok(Remote { base, write, agent, gave_up: AtomicBool::new(false), problems: Mutex::new(Vec::new()) })
    }

    pub fn url(&self, key: &str) -> String {
        format!("{}{key}.json", self.base)
    }

    /// The entry of `key`, if the server has one.
    pub fn fetch(&self, key: &str) -> Fetched {
        if self.gave_up.load(Ordering::Relaxed) {
            return Fetched::Failed;
        }
        let url = self.url(key);
        let mut response = match self.agent.get(&url).call() {
            Ok(r) => r,
            Err(e) => return self.fail(format!("GET {url}: {e}")),
        };
        match response.status().as_u16() {
            200 => {}
            404 => return Fetched::Absent,
            status => return self.fail(format!("GET {url}: the server answered {status}")),
        }
        // Entries are as large as a job's log (hundreds of MB for the largest).
        match response.body_mut().with_config().limit(u64::MAX).read_to_vec() {
            Ok(bytes) => Fetched::Found(bytes),
            Err(e) => self.fail(format!("GET {url}: reading the entry: {e}")),
        }
    }

    /// Stores `bytes` (a whole entry) under `key`, if this run writes; a
    /// failure is noted, not an error: the entry is in the local cache.
    pub fn store(&self, key: &str, bytes: &[u8]) {
        if !self.write || self.gave_up.load(Ordering::Relaxed) {
            return;
        }
        let url = self.url(key);
        match self.agent.put(&url).send(bytes) {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => {
                self.fail(format!("PUT {url}: the server answered {} (does it accept PUT?)", r.status().as_u16()));
            }
            Err(e) => {
                self.fail(format!("PUT {url}: {e}"));
            }
        }
    }

    /// Notes one more problem (a damaged entry), without giving up.
    pub fn note(&self, what: String) {
        self.problems.lock().expect("not poisoned").push(what);
    }

    fn fail(&self, what: String) -> Fetched {
        let first = !self.gave_up.swap(true, Ordering::Relaxed);
        let mut problems = self.problems.lock().expect("not poisoned");
        problems.push(if first {
            format!("{what}; the remote cache is not asked again in this run, which trains what it lacks")
        } else {
            what
        });
        Fetched::Failed
    }

    /// The problems noted since the last call, in order.
    pub fn take_problems(&self) -> Vec<String> {
        std::mem::take(&mut *self.problems.lock().expect("not poisoned"))
    }
}
