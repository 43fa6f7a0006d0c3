//! Aligned text tables in the style of `docker network ls`.

/// A table: a header row and data rows, rendered with columns padded to the
/// widest cell and separated by three spaces.
#[derive(Debug, Clone)]
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these column headers.
    pub fn new(headers: &[&'static str]) -> Self {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Appends a row; missing cells are blank, extra ones are dropped.
    pub fn push(&mut self, mut row: Vec<String>) {
        row.resize(self.headers.len(), String::new());
        self.rows.push(row);
    }

    /// The table as text, one line per row, each ending in a newline; the
    /// last column is not padded, so lines carry no trailing spaces.
    pub fn render(&self) -> String {
        let width = |s: &str| s.chars().count();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(width(cell));
            }
        }
        let header: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        let mut out = String::new();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
                if i > 0 {
                    line.push_str("   ");
                }
                line.push_str(cell);
                if i + 1 < row.len() {
                    line.extend(std::iter::repeat_n(' ', w - width(cell)));
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
    fn aligned() {
        let mut t = Table::new(&["ID", "NAME", "DRIVER"]);
        t.push(vec!["A1B2C3D4-000".into(), "nat".into(), "nat".into()]);
        t.push(vec!["0".into(), "a-much-longer-name".into()]);
        assert_eq!(
            t.render(),
            "ID             NAME                 DRIVER\n\
             A1B2C3D4-000   nat                  nat\n\
             0              a-much-longer-name\n"
        );
    }

    #[test]
    fn header_only() {
        assert_eq!(Table::new(&["ID", "NAME"]).render(), "ID   NAME\n");
    }
}
