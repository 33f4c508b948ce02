//! The text of a metrics file, in Prometheus' text exposition format
//! (<https://prometheus.io/docs/instrumenting/exposition_formats/>), and the run counters read
//! back from the previous one. docs/metrics.md lists the metrics for users.

use std::fmt::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Outcome, Report};

/// Runs by outcome, in the order of `Outcome::ALL`.
pub type Runs = [u64; Outcome::ALL.len()];

/// The file for `report`, which ended at `now`; `runs` already counts it.
pub fn render(report: &Report, now: SystemTime, runs: &Runs) -> String {
    let name = format!("name=\"{}\"", escape(&report.name));
    // The command's start and end when it ran; else the run's, which did not start it.
    let (start, ran) = match (report.started, report.ran) {
        (Some(started), Some(ran)) => (started, ran),
        _ => (report.began, Duration::ZERO),
    };
    let end = if report.ran.is_some() {
        start + ran
    } else {
        now
    };
    let mut text = String::new();
    let mut family = |metric: &str, kind: &str, help: &str, samples: &[(String, String)]| {
        // Writing to a String cannot fail.
        let _ = writeln!(text, "# HELP {metric} {help}\n# TYPE {metric} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(text, "{metric}{{{labels}}} {value}");
        }
    };
    let one = |value: String| [(name.clone(), value)];
    let by_outcome = |value: &dyn Fn(usize, Outcome) -> String| -> Vec<(String, String)> {
        (Outcome::ALL.iter().enumerate())
            .map(|(i, o)| (format!("{name},outcome=\"{}\"", o.as_str()), value(i, *o)))
            .collect()
    };
    family(
        "redlock_last_start_time_seconds",
        "gauge",
        "Unix time the last run's command started (the run began, if it did not run).",
        &one(seconds(unix(start))),
    );
    family(
        "redlock_last_end_time_seconds",
        "gauge",
        "Unix time the last run's command ended (the run ended, if it did not run).",
        &one(seconds(unix(end))),
    );
    family(
        "redlock_last_duration_seconds",
        "gauge",
        "How long the last run's command ran (0 if it did not run).",
        &one(seconds(ran)),
    );
    family(
        "redlock_last_wait_seconds",
        "gauge",
        "How long the last run waited for the lock, until it got it or gave up.",
        &one(seconds(report.waited)),
    );
    family(
        "redlock_last_exit_status",
        "gauge",
        "redlock's exit status of the last run.",
        &one(report.exit_code.to_string()),
    );
    family(
        "redlock_last_outcome",
        "gauge",
        "The last run's outcome: 1 for it, 0 for the others.",
        &by_outcome(&|_, o| u8::from(o == report.outcome).to_string()),
    );
    family(
        "redlock_runs_total",
        "counter",
        "Runs by outcome, counted in this file.",
        &by_outcome(&|i, _| runs[i].to_string()),
    );
    if let Some(fence) = report.fence {
        family(
            "redlock_last_fence",
            "gauge",
            "The fencing token of the last run, when it took the lock.",
            &one(fence.to_string()),
        );
    }
    text
}

/// The counters of the previous file of lock `name`, plus this run's `outcome`. A missing or
/// garbled file, or one written for another name whose file name came out the same, counts
/// from 0: Prometheus takes a counter that drops as a reset.
pub fn count(previous: &str, name: &str, outcome: Outcome) -> Runs {
    let mut runs = Runs::default();
    for (i, o) in Outcome::ALL.iter().enumerate() {
        // Exactly the line `render` writes, so another name's line never matches.
        let prefix = format!(
            "redlock_runs_total{{name=\"{}\",outcome=\"{}\"}} ",
            escape(name),
            o.as_str()
        );
        runs[i] = (previous.lines())
            .find_map(|line| line.strip_prefix(&prefix)?.parse().ok())
            .unwrap_or(0);
        if *o == outcome {
            runs[i] = runs[i].saturating_add(1);
        }
    }
    runs
}

/// A label value as the format wants it: backslash, double quote and line feed escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', r#"\""#)
        .replace('\n', r"\n")
}

fn unix(time: SystemTime) -> Duration {
    // A clock set before 1970 is not worth a failed metrics file.
    time.duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// Seconds to the millisecond: plenty for jobs, and no exponent for a parser to trip on.
fn seconds(duration: Duration) -> String {
    format!("{:.3}", duration.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(outcome: Outcome, fence: Option<u64>) -> Report {
        let began = UNIX_EPOCH + Duration::from_millis(1_700_000_000_250);
        Report {
            name: "a\"b\\c".into(),
            outcome,
            exit_code: 3,
            began,
            waited: Duration::from_millis(1500),
            started: Some(began + Duration::from_millis(1500)),
            ran: Some(Duration::from_millis(2000)),
            fence,
            summary: String::new(),
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\\b\"c\nd"), r#"a\\b\"c\nd"#);
        assert_eq!(escape("plain-name.1"), "plain-name.1");
    }

    #[test]
    fn a_run_that_ran_gives_its_command_times() {
        let mut runs = Runs::default();
        runs[0] = 7;
        let text = render(&report(Outcome::Ran, Some(42)), SystemTime::now(), &runs);
        let name = r#"name="a\"b\\c""#;
        for line in [
            format!("redlock_last_start_time_seconds{{{name}}} 1700000001.750"),
            format!("redlock_last_end_time_seconds{{{name}}} 1700000003.750"),
            format!("redlock_last_duration_seconds{{{name}}} 2.000"),
            format!("redlock_last_wait_seconds{{{name}}} 1.500"),
            format!("redlock_last_exit_status{{{name}}} 3"),
            format!("redlock_last_outcome{{{name},outcome=\"ran\"}} 1"),
            format!("redlock_last_outcome{{{name},outcome=\"busy\"}} 0"),
            format!("redlock_runs_total{{{name},outcome=\"ran\"}} 7"),
            format!("redlock_runs_total{{{name},outcome=\"replaced\"}} 0"),
            format!("redlock_last_fence{{{name}}} 42"),
            "# TYPE redlock_runs_total counter".into(),
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
        }
    }

    #[test]
    fn a_run_that_did_not_run_has_no_duration_and_no_fence() {
        let busy = Report {
            started: None,
            ran: None,
            ..report(Outcome::Busy, None)
        };
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_002);
        let text = render(&busy, now, &Runs::default());
        assert!(text.contains("_start_time_seconds{name=\"a\\\"b\\\\c\"} 1700000000.250\n"));
        assert!(text.contains("_end_time_seconds{name=\"a\\\"b\\\\c\"} 1700000002.000\n"));
        assert!(text.contains("_duration_seconds{name=\"a\\\"b\\\\c\"} 0.000\n"));
        assert!(!text.contains("fence"), "{text}");
    }

    #[test]
    fn counters_are_read_back_and_incremented() {
        let first = count("", "a\"b\\c", Outcome::Busy);
        assert_eq!(first, [0, 1, 0, 0, 0, 0]);
        let text = render(&report(Outcome::Busy, None), SystemTime::now(), &first);
        let second = count(&text, "a\"b\\c", Outcome::Ran);
        assert_eq!(second, [1, 1, 0, 0, 0, 0]);
        // Another name's file, or a garbled one, starts again at 0.
        assert_eq!(count(&text, "other", Outcome::Ran), [1, 0, 0, 0, 0, 0]);
        let garbled = text.replace("} 1\n", "} x1\n");
        assert_eq!(
            count(&garbled, "a\"b\\c", Outcome::Lost),
            [0, 0, 0, 1, 0, 0]
        );
    }
}
