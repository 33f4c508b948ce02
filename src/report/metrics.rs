//! `--metrics-dir DIR`: the run's outcome as a Prometheus textfile (node_exporter's textfile
//! collector).

use std::path::Path;

use super::Report;

/// Writes `DIR/redlock_NAME.prom` for `report`.
pub fn write(_dir: &Path, _report: &Report) {
    // Filled in by the metrics change.
}
