//! Drawing: `draw` is a pure function of the [`State`], so tests render it on a
//! `TestBackend`. The header, error banner, footer and the overview and store views live
//! here; the queue and controller tables in [`super::tables`].

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Cell, List, ListItem, Paragraph, RenderDirection, Row, Sparkline, Table, TableState,
    Tabs, Wrap,
};
use tollgate_queue::format_duration;
use tollgate_server::stats::{RATE_WINDOW_S, StatsReport};

use super::format::{
    column_width, denied_key, latency_ms, per_s, percent, relative, span_ms, store_health,
    store_troubled,
};
use super::state::{State, View};
use super::tables;

/// The style of anything that needs attention.
pub(super) const ALERT: Style = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);
/// The style of column headers.
pub(super) const HEADER: Style = Style::new().add_modifier(Modifier::BOLD);

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, state: &State) {
    let banner = state
        .error
        .as_deref()
        .map(|error| banner_text(state, error));
    // Tall enough for the wrapped text (one spare line for word wrapping), at most 8 rows.
    let inner_width = usize::from(frame.area().width.saturating_sub(2)).max(1);
    let banner_height = banner.as_ref().map_or(0, |text| {
        let rows: usize = text
            .lines()
            .map(|l| l.chars().count().div_ceil(inner_width).max(1))
            .sum();
        u16::try_from(rows + 3).unwrap_or(u16::MAX).min(8)
    });
    let [title, tabs, banner_area, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(banner_height),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    frame.render_widget(Paragraph::new(title_line(state)), title);
    let titles = View::ALL
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{} {}", i + 1, v.title()));
    let selected = View::ALL.iter().position(|v| *v == state.view);
    frame.render_widget(
        Tabs::new(titles)
            .select(selected)
            .highlight_style(Style::new().fg(Color::Black).bg(Color::Cyan)),
        tabs,
    );
    if let Some(text) = banner {
        draw_banner(frame, banner_area, text);
    }
    match &state.report {
        None => {
            let text = if state.error.is_some() {
                "no data yet".to_string()
            } else {
                format!("reading {} …", state.server)
            };
            frame.render_widget(Paragraph::new(text).block(Block::bordered()), body);
        }
        Some(report) => match state.view {
            View::Overview => draw_overview(frame, body, state, report),
            View::Queues => tables::draw_queues(frame, body, report),
            View::StoreAlerts => draw_store_alerts(frame, body, report),
            View::Controllers => tables::draw_controllers(frame, body, report),
        },
    }
    frame.render_widget(
        Paragraph::new("Tab/1-4 views  ↑/↓ policy  r refresh  q quit")
            .style(Style::new().fg(Color::DarkGray)),
        footer,
    );
}

fn title_line(state: &State) -> Line<'static> {
    let mut spans = vec![
        Span::styled("tollgate monitor", HEADER),
        Span::raw(format!("  {}", state.server)),
    ];
    if let Some(report) = &state.report {
        spans.push(Span::raw(format!(
            "  v{}  up {}",
            report.version,
            span_ms(report.uptime_s.saturating_mul(1000))
        )));
    }
    if let Some(age) = state.age_ms() {
        let style = if state.error.is_some() {
            ALERT
        } else {
            Style::new()
        };
        spans.push(Span::styled(format!("  data {} old", span_ms(age)), style));
    }
    Line::from(spans)
}

/// The error, the retry interval, and the age of the data still shown.
fn banner_text(state: &State, error: &str) -> String {
    let mut text = format!(
        "{error}\nretrying every {} ({} failed {} in a row)",
        format_duration(state.interval),
        state.failures,
        if state.failures == 1 { "read" } else { "reads" }
    );
    match state.age_ms() {
        Some(age) => text.push_str(&format!("; showing the last data, {} old", span_ms(age))),
        None => text.push_str("; no data read yet"),
    }
    text
}

fn draw_banner(frame: &mut Frame, area: Rect, text: String) {
    let block = Block::bordered()
        .title(" server unreadable ")
        .border_style(ALERT);
    frame.render_widget(
        Paragraph::new(text)
            .style(Style::new().fg(Color::Red))
            .wrap(Wrap { trim: true })
            .block(block),
        area,
    );
}

fn draw_overview(frame: &mut Frame, area: Rect, state: &State, report: &StatsReport) {
    let [summary, chart, policies] = Layout::vertical([
        Constraint::Length(5),
        Constraint::Length(6),
        Constraint::Min(3),
    ])
    .areas(area);

    let d = &report.decisions;
    let l = &report.latency;
    let store_style = if store_troubled(&report.store) {
        ALERT
    } else {
        Style::new().fg(Color::Green)
    };
    let lines = vec![
        Line::from(vec![
            Span::raw("decisions  "),
            Span::styled(
                format!("allowed {}", per_s(d.allowed_per_s)),
                Style::new().fg(Color::Green),
            ),
            Span::raw("  "),
            Span::styled(
                format!("denied {}", per_s(d.denied_per_s)),
                Style::new().fg(Color::Red),
            ),
            Span::raw(format!(
                "  ({} denied)  totals {} / {}",
                percent(d.denied_percent),
                d.allowed_total,
                d.denied_total
            )),
        ]),
        Line::from(format!(
            "latency    p50 {}  p99 {}  max {}  ({} checks)",
            latency_ms(l.p50_ms),
            latency_ms(l.p99_ms),
            latency_ms(l.max_ms),
            l.count
        )),
        Line::from(vec![
            Span::raw("store      "),
            Span::styled(store_health(&report.store), store_style),
            Span::raw(format!("   alerts firing: {}", report.alerts.len())),
        ]),
    ];
    let title = format!(" last {RATE_WINDOW_S} s ");
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(title)),
        summary,
    );
    draw_sparklines(frame, chart, report);
    draw_policies(frame, policies, state, report);
}

/// Allowed and denied decisions per second from `history`, the newest at the right.
fn draw_sparklines(frame: &mut Frame, area: Rect, report: &StatsReport) {
    let inner_width = usize::from(area.width.saturating_sub(2));
    let samples = &report.history[report.history.len().saturating_sub(inner_width)..];
    // Newest first, drawn right to left: the newest second is always at the right edge.
    let allowed: Vec<u64> = samples.iter().rev().map(|s| s.allowed).collect();
    let denied: Vec<u64> = samples.iter().rev().map(|s| s.denied).collect();
    let peak = |v: &[u64]| v.iter().copied().max().unwrap_or(0);
    let title = format!(
        " decisions/s, last {}: allowed (peak {}) over denied (peak {}) ",
        span_ms(samples.len() as u64 * 1000),
        peak(&allowed),
        peak(&denied)
    );
    let block = Block::bordered().title(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [top, bottom] =
        Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(inner);
    frame.render_widget(
        Sparkline::default()
            .data(allowed.iter().copied())
            .direction(RenderDirection::RightToLeft)
            .style(Style::new().fg(Color::Green)),
        top,
    );
    frame.render_widget(
        Sparkline::default()
            .data(denied.iter().copied())
            .direction(RenderDirection::RightToLeft)
            .style(Style::new().fg(Color::Red)),
        bottom,
    );
}

fn draw_policies(frame: &mut Frame, area: Rect, state: &State, report: &StatsReport) {
    let [table_area, keys_area] =
        Layout::horizontal([Constraint::Percentage(65), Constraint::Percentage(35)]).areas(area);
    let rows = report.policies.iter().map(|p| {
        let d = &p.decisions;
        let denial = if d.denied_percent >= 50.0 {
            ALERT
        } else {
            Style::new()
        };
        Row::new(vec![
            Cell::from(p.name.clone()),
            Cell::from(p.rate.clone().unwrap_or_else(|| "-".into())),
            Cell::from(per_s(d.allowed_per_s)),
            Cell::from(per_s(d.denied_per_s)),
            Cell::from(percent(d.denied_percent)).style(denial),
            Cell::from(format!("{}/{}", d.allowed_total, d.denied_total)),
        ])
    });
    let header = Row::new([
        "POLICY",
        "RATE",
        "ALLOWED",
        "DENIED",
        "DENIED%",
        "TOTALS A/D",
    ])
    .style(HEADER);
    let names = report.policies.iter().map(|p| p.name.as_str());
    let rates = report
        .policies
        .iter()
        .map(|p| p.rate.as_deref().unwrap_or("-"));
    let widths = [
        Constraint::Length(column_width("POLICY", names, 32)),
        Constraint::Length(column_width("RATE", rates, 16)),
        Constraint::Length(10),
        Constraint::Length(10),
        Constraint::Length(8),
        Constraint::Fill(1),
    ];
    let table = Table::new(rows, widths)
        .header(header)
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .highlight_symbol("> ")
        .block(Block::bordered().title(" policies "));
    let mut selection = TableState::default()
        .with_selected((!report.policies.is_empty()).then_some(state.selected));
    if report.policies.is_empty() {
        frame.render_widget(
            Paragraph::new("no policy has decided anything yet")
                .block(Block::bordered().title(" policies ")),
            table_area,
        );
    } else {
        frame.render_stateful_widget(table, table_area, &mut selection);
    }

    let (title, items): (String, Vec<ListItem>) = match state.selected_policy() {
        None => (" top denied keys ".into(), Vec::new()),
        Some(p) if p.top_denied.is_empty() => (
            format!(" top denied: {} ", p.name),
            vec![ListItem::new("no denials lately")],
        ),
        Some(p) => (
            format!(" top denied: {} ", p.name),
            p.top_denied
                .iter()
                .map(|k| ListItem::new(denied_key(k)))
                .collect(),
        ),
    };
    frame.render_widget(
        List::new(items).block(Block::bordered().title(title)),
        keys_area,
    );
}

fn draw_store_alerts(frame: &mut Frame, area: Rect, report: &StatsReport) {
    let [store_area, alerts_area] =
        Layout::vertical([Constraint::Length(11), Constraint::Min(3)]).areas(area);
    let s = &report.store;
    let yes_no = |ok: bool, good: &str, bad: &str| {
        if ok {
            Span::styled(good.to_string(), Style::new().fg(Color::Green))
        } else {
            Span::styled(bad.to_string(), ALERT)
        }
    };
    let breaker = s
        .breaker
        .clone()
        .unwrap_or_else(|| "none (embedded)".into());
    let breaker_ok = s.breaker.as_deref().is_none_or(|b| b == "closed");
    let field = |name: &str, value: Span<'static>| {
        Line::from(vec![Span::styled(format!("{name:<20}"), HEADER), value])
    };
    let mut lines = vec![
        field("kind", Span::raw(s.kind.clone())),
        field("ready", yes_no(s.ready, "yes", "NO")),
        field("breaker", yes_no(breaker_ok, &breaker, &breaker)),
        field(
            "open cluster slots",
            yes_no(s.open_slots == 0, "0", &s.open_slots.to_string()),
        ),
        field(
            "tracked keys",
            Span::raw(s.tracked_keys.map_or("-".into(), |k| k.to_string())),
        ),
        field("failures", Span::raw(s.failures_total.to_string())),
        field(
            "fallback decisions",
            Span::raw(s.fallback_decisions_total.to_string()),
        ),
        field(
            "breaker opened",
            Span::raw(format!("{} times", s.breaker_opened_total)),
        ),
    ];
    if let Some(error) = &s.error {
        lines.push(field("error", Span::styled(error.clone(), ALERT)));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(Block::bordered().title(" store ")),
        store_area,
    );

    let items: Vec<ListItem> = if report.alerts.is_empty() {
        vec![ListItem::new(Span::styled(
            "none firing",
            Style::new().fg(Color::Green),
        ))]
    } else {
        report
            .alerts
            .iter()
            .map(|a| {
                ListItem::new(Line::from(vec![
                    Span::styled(format!("{} ", a.rule), ALERT),
                    Span::raw(format!(
                        "({}, since {}): {}",
                        a.kind,
                        relative(report.now_ms, a.since_ms),
                        a.message
                    )),
                ]))
            })
            .collect()
    };
    let title = format!(" alerts firing: {} ", report.alerts.len());
    frame.render_widget(
        List::new(items).block(Block::bordered().title(title)),
        alerts_area,
    );
}
