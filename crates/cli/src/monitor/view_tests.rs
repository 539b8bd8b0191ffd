//! The screen as a user sees it: fixture reports drawn on ratatui's `TestBackend`.

use std::time::Duration;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::Color;

use super::fixture;
use super::state::{State, View};
use super::view::draw;

/// The screen's text, one string a row.
fn render(state: &State, width: u16, height: u16) -> Vec<String> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    terminal
        .draw(|frame| draw(frame, state))
        .expect("draws on a test backend");
    let buffer = terminal.backend().buffer().clone();
    (0..height)
        .map(|y| {
            (0..width)
                .map(|x| buffer[(x, y)].symbol().to_string())
                .collect::<String>()
        })
        .collect()
}

fn screen(state: &State) -> String {
    render(state, 140, 40).join("\n")
}

/// The row holding `needle`, for asserting what stands beside it.
fn row_with<'a>(rows: &'a [String], needle: &str) -> &'a str {
    rows.iter()
        .find(|r| r.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not on screen:\n{}", rows.join("\n")))
}

fn busy_state() -> State {
    let mut state = State::new("http://limits:8080", Duration::from_secs(2));
    state.on_read(Ok(fixture::busy()), 1_000);
    state.now_ms = 1_500;
    state
}

fn press(state: &mut State, code: KeyCode) {
    state.on_key(KeyEvent::new(code, KeyModifiers::NONE));
}

#[test]
fn the_overview_shows_policies_rates_and_top_denied_keys() {
    let state = busy_state();
    let rows = render(&state, 140, 40);
    let text = rows.join("\n");
    assert!(row_with(&rows, "tollgate monitor").contains("http://limits:8080  v0.1.0  up 1h02m"));
    assert!(text.contains("allowed 142.5/s  denied 31.5/s  (18.1% denied)  totals 123456 / 7890"));
    assert!(text.contains("p50 0.050 ms  p99 0.420 ms  max 3.2 ms"));
    assert!(text.contains("redis: ready, breaker half-open, 2 slots open"));
    let login: Vec<&str> = row_with(&rows, "> login ").split_whitespace().collect();
    assert!(
        login
            .windows(5)
            .any(|w| w == ["5/60s", "2.5/s", "30.0/s", "92.3%", "3000/7000"]),
        "{login:?}"
    );
    assert!(row_with(&rows, "api ").contains("140.0/s"));
    // The first policy is selected: its heavy hitters are listed beside the table.
    assert!(row_with(&rows, "│> login ").contains("5/60s"));
    assert!(row_with(&rows, "│  api ").contains("100/10s"));
    assert!(text.contains("top denied: login"));
    assert!(text.contains("login:mallory 4200"));
    assert!(text.contains("login:eve 1300 (±12)"));
    assert!(text.contains("decisions/s, last 2m00s: allowed (peak 145) over denied (peak 30)"));
    assert!(!text.contains("server unreadable"));
}

#[test]
fn arrow_keys_choose_whose_denied_keys_are_listed() {
    let mut state = busy_state();
    press(&mut state, KeyCode::Down);
    let text = screen(&state);
    assert!(text.contains("top denied: api"));
    assert!(text.contains("user:42 800"));
    assert!(!text.contains("login:mallory"));
    press(&mut state, KeyCode::Down);
    assert!(screen(&state).contains("no denials lately"));
}

#[test]
fn the_sparkline_draws_the_history() {
    let state = busy_state();
    let rows = render(&state, 140, 40);
    // Denials jump from 2/s to 30/s in the last 19 samples: the right end of the denied
    // line is full, its left end nearly empty.
    let denied_row = rows
        .iter()
        .position(|r| r.contains("decisions/s"))
        .expect("chart title")
        + 4;
    let line: Vec<char> = rows[denied_row].chars().collect();
    assert_eq!(line[137], '█', "{}", rows[denied_row]);
    assert_ne!(line[2], '█', "{}", rows[denied_row]);
}

#[test]
fn keys_switch_to_the_queue_view() {
    let mut state = busy_state();
    press(&mut state, KeyCode::Char('2'));
    assert_eq!(state.view, View::Queues);
    let rows = render(&state, 140, 40);
    let text = rows.join("\n");
    assert!(text.contains("queues: 2"));
    assert!(!text.contains("login:mallory"), "the overview is gone");
    let emails: Vec<&str> = row_with(&rows, "emails").split_whitespace().collect();
    assert!(
        emails.windows(10).any(|w| w
            == [
                "5/60s", "40", "p9:15", "p0:25", "2", "3", "7s", "0.10/s", "11", "4"
            ]),
        "{emails:?}"
    );
    let emails = row_with(&rows, "emails");
    assert!(emails.contains("in 9m00s  in 2m00s AT RISK"), "{emails}");
    let reports = row_with(&rows, "reports");
    assert!(reports.contains("in 50ms   in 10m00s"), "{reports}");
    assert!(row_with(&rows, "QUEUE").contains("FINISH    DEADLINE"));
}

#[test]
fn a_queue_at_risk_is_drawn_in_red() {
    let mut state = busy_state();
    press(&mut state, KeyCode::Char('2'));
    let mut terminal = Terminal::new(TestBackend::new(140, 40)).expect("test terminal");
    terminal.draw(|f| draw(f, &state)).expect("draws");
    let buffer = terminal.backend().buffer();
    let row_of = |name: &str| {
        (0..40u16)
            .find(|&y| {
                (0..140u16)
                    .map(|x| buffer[(x, y)].symbol())
                    .collect::<String>()
                    .contains(name)
            })
            .expect("queue row")
    };
    let at_risk = row_of("emails");
    let fine = row_of("reports");
    assert_eq!(buffer[(5, at_risk)].fg, Color::Red);
    assert_ne!(buffer[(5, fine)].fg, Color::Red);
}

#[test]
fn the_store_view_shows_the_breaker_and_the_alerts() {
    let mut state = busy_state();
    press(&mut state, KeyCode::Char('3'));
    let rows = render(&state, 140, 40);
    assert!(row_with(&rows, "breaker  ").contains("half-open"));
    assert!(row_with(&rows, "open cluster slots").contains('2'));
    assert!(row_with(&rows, "failures").contains("17"));
    assert!(row_with(&rows, "alerts firing: 1").contains("alerts"));
    assert!(
        row_with(&rows, "login-abuse")
            .contains("(denial_rate, since 1m30s ago): login denies 92.3% of decisions")
    );
}

#[test]
fn the_controller_view_shows_usage_and_tier() {
    let mut state = busy_state();
    press(&mut state, KeyCode::Char('4'));
    let rows = render(&state, 140, 40);
    let row = row_with(&rows, "openai").replace('│', " ");
    let openai: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        openai[1..],
        [
            "█████████░",
            "93.0%",
            "(9300/10000)",
            "heavy",
            "12",
            "55000",
            "7",
            "1s",
            "ago"
        ],
        "{openai:?}"
    );
    press(&mut state, KeyCode::Tab);
    assert_eq!(state.view, View::Overview);
}

#[test]
fn a_server_gone_down_keeps_the_last_data_and_says_so() {
    let mut state = busy_state();
    state.on_read(
        Err("cannot reach the tollgate server at http://limits:8080: Connection refused".into()),
        3_000,
    );
    state.on_read(Err("cannot reach the tollgate server".into()), 5_000);
    state.on_read(
        Err("cannot reach the tollgate server at http://limits:8080: Connection refused".into()),
        7_000,
    );
    state.now_ms = 15_000;
    let rows = render(&state, 140, 40);
    let text = rows.join("\n");
    assert!(text.contains("server unreadable"));
    assert!(
        text.contains("cannot reach the tollgate server at http://limits:8080: Connection refused")
    );
    assert!(
        text.contains(
            "retrying every 2s (3 failed reads in a row); showing the last data, 14s old"
        )
    );
    assert!(row_with(&rows, "tollgate monitor").contains("data 14s old"));
    // The last good data stays on screen.
    assert!(text.contains("login:mallory 4200"));
    assert!(text.contains("allowed 142.5/s"));
}

#[test]
fn garbage_before_any_data_is_shown_with_no_data() {
    let mut state = State::new("http://x:1", Duration::from_millis(500));
    let text = screen(&state);
    assert!(text.contains("reading http://x:1"));
    state.on_read(
        Err(
            "the server at http://x:1 answered something that is not JSON (expected value at \
             line 1 column 1): hello"
                .into(),
        ),
        100,
    );
    let text = screen(&state);
    assert!(text.contains("not JSON"));
    assert!(text.contains("retrying every 500ms (1 failed read in a row); no data read yet"));
    assert!(text.contains("no data yet"));
}

#[test]
fn a_small_terminal_still_draws() {
    let state = busy_state();
    for (w, h) in [(20, 5), (1, 1), (80, 24)] {
        let rows = render(&state, w, h);
        assert_eq!(rows.len(), usize::from(h));
    }
    let mut idle = State::new("http://x", Duration::from_secs(2));
    idle.on_read(Ok(fixture::idle()), 0);
    for view in ['1', '2', '3', '4'] {
        press(&mut idle, KeyCode::Char(view));
        let text = screen(&idle);
        assert!(text.contains("tollgate monitor"), "{text}");
    }
    press(&mut idle, KeyCode::Char('1'));
    assert!(screen(&idle).contains("no policy has decided anything yet"));
    press(&mut idle, KeyCode::Char('2'));
    assert!(screen(&idle).contains("no queues"));
}

#[test]
fn a_long_error_still_shows_the_retry_line() {
    let mut state = busy_state();
    let error = format!(
        "cannot reach the tollgate server at http://x: {}",
        "cause ".repeat(40)
    );
    state.on_read(Err(error), 2_000);
    state.now_ms = 2_000;
    let text = render(&state, 80, 30).join("\n");
    assert!(text.contains("retrying every 2s"), "{text}");
    assert!(text.contains("showing the last data, 1s old"), "{text}");
}
