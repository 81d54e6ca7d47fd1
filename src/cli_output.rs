//! The command line's human output: dates in UTC, durations from now, aligned tables.
//! `--json` output never goes through here: it keeps unix seconds for programs.

use gatehouse::audit::format_utc;

/// How far `t` is from `now`, the way a person says it: "in 10 min", "2 h ago", "now".
pub fn relative(t: i64, now: i64) -> String {
    let delta = t - now;
    if delta == 0 {
        return "now".to_owned();
    }
    let span = span(delta.unsigned_abs());
    if delta > 0 {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

/// A length of time in its largest sensible unit: "45 s", "10 min", "3 h", "12 d".
pub fn span(secs: u64) -> String {
    match secs {
        0..=89 => format!("{secs} s"),
        90..=5_399 => format!("{} min", (secs + 30) / 60),
        5_400..=172_799 => format!("{} h", (secs + 1_800) / 3_600),
        _ => format!("{} d", (secs + 43_200) / 86_400),
    }
}

/// A date in UTC with how far it is from now: `2026-12-01T10:00:00Z (in 10 min)`.
pub fn when(t: i64, now: i64) -> String {
    format!("{} ({})", format_utc(t), relative(t, now))
}

/// [`when`], or "-" for a date not set.
pub fn when_opt(t: Option<i64>, now: i64) -> String {
    t.map_or_else(|| "-".to_owned(), |t| when(t, now))
}

/// A list for a table cell: comma-separated, "-" when empty.
pub fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.join(",")
    }
}

/// Rows under a header, each column as wide as its widest cell (the last is not padded).
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as lines of text, header first.
    pub fn render(&self) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate().take(columns) {
                if i + 1 == columns {
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    let pad = widths[i] - cell.chars().count() + 2;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_speech() {
        assert_eq!(relative(1_000, 1_000), "now");
        assert_eq!(relative(1_045, 1_000), "in 45 s");
        assert_eq!(relative(1_000 + 600, 1_000), "in 10 min");
        assert_eq!(relative(1_000 - 7_200, 1_000), "2 h ago");
        assert_eq!(relative(1_000 + 3 * 86_400, 1_000), "in 3 d");
        assert_eq!(span(89), "89 s");
        assert_eq!(span(90), "2 min");
        assert_eq!(span(172_800), "2 d");
    }

    #[test]
    fn dates_are_utc_with_their_distance() {
        assert_eq!(
            when(1_764_583_200, 1_764_583_200 - 600),
            "2025-12-01T10:00:00Z (in 10 min)"
        );
        assert_eq!(when_opt(None, 0), "-");
    }

    #[test]
    fn table_columns_are_aligned_under_the_header() {
        let mut t = Table::new(&["ID", "NAME", "SCOPES"]);
        t.row(vec!["a".into(), "long name".into(), "x".into()]);
        t.row(vec!["bbbb".into(), "n".into(), list(&[])]);
        let text = t.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "ID    NAME       SCOPES");
        assert_eq!(lines[1], "a     long name  x");
        assert_eq!(lines[2], "bbbb  n          -");
    }
}
