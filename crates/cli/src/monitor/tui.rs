//! The live view: a reader thread reads the server every interval and sends each outcome
//! here; this loop turns keys and outcomes into [`State`] and draws it. The terminal is put
//! back on every way out: return, error (the guard), panic (ratatui's panic hook) and
//! SIGTERM, SIGHUP or SIGINT (which end the view like a quit key).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ratatui::crossterm::event::{self, Event};
use tollgate_server::stats::StatsReport;

use super::fetch::StatsClient;
use super::state::{Command, State};
use super::view;

/// How long to wait for a key before redrawing (the data's age ticks on screen).
const TICK: Duration = Duration::from_millis(250);

/// One read's outcome, as the reader thread sends it.
type Outcome = Result<StatsReport, String>;

/// Restores the terminal when dropped, so an early `?` leaves no raw-mode terminal behind.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Runs the live view until a quit key.
pub fn run(client: StatsClient, interval: Duration) -> anyhow::Result<ExitCode> {
    if !std::io::stdout().is_terminal() {
        bail!("the live view needs a terminal; use --once for a plain-text report");
    }
    let server = client.base().to_string();
    let (outcomes, outcomes_rx) = mpsc::channel();
    let (wake, wake_rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("monitor-reader".into())
        .spawn(move || read_forever(&client, interval, &outcomes, &wake_rx))
        .context("cannot start the reader thread")?;

    // Registered before the terminal changes: from then on a signal that would end the process
    // (leaving it raw, on the alternate screen) ends the loop instead.
    let ended = Arc::new(AtomicUsize::new(0));
    watch_ending_signals(&ended)?;
    let _restore = Restore;
    let mut terminal = ratatui::try_init().context("cannot set up the terminal")?;
    let started = Instant::now();
    let clock = || u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut state = State::new(&server, interval);
    loop {
        if let signal @ 1.. = ended.load(Ordering::Relaxed) {
            // The shell's convention for a process ended by a signal.
            return Ok(ExitCode::from(
                u8::try_from(128 + signal).unwrap_or(u8::MAX),
            ));
        }
        while let Ok(outcome) = outcomes_rx.try_recv() {
            state.on_read(outcome, clock());
        }
        state.now_ms = clock();
        terminal
            .draw(|frame| view::draw(frame, &state))
            .context("cannot draw on the terminal")?;
        if !event::poll(TICK).context("cannot read the keyboard")? {
            continue;
        }
        if let Event::Key(key) = event::read().context("cannot read the keyboard")? {
            match state.on_key(key) {
                Command::Quit => break,
                // The reader may be gone only if its runtime failed; that was reported.
                Command::Refresh => {
                    let _ = wake.send(());
                }
                Command::None => {}
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Sets `ended` to the number of the first of SIGTERM, SIGHUP or SIGINT to arrive; the loop
/// looks at it every [`TICK`] at the latest. A loop that does not end within two ticks is
/// stuck where it cannot look: crossterm reads the end-of-file of a terminal that hung up
/// again and again and never returns. Then this thread puts the terminal back (if it is
/// still there) and ends the process itself.
#[cfg(unix)]
fn watch_ending_signals(ended: &Arc<AtomicUsize>) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    use signal_hook::iterator::Signals;
    let mut signals = Signals::new([SIGTERM, SIGHUP, SIGINT]).context("cannot handle signals")?;
    let ended = ended.clone();
    std::thread::Builder::new()
        .name("monitor-signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                ended.store(usize::try_from(signal).unwrap_or(1), Ordering::Relaxed);
                std::thread::sleep(TICK * 2);
                ratatui::restore();
                std::process::exit(128 + signal);
            }
        })
        .context("cannot start the signal thread")?;
    Ok(())
}

/// Elsewhere only Ctrl-C reaches the program, as a key (raw mode).
#[cfg(not(unix))]
fn watch_ending_signals(_ended: &Arc<AtomicUsize>) -> anyhow::Result<()> {
    Ok(())
}

/// Reads the server now, then every `interval` or when woken, until the view is gone.
fn read_forever(
    client: &StatsClient,
    interval: Duration,
    outcomes: &Sender<Outcome>,
    wake: &Receiver<()>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = outcomes.send(Err(format!("cannot start the async runtime: {e}")));
            return;
        }
    };
    loop {
        let outcome = runtime
            .block_on(client.fetch())
            .map(|fetched| fetched.report)
            .map_err(|e| e.to_string());
        if outcomes.send(outcome).is_err() {
            return;
        }
        match wake.recv_timeout(interval) {
            Ok(()) => while wake.try_recv().is_ok() {},
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}
