//! A strict parser of the Prometheus text exposition format 0.0.4, so a test
//! fails on anything a Prometheus server would reject or misread: bad
//! names, bad escapes, a sample before its `# TYPE` or outside its family,
//! a family declared twice, non-cumulative histogram buckets.

use std::collections::{BTreeMap, HashMap};

pub type Labels = BTreeMap<String, String>;

#[derive(Debug, Default)]
pub struct Exposition {
    /// Family name → type.
    pub types: HashMap<String, String>,
    /// Family name → help text.
    pub help: HashMap<String, String>,
    /// (sample name, labels) → value.
    pub samples: BTreeMap<(String, Labels), f64>,
}

impl Exposition {
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let labels: Labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.samples.get(&(name.to_owned(), labels)).copied()
    }
}

pub fn parse(text: &str) -> Result<Exposition, String> {
    let mut exposition = Exposition::default();
    // Families whose samples are done: one family's lines stay together.
    let mut current: Option<String> = None;
    let mut finished: Vec<String> = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let fail = |why: &str| format!("line {}: {why}: {line:?}", number + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start().splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("HELP"), Some(name), help) => {
                    check_name(name).map_err(|e| fail(&e))?;
                    check_help(help.unwrap_or("")).map_err(|e| fail(&e))?;
                    if exposition
                        .help
                        .insert(name.to_owned(), help.unwrap_or("").to_owned())
                        .is_some()
                    {
                        return Err(fail("HELP given twice"));
                    }
                }
                (Some("TYPE"), Some(name), Some(kind)) => {
                    check_name(name).map_err(|e| fail(&e))?;
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(fail("unknown type"));
                    }
                    if exposition.types.contains_key(name) {
                        return Err(fail("TYPE given twice"));
                    }
                    exposition.types.insert(name.to_owned(), kind.to_owned());
                    if let Some(previous) = current.replace(name.to_owned()) {
                        finished.push(previous);
                    }
                }
                (Some("TYPE"), _, _) => return Err(fail("TYPE needs a name and a type")),
                _ => {} // any other comment is allowed
            }
            continue;
        }
        let (name, labels, value) = parse_sample(line).map_err(|e| fail(&e))?;
        let family = family_of(&exposition.types, &name)
            .ok_or_else(|| fail("sample before its TYPE or outside any family"))?;
        if current.as_deref() != Some(family.as_str()) || finished.contains(&family) {
            return Err(fail("sample separated from its family's other lines"));
        }
        if exposition.samples.insert((name, labels), value).is_some() {
            return Err(fail("the same series twice"));
        }
    }
    check_histograms(&exposition)?;
    Ok(exposition)
}

fn family_of(types: &HashMap<String, String>, sample: &str) -> Option<String> {
    if types.contains_key(sample) {
        return Some(sample.to_owned());
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let family = sample.strip_suffix(suffix)?;
        matches!(
            types.get(family).map(String::as_str),
            Some("histogram" | "summary")
        )
        .then(|| family.to_owned())
    })
}

fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        Ok(())
    } else {
        Err(format!("invalid metric name {name:?}"))
    }
}

fn check_help(help: &str) -> Result<(), String> {
    let mut chars = help.chars();
    while let Some(c) = chars.next() {
        if c == '\\' && !matches!(chars.next(), Some('\\' | 'n')) {
            return Err("invalid escape in HELP".into());
        }
    }
    Ok(())
}

fn parse_sample(line: &str) -> Result<(String, Labels, f64), String> {
    let name_end = line.find(['{', ' ']).ok_or("sample without a value")?;
    let name = &line[..name_end];
    check_name(name)?;
    let (labels, rest) = match line[name_end..].strip_prefix('{') {
        Some(inside) => parse_labels(inside)?,
        None => (Labels::new(), &line[name_end..]),
    };
    let mut fields = rest
        .strip_prefix(' ')
        .ok_or("expected one space before the value")?
        .split(' ');
    let value = parse_value(fields.next().ok_or("missing value")?)?;
    if let Some(timestamp) = fields.next() {
        timestamp
            .parse::<i64>()
            .map_err(|_| format!("invalid timestamp {timestamp:?}"))?;
    }
    if fields.next().is_some() {
        return Err("trailing fields".into());
    }
    Ok((name.to_owned(), labels, value))
}

/// Parses `key="value",...}` and returns what follows the `}`.
fn parse_labels(inside: &str) -> Result<(Labels, &str), String> {
    let mut labels = Labels::new();
    let mut rest = inside;
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let (key, after_key) = rest.split_once("=\"").ok_or("label without =\"")?;
        if key.is_empty()
            || key.starts_with("__")
            || key.starts_with(|c: char| c.is_ascii_digit())
            || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(format!("invalid label name {key:?}"));
        }
        let mut value = String::new();
        let mut chars = after_key.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    _ => return Err("invalid escape in a label value".into()),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(key.to_owned(), value).is_some() {
            return Err(format!("label {key} twice"));
        }
        rest = &after_key[end + 1..];
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err("expected , or } after a label".into());
        }
    }
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => text
            .parse::<f64>()
            .map_err(|_| format!("invalid value {text:?}")),
    }
}

/// Each histogram series: buckets non-decreasing in `le`, a `+Inf` bucket
/// equal to `_count`.
fn check_histograms(exposition: &Exposition) -> Result<(), String> {
    for (family, kind) in &exposition.types {
        if kind != "histogram" {
            continue;
        }
        let bucket = format!("{family}_bucket");
        let mut series: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
        for ((name, labels), value) in &exposition.samples {
            if name != &bucket {
                continue;
            }
            let mut rest = labels.clone();
            let le = rest.remove("le").ok_or(format!("{bucket} without le"))?;
            series
                .entry(rest)
                .or_default()
                .push((parse_value(&le)?, *value));
        }
        for (labels, mut buckets) in series {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            if buckets.windows(2).any(|w| w[1].1 < w[0].1) {
                return Err(format!("{family}{labels:?}: buckets are not cumulative"));
            }
            let count = exposition
                .samples
                .get(&(format!("{family}_count"), labels.clone()))
                .ok_or(format!("{family}{labels:?}: no _count"))?;
            match buckets.last() {
                Some((le, total)) if le.is_infinite() && total == count => {}
                _ => return Err(format!("{family}{labels:?}: +Inf bucket must equal _count")),
            }
        }
    }
    Ok(())
}
