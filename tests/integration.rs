//! One test binary for everything that needs a real `redis-server`.

mod support;

mod acl;
mod bad_input;
mod bench;
mod busy;
mod cluster;
mod connection;
mod docs;
mod events;
mod failover;
mod faults;
mod history;
mod hostile;
mod layers;
mod lease;
mod limits;
mod lost;
mod metrics;
mod names;
mod operators;
mod pings;
mod quorum;
mod run;
mod seams;
mod secrets;
mod semaphore;
mod sentinel;
mod several;
mod shared;
mod sharing;
mod signals;
mod steps;
mod waiting;
