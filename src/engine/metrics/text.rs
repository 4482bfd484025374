//! The Prometheus text exposition format (version 0.0.4), written by hand: families
//! with `# HELP` and `# TYPE`, samples with escaped label values, and histograms with
//! cumulative `_bucket{le=…}`, `_sum` and `_count`.

use std::fmt::Write;

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Upper bounds (seconds) of the duration histograms' buckets; `+Inf` is implied.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 21600.0, 86400.0,
];

/// Observations of one histogram series: a count per bucket (not cumulative), the
/// count beyond the last bound, their sum.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    buckets: Vec<u64>,
    overflow: u64,
    sum: f64,
}

impl Histogram {
    pub fn observe(&mut self, v: f64) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; SECONDS_BUCKETS.len()];
        }
        let v = if v.is_finite() { v.max(0.0) } else { 0.0 };
        match SECONDS_BUCKETS.iter().position(|b| v <= *b) {
            Some(i) => self.buckets[i] += 1,
            None => self.overflow += 1,
        }
        self.sum += v;
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().sum::<u64>() + self.overflow
    }
}

/// The exposition being written.
#[derive(Debug, Default)]
pub struct Text {
    out: String,
}

/// `a="x",b="y"`, values escaped as the format asks (`\\`, `\"`, `\n`).
fn labels(pairs: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(k);
        s.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                '"' => s.push_str("\\\""),
                '\n' => s.push_str("\\n"),
                c => s.push(c),
            }
        }
        s.push('"');
    }
    s
}

fn number(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

impl Text {
    /// Starts a family: its help line and type.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, pairs: &[(&str, &str)], value: f64) {
        if pairs.is_empty() {
            let _ = writeln!(self.out, "{name} {}", number(value));
        } else {
            let _ = writeln!(self.out, "{name}{{{}}} {}", labels(pairs), number(value));
        }
    }

    /// One histogram series of the current family.
    pub fn histogram(&mut self, name: &str, pairs: &[(&str, &str)], h: &Histogram) {
        let mut cumulative = 0;
        for (i, bound) in SECONDS_BUCKETS.iter().enumerate() {
            cumulative += h.buckets.get(i).copied().unwrap_or(0);
            let le = number(*bound);
            let mut with_le = pairs.to_vec();
            with_le.push(("le", &le));
            self.sample(&format!("{name}_bucket"), &with_le, cumulative as f64);
        }
        let mut with_le = pairs.to_vec();
        with_le.push(("le", "+Inf"));
        self.sample(&format!("{name}_bucket"), &with_le, h.count() as f64);
        self.sample(&format!("{name}_sum"), pairs, h.sum);
        self.sample(&format!("{name}_count"), pairs, h.count() as f64);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_and_histograms_are_cumulative() {
        let mut t = Text::default();
        t.family("pipedeck_x_total", Kind::Counter, "X.");
        t.sample("pipedeck_x_total", &[("a", "q\"u\\o\nte")], 3.0);
        let mut h = Histogram::default();
        h.observe(0.05);
        h.observe(2.0);
        h.observe(1e9);
        t.family("pipedeck_d_seconds", Kind::Histogram, "D.");
        t.histogram("pipedeck_d_seconds", &[], &h);
        let s = t.finish();
        assert!(
            s.contains("pipedeck_x_total{a=\"q\\\"u\\\\o\\nte\"} 3\n"),
            "{s}"
        );
        assert!(
            s.contains("pipedeck_d_seconds_bucket{le=\"0.1\"} 1\n"),
            "{s}"
        );
        assert!(s.contains("pipedeck_d_seconds_bucket{le=\"1\"} 1\n"), "{s}");
        assert!(s.contains("pipedeck_d_seconds_bucket{le=\"5\"} 2\n"), "{s}");
        assert!(
            s.contains("pipedeck_d_seconds_bucket{le=\"86400\"} 2\n"),
            "{s}"
        );
        assert!(
            s.contains("pipedeck_d_seconds_bucket{le=\"+Inf\"} 3\n"),
            "{s}"
        );
        assert!(s.contains("pipedeck_d_seconds_count 3\n"), "{s}");
    }
}
