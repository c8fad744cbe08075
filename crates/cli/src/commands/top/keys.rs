//! Keys while `nimbus top` runs on a terminal: the terminal in raw mode,
//! and a wait for a key that changes the view.

use super::SortKey;
use anyhow::Context as _;
use std::time::{Duration, Instant};

pub(super) enum Key {
    Quit,
    Sort(SortKey),
}

/// Waits up to `timeout` for a key that changes the view.
pub(super) async fn wait_for_key(timeout: Duration) -> anyhow::Result<Option<Key>> {
    tokio::task::spawn_blocking(move || {
        use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
        let deadline = nimbus_model::time::deadline(Instant::now(), timeout);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !event::poll(left)? {
                return Ok(None);
            }
            if let Event::Key(key) = event::read()?
                && key.kind == KeyEventKind::Press
            {
                match key.code {
                    KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                        return Ok(Some(Key::Quit));
                    }
                    KeyCode::Char('q') | KeyCode::Esc => return Ok(Some(Key::Quit)),
                    KeyCode::Char(c) => {
                        if let Some(sort) = SortKey::from_key(c) {
                            return Ok(Some(Key::Sort(sort)));
                        }
                    }
                    _ => {}
                }
            }
        }
    })
    .await
    .context("the key reader stopped")?
}

/// The terminal in raw mode (keys arrive one by one), restored on drop.
pub(super) struct RawMode;

impl RawMode {
    pub(super) fn enable() -> anyhow::Result<Self> {
        crossterm::terminal::enable_raw_mode().context("cannot read keys from the terminal")?;
        Ok(Self)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
        let _ = outln!();
    }
}
