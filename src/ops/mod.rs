//! The operators' commands: `status`, `list` and `release` look at (and break) locks that other
//! runs hold; `history` shows the runs that held them; `acquire`, `extend` and `release --token`
//! hold a lock across steps (`steps.rs`). They share one way to ask the servers (`servers.rs`: all at once, each bounded by
//! `lock::REQUEST_TIMEOUT`) and one reading of their answers (`majority.rs`).

pub mod history;
pub mod list;
mod majority;
pub mod release;
mod servers;
mod shares;
pub mod status;
pub mod steps;
