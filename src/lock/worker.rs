//! With several servers, each has a thread of its own that sends it the requests one after the
//! other, so that they reach all servers at once. The thread starts with the first request and
//! serves the later ones (extensions, the release): a run sends at least two, and starting a
//! thread cost more than a request to a server on the same network.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;

use super::Server;

type Job = Box<dyn FnOnce(&mut Server) + Send>;

pub struct Worker {
    jobs: mpsc::Sender<Job>,
    /// Requests given to the thread and not yet answered.
    unanswered: Arc<AtomicUsize>,
}

impl Worker {
    /// Starts the thread that talks to `server`; it connects at once, while the caller gets
    /// on with other work, and ends when the worker is dropped, after the request in flight.
    pub fn start(mut server: Server) -> std::io::Result<Worker> {
        let (jobs, inbox) = mpsc::channel::<Job>();
        thread::Builder::new().name("redis".into()).spawn(move || {
            server.warm_up();
            for job in inbox {
                job(&mut server);
            }
        })?;
        Ok(Worker {
            jobs,
            unanswered: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Whether an earlier request is still unanswered (a slow or frozen server).
    pub fn busy(&self) -> bool {
        self.unanswered.load(Ordering::Acquire) > 0
    }

    /// Runs `request` on the thread, after the requests before it, and hands its result to
    /// `answer`. False if the thread is gone.
    pub fn submit<R: 'static>(
        &self,
        request: impl FnOnce(&mut Server) -> R + Send + 'static,
        answer: impl FnOnce(R) + Send + 'static,
    ) -> bool {
        self.unanswered.fetch_add(1, Ordering::AcqRel);
        let unanswered = self.unanswered.clone();
        let job = move |server: &mut Server| {
            let result = request(server);
            // Before the answer: whoever gets it may send the next request at once.
            unanswered.fetch_sub(1, Ordering::AcqRel);
            answer(result);
        };
        self.jobs.send(Box::new(job)).is_ok()
    }
}
