//! With several servers, when any of them is reached over TLS (otherwise one thread talks to
//! them all, see `mux.rs`), each has a thread of its own that sends it the requests one after the
//! other, so that they reach all servers at once. The threads start with the lock and serve all
//! its requests (acquire, extensions, release): starting a thread per request cost more than
//! the request itself to a server on the same network.

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
    /// Starts a thread per server; each connects at once, while the caller gets on with other
    /// work, and ends when its worker is dropped, after the request in flight. The caller starts
    /// only the first thread, which starts the others: requests can be given to every worker at
    /// once, and wait for their thread.
    pub fn start_all(servers: Vec<Server>) -> Vec<Result<Worker, String>> {
        let (workers, inboxes): (Vec<_>, Vec<_>) = servers
            .iter()
            .map(|_| {
                let (jobs, inbox) = mpsc::channel::<Job>();
                let worker = Worker {
                    jobs,
                    unanswered: Arc::new(AtomicUsize::new(0)),
                };
                (worker, inbox)
            })
            .unzip();
        let mut work = servers.into_iter().zip(inboxes);
        let (first, inbox) = work.next().expect("several servers");
        let started = thread::Builder::new().name("redis".into()).spawn(move || {
            // A thread that cannot start drops its inbox: requests to it then fail at once.
            for (server, inbox) in work {
                let _ = thread::Builder::new()
                    .name("redis".into())
                    .spawn(move || serve(server, inbox));
            }
            serve(first, inbox);
        });
        match started {
            Ok(_) => workers.into_iter().map(Ok).collect(),
            Err(e) => workers
                .iter()
                .map(|_| Err(format!("cannot start a thread: {e}")))
                .collect(),
        }
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

fn serve(mut server: Server, inbox: mpsc::Receiver<Job>) {
    server.warm_up();
    for job in inbox {
        job(&mut server);
    }
}
