//! Text timelines of a history: one row per client, each operation an
//! interval `[label]` placed by its call and return times scaled to a fixed
//! width, and a numbered legend with the exact times. Indeterminate
//! operations run off the right edge (`>`).
//!
//! Pure: returns a `String`, prints nothing, reads no clock.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::model::Model;
use super::operation::{Completion, Operation};

/// The default chart width, in columns (the client labels come on top).
pub const WIDTH: usize = 72;

/// A timeline of `ops` (any order) `width` columns wide (at least 8).
pub fn timeline<M: Model>(model: &M, ops: &[Operation<M::Input, M::Output>], width: usize) -> String {
    let width = width.max(8);
    let mut out = String::new();
    if ops.is_empty() {
        out.push_str("(no operations)\n");
        return out;
    }
    let mut order: Vec<usize> = (0..ops.len()).collect();
    order.sort_by_key(|&index| (ops[index].call, index));
    let start = ops.iter().map(|op| op.call).min().unwrap_or(0);
    let end = ops.iter().map(|op| op.ret().unwrap_or(op.call)).max().unwrap_or(start).max(start + 1);
    let column = |time: u64| -> usize {
        let offset = u128::from(time.saturating_sub(start)) * (width as u128 - 1) / u128::from(end - start);
        usize::try_from(offset).unwrap_or(width - 1).min(width - 1)
    };

    // Lay each client's bars out in lanes: a bar goes to the first lane of
    // its client where it does not touch the previous bar.
    let mut lanes: BTreeMap<u64, Vec<Vec<char>>> = BTreeMap::new();
    let mut lane_ends: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (number, &index) in order.iter().enumerate() {
        let op = &ops[index];
        let first = column(op.call);
        let open = op.ret().is_none();
        let last = if open { width } else { column(op.ret().unwrap_or(op.call)) };
        let client_lanes = lanes.entry(op.client).or_default();
        let ends = lane_ends.entry(op.client).or_default();
        let lane = match ends.iter().position(|&lane_end| lane_end < first) {
            Some(lane) => lane,
            None => {
                client_lanes.push(vec![' '; width + 1]);
                ends.push(0);
                ends.len() - 1
            }
        };
        ends[lane] = last + 1;
        let row = &mut client_lanes[lane];
        let label = model.describe(&op.input, op.output());
        draw(row, first, last, open, &label, number + 1);
    }

    let names: BTreeMap<u64, String> = lanes.keys().map(|&client| (client, format!("p{client}"))).collect();
    let name_width = names.values().map(String::len).max().unwrap_or(2);
    let scale = (end - start) as f64 / (width - 1) as f64;
    let _ = writeln!(out, "{:name_width$}  time {start} .. {end}, one column = {scale:.3} time units", "");
    for (client, rows) in &lanes {
        for (lane, row) in rows.iter().enumerate() {
            let name = if lane == 0 { names[client].as_str() } else { "" };
            let text: String = row.iter().collect();
            let _ = writeln!(out, "{name:name_width$} |{}", text.trim_end());
        }
    }
    for (number, &index) in order.iter().enumerate() {
        let op = &ops[index];
        let when = match &op.completion {
            Completion::Returned { ret, .. } => format!("{}..{ret}", op.call),
            Completion::Indeterminate => format!("{}..? (indeterminate)", op.call),
            Completion::Failed => format!("{}..? (failed)", op.call),
        };
        let _ = writeln!(
            out,
            "  #{:<3} p{:<4} {:<28} {}",
            number + 1,
            op.client,
            when,
            model.describe(&op.input, op.output())
        );
    }
    out
}

/// Draws one bar from column `first` to `last` into `row`: `[label]`, or
/// `[#n]` when the label does not fit, or `|` for a bar one column wide;
/// an open bar ends in `>`.
fn draw(row: &mut [char], first: usize, last: usize, open: bool, label: &str, number: usize) {
    let last = last.min(row.len() - 1).max(first);
    if first == last && !open {
        row[first] = '|';
        return;
    }
    row[first] = '[';
    for cell in &mut row[first + 1..last] {
        *cell = '-';
    }
    row[last] = if open { '>' } else { ']' };
    let inside = last - first - 1;
    let number_label = format!("#{number}");
    let text = if label.chars().count() <= inside {
        label
    } else if number_label.len() <= inside {
        number_label.as_str()
    } else {
        ""
    };
    for (offset, character) in text.chars().enumerate() {
        row[first + 1 + offset] = character;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linearizability::model::{Register, RegisterInput as In, RegisterOutput as Out};

    #[test]
    fn a_timeline_shows_rows_bars_and_a_legend() {
        let ops = vec![
            Operation::returned(0, 0, 40, In::Write(1), Out::Write),
            Operation::returned(1, 10, 20, In::Read, Out::Read(Some(1))),
            Operation::indeterminate(1, 30, In::Write(2)),
            Operation::returned(2, 50, 100, In::Read, Out::Read(Some(2))),
        ];
        let text = timeline(&Register { initial: None }, &ops, 40);
        let expected = [
            "    time 0 .. 100, one column = 2.564 time units",
            "p0 |[w 1-----------]",
            "p1 |   [r 1]   [w 2------------------------->",
            "p2 |                   [r 2----------------]",
            "  #1   p0    0..40                        w 1",
            "  #2   p1    10..20                       r 1",
            "  #3   p1    30..? (indeterminate)        w 2",
            "  #4   p2    50..100                      r 2",
            "",
        ]
        .join("\n");
        assert_eq!(text, expected, "\n{text}");
    }

    #[test]
    fn overlapping_bars_of_one_client_get_lanes_and_points_are_bars() {
        let ops = vec![
            Operation::indeterminate(0, 0, In::Write(1)),
            Operation::returned(0, 10, 10, In::Read, Out::Read(Some(1))),
        ];
        let text = timeline(&Register { initial: None }, &ops, 20);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].starts_with("p0 |[w 1"), "{text}");
        assert_eq!(lines[2], "   |                   |", "{text}");
    }
}
