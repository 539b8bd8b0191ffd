//! What the monitor shows: the last good report, the last error, the view, the selection.
//! Changed only by reads and keys, so a test drives it without a terminal or a server.

use std::time::Duration;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use tollgate_server::stats::StatsReport;

/// The views, in the order of their keys 1-4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Decisions, latency, the sparkline, and the policies with their top denied keys.
    Overview,
    /// The job queues.
    Queues,
    /// The store's health and the firing alerts.
    StoreAlerts,
    /// The unified controllers.
    Controllers,
}

impl View {
    /// Every view, in key order.
    pub const ALL: [View; 4] = [
        View::Overview,
        View::Queues,
        View::StoreAlerts,
        View::Controllers,
    ];

    /// The view's name on its tab.
    pub fn title(self) -> &'static str {
        match self {
            View::Overview => "Overview & policies",
            View::Queues => "Queues",
            View::StoreAlerts => "Store & alerts",
            View::Controllers => "Controllers",
        }
    }

    fn index(self) -> usize {
        View::ALL.iter().position(|v| *v == self).unwrap_or(0)
    }

    fn step(self, by: usize) -> View {
        View::ALL[(self.index() + by) % View::ALL.len()]
    }
}

/// What a key asks of the loop besides a redraw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Nothing more.
    None,
    /// Read the server now.
    Refresh,
    /// Leave.
    Quit,
}

/// Everything `view::draw` needs.
#[derive(Debug, Clone)]
pub struct State {
    /// The server's base URL.
    pub server: String,
    /// How often it is read.
    pub interval: Duration,
    /// The view shown.
    pub view: View,
    /// The last report read, kept while later reads fail.
    pub report: Option<StatsReport>,
    /// When `report` was read, on the monitor's clock (ms).
    pub report_at_ms: u64,
    /// The monitor's clock now (ms since it started).
    pub now_ms: u64,
    /// Why the last read failed, if it did.
    pub error: Option<String>,
    /// Reads failed in a row.
    pub failures: u32,
    /// The index of the selected policy in `report.policies`.
    pub selected: usize,
}

impl State {
    /// A monitor that has read nothing yet.
    pub fn new(server: &str, interval: Duration) -> State {
        State {
            server: server.to_string(),
            interval,
            view: View::Overview,
            report: None,
            report_at_ms: 0,
            now_ms: 0,
            error: None,
            failures: 0,
            selected: 0,
        }
    }

    /// Takes in one read's outcome, made at `at_ms` on the monitor's clock.
    pub fn on_read(&mut self, outcome: Result<StatsReport, String>, at_ms: u64) {
        self.now_ms = self.now_ms.max(at_ms);
        match outcome {
            Ok(report) => {
                // Keep the selected policy selected when the order changes.
                let selected_name = self.selected_policy().map(|p| p.name.clone());
                let index = selected_name
                    .and_then(|name| report.policies.iter().position(|p| p.name == name));
                self.selected = index.unwrap_or(self.selected);
                self.selected = self.selected.min(report.policies.len().saturating_sub(1));
                self.report = Some(report);
                self.report_at_ms = at_ms;
                self.error = None;
                self.failures = 0;
            }
            Err(error) => {
                self.error = Some(error);
                self.failures = self.failures.saturating_add(1);
            }
        }
    }

    /// How old the report shown is, ms (`None` before the first).
    pub fn age_ms(&self) -> Option<u64> {
        self.report
            .as_ref()
            .map(|_| self.now_ms.saturating_sub(self.report_at_ms))
    }

    /// The selected policy, if there is one.
    pub fn selected_policy(&self) -> Option<&tollgate_server::stats::PolicyReport> {
        self.report.as_ref()?.policies.get(self.selected)
    }

    /// Takes in a key.
    pub fn on_key(&mut self, key: KeyEvent) -> Command {
        if key.kind == KeyEventKind::Release {
            return Command::None;
        }
        let policies = self.report.as_ref().map_or(0, |r| r.policies.len());
        match key.code {
            KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                return Command::Quit;
            }
            KeyCode::Char('q') | KeyCode::Esc => return Command::Quit,
            KeyCode::Char('r') => return Command::Refresh,
            KeyCode::Tab | KeyCode::Right => self.view = self.view.step(1),
            KeyCode::BackTab | KeyCode::Left => self.view = self.view.step(View::ALL.len() - 1),
            KeyCode::Char(c @ '1'..='4') => {
                let index = c as usize - '1' as usize;
                self.view = View::ALL[index];
            }
            KeyCode::Down | KeyCode::Char('j') if policies > 0 => {
                self.selected = (self.selected + 1).min(policies - 1);
            }
            KeyCode::Up | KeyCode::Char('k') => self.selected = self.selected.saturating_sub(1),
            _ => {}
        }
        Command::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::fixture;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn keys_switch_views_and_quit() {
        let mut state = State::new("http://x", Duration::from_secs(2));
        assert_eq!(state.on_key(key(KeyCode::Tab)), Command::None);
        assert_eq!(state.view, View::Queues);
        state.on_key(key(KeyCode::Char('4')));
        assert_eq!(state.view, View::Controllers);
        state.on_key(key(KeyCode::Tab));
        assert_eq!(state.view, View::Overview, "Tab wraps around");
        state.on_key(key(KeyCode::BackTab));
        assert_eq!(state.view, View::Controllers);
        state.on_key(key(KeyCode::Char('3')));
        assert_eq!(state.view, View::StoreAlerts);
        assert_eq!(state.on_key(key(KeyCode::Char('r'))), Command::Refresh);
        assert_eq!(state.on_key(key(KeyCode::Char('q'))), Command::Quit);
        assert_eq!(state.on_key(key(KeyCode::Esc)), Command::Quit);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(state.on_key(ctrl_c), Command::Quit);
        assert_eq!(state.on_key(key(KeyCode::Char('c'))), Command::None);
    }

    #[test]
    fn the_selection_stays_within_the_policies_and_follows_its_name() {
        let mut state = State::new("http://x", Duration::from_secs(2));
        state.on_key(key(KeyCode::Down));
        assert_eq!(state.selected, 0, "nothing to select yet");
        state.on_read(Ok(fixture::busy()), 10);
        for _ in 0..5 {
            state.on_key(key(KeyCode::Down));
        }
        assert_eq!(state.selected, 2);
        state.on_key(key(KeyCode::Up));
        assert_eq!(
            state.selected_policy().map(|p| p.name.as_str()),
            Some("api")
        );
        let mut reordered = fixture::busy();
        reordered.policies.reverse();
        state.on_read(Ok(reordered), 20);
        assert_eq!(
            state.selected_policy().map(|p| p.name.as_str()),
            Some("api")
        );
        state.on_read(Ok(fixture::idle()), 30);
        assert_eq!(state.selected, 0);
    }

    #[test]
    fn a_failed_read_keeps_the_last_report_and_ages_it() {
        let mut state = State::new("http://x", Duration::from_secs(2));
        assert_eq!(state.age_ms(), None);
        state.on_read(Ok(fixture::busy()), 1_000);
        state.on_read(Err("cannot reach".into()), 3_000);
        state.on_read(Err("cannot reach".into()), 5_000);
        assert_eq!(state.failures, 2);
        assert_eq!(state.error.as_deref(), Some("cannot reach"));
        assert!(state.report.is_some());
        assert_eq!(state.age_ms(), Some(4_000));
        state.on_read(Ok(fixture::idle()), 7_000);
        assert_eq!((state.failures, state.error.is_none()), (0, true));
        assert_eq!(state.age_ms(), Some(0));
    }
}
