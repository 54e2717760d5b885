//! The terminal display of `siphon run`: one line per source with its state, the pages and
//! records of the poll in flight, and the time to the next poll. It is drawn only when
//! stdout is a terminal; logs go to stderr, so piping stdout gets no progress noise.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use siphon_engine::Engine;
use siphon_engine::status::SourceStatus;

/// Starts the display if stdout is a terminal; it ends with the process.
pub fn spawn(engine: Arc<Engine>) {
    if !std::io::stdout().is_terminal() {
        return;
    }
    tokio::spawn(async move {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout_with_hz(4));
        let style = ProgressStyle::with_template("{spinner} {msg}").expect("static template");
        let mut bars: BTreeMap<String, ProgressBar> = BTreeMap::new();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            for status in engine.statuses() {
                let bar = bars.entry(status.table_name.clone()).or_insert_with(|| {
                    let bar = multi.add(ProgressBar::new_spinner());
                    bar.set_style(style.clone());
                    bar
                });
                bar.set_message(line(&status));
                bar.tick();
            }
        }
    });
}

/// One source's line.
fn line(s: &SourceStatus) -> String {
    let now = chrono::Utc::now();
    let activity = match (s.in_flight_pages, s.in_flight_records) {
        (Some(pages), Some(records)) => format!("polling: page {} done, {records} records", pages),
        _ => match s.next_poll_at {
            Some(at) if at > now => format!(
                "next poll in {:.1}s",
                (at - now).num_milliseconds() as f64 / 1000.0
            ),
            Some(_) => "polling".to_string(),
            None => "stopped".to_string(),
        },
    };
    let mut text = format!(
        "{:<24} {:<12} {:>8} records {:>7} requests  {activity}",
        s.table_name,
        s.state.name(),
        s.records,
        s.requests
    );
    if let Some(error) = &s.last_error
        && s.consecutive_failures > 0
    {
        let short: String = error.chars().take(80).collect();
        text.push_str(&format!("  last error: {short}"));
    }
    text
}
