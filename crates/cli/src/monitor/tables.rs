//! The queue and controller views: one table each, rows needing attention in red.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Style};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, Wrap};
use tollgate_server::stats::StatsReport;

use super::format::{by_priority, column_width, finish_cells, per_s, percent, relative, span_ms};
use super::view::{ALERT, HEADER};

/// The queues: depth by priority, in flight, delayed, rate and next token, throughput,
/// dead, and the projected finish against the deadline.
pub fn draw_queues(frame: &mut Frame, area: Rect, report: &StatsReport) {
    let block = Block::bordered().title(format!(" queues: {} ", report.queues.len()));
    if let Some(error) = &report.queues_error {
        let text = format!("the queues cannot be read: {error}");
        frame.render_widget(
            Paragraph::new(text)
                .style(ALERT)
                .wrap(Wrap { trim: true })
                .block(block),
            area,
        );
        return;
    }
    if report.queues.is_empty() {
        frame.render_widget(Paragraph::new("no queues").block(block), area);
        return;
    }
    let names: Vec<&str> = report
        .queues
        .iter()
        .map(|q| q.stats.name.as_str())
        .collect();
    let rates: Vec<String> = report.queues.iter().map(rate).collect();
    let priorities: Vec<String> = report.queues.iter().map(by_priority).collect();
    let rows = report
        .queues
        .iter()
        .zip(&rates)
        .zip(&priorities)
        .map(|((q, rate), priorities)| {
            let s = &q.stats;
            let (finish, deadline, at_risk) = finish_cells(q);
            let dead_style = if s.dead > 0 {
                Style::new().fg(Color::Yellow)
            } else {
                Style::new()
            };
            let row = Row::new(vec![
                Cell::from(s.name.clone()),
                Cell::from(rate.clone()),
                Cell::from(s.waiting.to_string()),
                Cell::from(priorities.clone()),
                Cell::from(s.in_flight.to_string()),
                Cell::from(s.delayed.to_string()),
                Cell::from(span_ms(s.next_token_ms)),
                Cell::from(per_s(q.completed_per_s)),
                Cell::from(s.completed.to_string()),
                Cell::from(s.dead.to_string()).style(dead_style),
                Cell::from(finish),
                Cell::from(deadline),
            ]);
            if at_risk { row.style(ALERT) } else { row }
        });
    let header = Row::new([
        "QUEUE",
        "RATE",
        "WAITING",
        "BY PRIORITY",
        "FLIGHT",
        "DELAYED",
        "NEXT",
        "DONE/S",
        "COMPLETED",
        "DEAD",
        "FINISH",
        "DEADLINE",
    ])
    .style(HEADER);
    let widths = [
        Constraint::Length(column_width("QUEUE", names.into_iter(), 32)),
        Constraint::Length(column_width("RATE", rates.iter().map(String::as_str), 16)),
        Constraint::Length(7),
        Constraint::Length(column_width(
            "BY PRIORITY",
            priorities.iter().map(String::as_str),
            24,
        )),
        Constraint::Length(6),
        Constraint::Length(7),
        Constraint::Length(6),
        Constraint::Length(8),
        Constraint::Length(9),
        Constraint::Length(5),
        Constraint::Length(9),
        Constraint::Fill(1),
    ];
    frame.render_widget(Table::new(rows, widths).header(header).block(block), area);
}

/// A queue's rate, and `paused` when it starts nothing.
fn rate(queue: &tollgate_server::stats::QueueReport) -> String {
    let paused = if queue.stats.active { "" } else { " paused" };
    format!("{}{paused}", queue.stats.rate)
}

/// The unified controllers: usage against capacity, tier, waiting, SLA misses.
pub fn draw_controllers(frame: &mut Frame, area: Rect, report: &StatsReport) {
    let block = Block::bordered().title(format!(" controllers: {} ", report.controllers.len()));
    if report.controllers.is_empty() {
        let text = "no controller reports to this server (POST /v1/controllers/{name})";
        frame.render_widget(Paragraph::new(text).block(block), area);
        return;
    }
    let rows = report.controllers.iter().map(|c| {
        let u = &c.usage;
        let hot = u.usage_percent >= 90.0 || matches!(u.tier.as_str(), "heavy" | "emergency");
        let usage_style = if hot { ALERT } else { Style::new() };
        let reported = format!(
            "{}{}",
            relative(report.now_ms, c.received_ms),
            if c.stale { " STALE" } else { "" }
        );
        Row::new(vec![
            Cell::from(c.name.clone()),
            Cell::from(bar(u.usage_percent, 10)).style(usage_style),
            Cell::from(format!(
                "{} ({}/{})",
                percent(u.usage_percent),
                u.usage,
                u.capacity
            ))
            .style(usage_style),
            Cell::from(u.tier.clone()).style(usage_style),
            Cell::from(u.waiting.to_string()),
            Cell::from(u.granted.to_string()),
            Cell::from(u.sla_violations.to_string()),
            Cell::from(reported).style(if c.stale { ALERT } else { Style::new() }),
        ])
    });
    let header = Row::new([
        "CONTROLLER",
        "",
        "USAGE",
        "TIER",
        "WAITING",
        "GRANTED",
        "SLA MISSES",
        "REPORTED",
    ])
    .style(HEADER);
    let widths = [
        Constraint::Fill(2),
        Constraint::Length(10),
        Constraint::Fill(2),
        Constraint::Length(9),
        Constraint::Length(8),
        Constraint::Length(9),
        Constraint::Length(10),
        Constraint::Fill(1),
    ];
    frame.render_widget(Table::new(rows, widths).header(header).block(block), area);
}

/// A bar of `width` cells filled to `percent` (clamped to 0-100).
fn bar(percent: f64, width: usize) -> String {
    let filled = ((percent.clamp(0.0, 100.0) / 100.0) * width as f64).round() as usize;
    format!("{}{}", "█".repeat(filled), "░".repeat(width - filled))
}

#[cfg(test)]
mod tests {
    use super::bar;

    #[test]
    fn bars_fill_to_the_percentage() {
        assert_eq!(bar(93.0, 10), "█████████░");
        assert_eq!(bar(0.0, 4), "░░░░");
        assert_eq!(bar(250.0, 4), "████");
        assert_eq!(bar(f64::NAN, 4).chars().count(), 4);
    }
}
