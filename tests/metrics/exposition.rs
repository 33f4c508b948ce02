//! A strict reader of Prometheus' text exposition format 0.0.4
//! (<https://prometheus.io/docs/instrumenting/exposition_formats/>), as node_exporter's textfile
//! collector takes it: stricter than Prometheus where redlock's files must be (every family
//! declared with HELP and TYPE before its samples, no timestamps, a counter named `_total`),
//! so that a half-written file, a bad escape or a duplicate series fails a test. promtool, where
//! installed, checks the same files too; it lets duplicate series through.

use std::collections::{BTreeMap, HashMap, HashSet};

/// Labels, as (name, value).
pub type Labels = Vec<(String, String)>;

/// A series: its metric name and its labels, sorted.
pub type Series = (String, Labels);

#[derive(Debug)]
pub struct Exposition {
    /// Each family's TYPE.
    pub types: HashMap<String, String>,
    pub samples: BTreeMap<Series, f64>,
}

impl Exposition {
    /// The value of `metric{labels}`, the labels in any order.
    pub fn value(&self, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut labels: Labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        labels.sort();
        self.samples.get(&(metric.to_string(), labels)).copied()
    }

    /// The series of `metric`.
    pub fn series(&self, metric: &str) -> Vec<&Series> {
        self.samples.keys().filter(|(m, _)| m == metric).collect()
    }
}

pub fn parse(text: &str) -> Result<Exposition, String> {
    if !text.ends_with('\n') {
        // Also an empty file: redlock never writes one, so it was caught half written.
        return Err("the last line is not ended by a line feed".into());
    }
    let mut reader = Reader::default();
    for (number, line) in text.lines().enumerate() {
        reader
            .line(line)
            .map_err(|e| format!("line {}: {e}: {line:?}", number + 1))?;
    }
    if let Some(family) = reader.types.keys().find(|f| !reader.helps.contains(*f)) {
        return Err(format!("{family} has a TYPE but no HELP"));
    }
    Ok(Exposition {
        types: reader.types,
        samples: reader.samples,
    })
}

#[derive(Default)]
struct Reader {
    helps: HashSet<String>,
    types: HashMap<String, String>,
    samples: BTreeMap<Series, f64>,
    /// The family whose lines come now, and those whose group of lines has ended.
    current: Option<String>,
    done: HashSet<String>,
}

impl Reader {
    fn line(&mut self, line: &str) -> Result<(), String> {
        if line.is_empty() {
            return Ok(());
        }
        let Some(comment) = line.strip_prefix('#') else {
            return self.sample(line);
        };
        let mut words = comment.trim_start_matches([' ', '\t']).splitn(3, ' ');
        let keyword = words.next().unwrap_or("");
        if keyword != "HELP" && keyword != "TYPE" {
            return Ok(()); // any other comment
        }
        let family = words.next().unwrap_or("");
        let rest = words.next().unwrap_or("");
        check_metric_name(family)?;
        self.enter(family)?;
        if keyword == "HELP" {
            if !self.helps.insert(family.to_string()) {
                return Err("a second HELP".into());
            }
            // A docstring escapes backslash and line feed only.
            let mut chars = rest.chars();
            while let Some(c) = chars.next() {
                if c == '\\' && !matches!(chars.next(), Some('\\' | 'n')) {
                    return Err("a bad escape in HELP".into());
                }
            }
            return Ok(());
        }
        if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&rest) {
            return Err("an unknown TYPE".into());
        }
        if self.samples.keys().any(|(m, _)| m == family) {
            return Err("a TYPE after the family's samples".into());
        }
        if (rest == "counter") != family.ends_with("_total") {
            return Err("a counter's name, and only a counter's, ends in _total".into());
        }
        match self.types.insert(family.to_string(), rest.to_string()) {
            Some(_) => Err("a second TYPE".into()),
            None => Ok(()),
        }
    }

    /// `name{label="value",...} value`, without a timestamp (the textfile collector refuses
    /// them).
    fn sample(&mut self, line: &str) -> Result<(), String> {
        let end = line
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(line.len());
        let (name, mut rest) = line.split_at(end);
        check_metric_name(name)?;
        let mut labels = Vec::new();
        if let Some(inside) = rest.strip_prefix('{') {
            let (parsed, after) = parse_labels(inside)?;
            labels = parsed;
            rest = after;
        }
        let value = rest
            .strip_prefix(' ')
            .ok_or("no space before the value")?
            .trim_start_matches(' ');
        if value.contains([' ', '\t']) {
            return Err("a timestamp or trailing text".into());
        }
        let value = float(value).ok_or("a value that is not a float")?;
        let kind = self
            .types
            .get(name)
            .ok_or("a sample of an undeclared family")?;
        // NaN is no count either.
        if kind == "counter" && (value.is_nan() || value < 0.0) {
            return Err("a counter below zero".into());
        }
        self.enter(name)?;
        labels.sort();
        if self
            .samples
            .insert((name.to_string(), labels), value)
            .is_some()
        {
            return Err("a duplicate series".into());
        }
        Ok(())
    }

    /// All lines of a family form one group.
    fn enter(&mut self, family: &str) -> Result<(), String> {
        if self.current.as_deref() == Some(family) {
            return Ok(());
        }
        if self.done.contains(family) {
            return Err(format!("{family}'s lines are split in two groups"));
        }
        if let Some(previous) = self.current.replace(family.to_string()) {
            self.done.insert(previous);
        }
        Ok(())
    }
}

/// The labels after `{`, and what follows the `}`.
fn parse_labels(mut rest: &str) -> Result<(Labels, &str), String> {
    let mut labels = Labels::new();
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let (name, after) = rest.split_once("=\"").ok_or("a label without =\"")?;
        let mut chars = name.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("a bad label name {name:?}"));
        }
        if name.starts_with("__") || labels.iter().any(|(n, _)| n == name) {
            return Err(format!("a reserved or repeated label name {name:?}"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let close = loop {
            match chars.next().ok_or("an unclosed label value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    _ => return Err("a bad escape in a label value".into()),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((name.to_string(), value));
        rest = &after[close + 1..];
        // A comma between labels, and one allowed before the brace.
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err("labels not separated by commas".into());
        }
    }
}

fn check_metric_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        Ok(())
    } else {
        Err(format!("a bad metric name {name:?}"))
    }
}

/// A float as Go's ParseFloat reads it (Prometheus' parser), but no hexadecimal.
fn float(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        // Rust's parser would also take "inf" and "nan", which Prometheus spells differently.
        _ if text
            .chars()
            .all(|c| c.is_ascii_digit() || "+-.eE".contains(c)) =>
        {
            text.parse().ok()
        }
        _ => None,
    }
}
