//! Plain aligned tables for command output: columns separated by ` | `,
//! every column but the last padded to its widest cell.

/// The header and rows as lines of text, each ending in a newline.
pub(super) fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    let all: Vec<&Vec<String>> = std::iter::once(&header).chain(rows).collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|column| {
            all.iter()
                .filter_map(|row| row.get(column))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in all {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(column, cell)| {
                if column + 1 == row.len() {
                    cell.clone()
                } else {
                    format!("{cell:width$}", width = widths[column])
                }
            })
            .collect();
        out.push_str(cells.join(" | ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_and_the_last_is_not_padded() {
        let rows = vec![
            vec![
                "leah@contoso.com".to_owned(),
                "active".to_owned(),
                "x".to_owned(),
            ],
            vec![
                "al@c.com".to_owned(),
                "error".to_owned(),
                "Graph said no".to_owned(),
            ],
        ];
        assert_eq!(
            render(&["mailbox", "state", "note"], &rows),
            "mailbox          | state  | note\n\
             leah@contoso.com | active | x\n\
             al@c.com         | error  | Graph said no\n"
        );
    }
}
