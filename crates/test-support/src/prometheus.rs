//! Reading a Prometheus text exposition (`/metrics`) in tests: samples by name and label set,
//! whatever the order the labels are written in, and the `# TYPE` of each family.

use std::collections::BTreeMap;

/// One sample line: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series name (`…_bucket`, `…_sum`, `…_count` for histogram parts).
    pub name: String,
    /// The labels, `le` included for buckets.
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
}

/// A parsed exposition.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    samples: Vec<Sample>,
    types: BTreeMap<String, String>,
}

impl Exposition {
    /// Parses `text`.
    ///
    /// # Errors
    /// The first line that is not a comment, a blank line or a well-formed sample, with the
    /// reason.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut out = Self::default();
        for (i, line) in text.lines().enumerate() {
            let bad = |why: &str| format!("line {}: {why}: {line:?}", i + 1);
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').ok_or_else(|| bad("no type"))?;
                out.types.insert(name.to_owned(), kind.to_owned());
                continue;
            }
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            out.samples.push(parse_sample(line).map_err(|why| bad(&why))?);
        }
        Ok(out)
    }

    /// The value of the sample `name` whose labels are exactly `labels` (in any order).
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> =
            labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        self.samples.iter().find(|s| s.name == name && s.labels == want).map(|s| s.value)
    }

    /// [`Exposition::get`], 0 when the series is absent (a counter not incremented yet).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }

    /// Every sample.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// The samples of the series `name` (any labels).
    pub fn series<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }

    /// The `# TYPE` of the family `name` (`counter`, `gauge`, `histogram`, …).
    pub fn kind(&self, name: &str) -> Option<&str> {
        self.types.get(name).map(String::as_str)
    }
}

/// The metric families `docs/operations.md` documents between the marker comment
/// `<!-- metrics:{part} -->` and the next marker (or the end of the section): the first
/// backticked name of each table row, without its labels (`job_queue_depth{queue}` →
/// `job_queue_depth`). Empty when the marker is missing.
pub fn documented_families(doc: &str, part: &str) -> Vec<String> {
    let marker = format!("<!-- metrics:{part} -->");
    let Some(start) = doc.find(&marker) else { return Vec::new() };
    doc[start + marker.len()..]
        .lines()
        .take_while(|l| !l.starts_with("<!-- metrics:") && !l.starts_with("## "))
        .filter_map(|l| l.strip_prefix("| `"))
        .map(|c| c.split(['`', '{']).next().unwrap_or_default().to_owned())
        .filter(|name| !name.is_empty())
        .collect()
}

/// The families of a Prometheus text exposition that have at least one sample (a histogram
/// `x_seconds` counts through its `x_seconds_bucket`, `_sum` and `_count` lines).
pub fn sampled_families(text: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        out.insert(name.to_owned());
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix) {
                out.insert(base.to_owned());
            }
        }
    }
    out
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    if name.is_empty()
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        || name.starts_with(|c: char| c.is_ascii_digit())
    {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        loop {
            // A label name, `=`, a quoted value; then `,` or `}`.
            let start = chars.peek().map(|(i, _)| *i).ok_or("unterminated labels")?;
            if after[start..].starts_with('}') {
                chars.next();
                break;
            }
            let eq = after[start..].find('=').ok_or("label without '='")? + start;
            let key = &after[start..eq];
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("bad label name {key:?}"));
            }
            while chars.peek().is_some_and(|(i, _)| *i <= eq) {
                chars.next();
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err(format!("label {key} not quoted"));
            }
            let mut value = String::new();
            loop {
                match chars.next().ok_or("unterminated label value")?.1 {
                    '"' => break,
                    '\\' => match chars.next().ok_or("dangling escape")?.1 {
                        'n' => value.push('\n'),
                        c @ ('\\' | '"') => value.push(c),
                        c => return Err(format!("unknown escape \\{c}")),
                    },
                    c => value.push(c),
                }
            }
            if labels.insert(key.to_owned(), value).is_some() {
                return Err(format!("label {key} twice"));
            }
            match chars.next().ok_or("unterminated labels")?.1 {
                ',' => {}
                '}' => break,
                c => return Err(format!("{c:?} after a label")),
            }
        }
        let consumed = chars.peek().map_or(after.len(), |(i, _)| *i);
        rest = &after[consumed..];
    }
    let mut fields = rest.split_whitespace();
    let value = fields.next().ok_or("no value")?;
    let value: f64 = value.parse().map_err(|_| format!("bad value {value:?}"))?;
    if let Some(ts) = fields.next() {
        ts.parse::<i64>().map_err(|_| format!("bad timestamp {ts:?}"))?;
    }
    if fields.next().is_some() {
        return Err("trailing fields".to_owned());
    }
    Ok(Sample { name: name.to_owned(), labels, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_found_whatever_the_label_order() {
        let text = "# HELP a_total A.\n# TYPE a_total counter\n\
                    a_total{b=\"x\",a=\"y\"} 3\n\
                    h_seconds_bucket{k=\"v\",le=\"+Inf\"} 2\n\
                    g 1.5e3 1700000000000\n\
                    e{v=\"q\\\"uo\\\\te\\nd\"} -1\n";
        let e = Exposition::parse(text).unwrap();
        assert_eq!(e.get("a_total", &[("a", "y"), ("b", "x")]), Some(3.0));
        // Exact label sets only: a subset or a wrong value is another series.
        assert_eq!(e.get("a_total", &[("a", "y")]), None);
        assert_eq!(e.get("a_total", &[("a", "y"), ("b", "z")]), None);
        assert_eq!(e.get("h_seconds_bucket", &[("le", "+Inf"), ("k", "v")]), Some(2.0));
        assert_eq!(e.get("g", &[]), Some(1500.0));
        assert_eq!(e.get("e", &[("v", "q\"uo\\te\nd")]), Some(-1.0));
        assert_eq!(e.kind("a_total"), Some("counter"));
        assert_eq!(e.value("missing", &[]), 0.0);
        assert_eq!(e.series("a_total").count(), 1);
    }

    #[test]
    fn malformed_lines_are_named() {
        for bad in
            ["a{b=\"x\" 1", "a{b=x} 1", "a 1 2 3", "a{b=\"x\"} one", "1a 2", "a{b=\"x\",b=\"y\"} 1"]
        {
            let err = Exposition::parse(bad).unwrap_err();
            assert!(err.starts_with("line 1: "), "{bad}: {err}");
        }
    }

    #[test]
    fn documented_families_are_read_from_the_marked_table_rows() {
        let doc = "## Metrics\n<!-- metrics:always -->\n| Name | Type |\n|---|---|\n| `a_total{x, y}` | counter |\n| `b_seconds` | histogram |\n<!-- metrics:conditional -->\n| `c` | gauge |\n## Next\n| `d` | gauge |\n";
        assert_eq!(documented_families(doc, "always"), ["a_total", "b_seconds"]);
        assert_eq!(documented_families(doc, "conditional"), ["c"]);
        assert!(documented_families(doc, "missing").is_empty());
    }

    #[test]
    fn histograms_count_as_sampled_through_their_series() {
        let text = "# TYPE h_seconds histogram\nh_seconds_bucket{le=\"1\"} 0\nh_seconds_count 0\n# TYPE g gauge\ng{a=\"b\"} 1\n# TYPE empty_total counter\n";
        let got = sampled_families(text);
        assert!(got.contains("h_seconds") && got.contains("g"), "{got:?}");
        assert!(!got.contains("empty_total"), "{got:?}");
    }
}
