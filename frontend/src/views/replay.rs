//! The player of a session recording, on the same xterm.js terminal as the live views:
//! play/pause, speed 0.5×–16×, a timeline to scrub, idle stretches skipped, the next
//! keystroke, search in the output, and the `.cast` download.
//!
//! A recording may be hundreds of megabytes, so the player never fetches it whole: it reads
//! the relay's seek index (`GET /api/recordings/{id}/index`: byte offsets of event lines)
//! and fetches the slice between two index points with a `Range` request when playback
//! reaches it, keeping a few slices. A seek rebuilds the screen from the index point at
//! most [`REPLAY_BEFORE`] bytes before the target (from the start when the target is that
//! close to it), so a screen far into a long recording is rebuilt from its last megabyte
//! of output, which a full-screen program redraws anyway. Search and "next input" ask the
//! relay (`…/find`), which scans the file, and seek to the event it names.
//!
//! Everything the player does runs on one timer tick ([`TICK`]) that takes at most one step
//! at a time (a seek asked for, or playback's next stretch), so steps never interleave.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use common::recording::{FindQuery, FindTarget, INPUT, OUTPUT, RESIZE, RecordingIndex, SeekPoint};
use leptos::html::Div;
use leptos::prelude::*;

use crate::api::{self, ApiFailure};
use crate::nav::go_login;
use crate::term::Term;
use crate::units::duration_text;

/// How often the player takes a step.
const TICK: Duration = Duration::from_millis(50);
/// Longest pause played when idle stretches are skipped, in seconds.
const IDLE: f64 = 1.0;
/// Most output replayed before a seek target to rebuild its screen, in bytes.
const REPLAY_BEFORE: u64 = 1024 * 1024;
/// Slices kept in memory.
const KEEP_SLICES: usize = 8;
/// The speeds offered.
const SPEEDS: [f64; 6] = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0];

/// An event of the recording, as the player uses it.
#[derive(Debug, Clone, PartialEq)]
enum Event {
    Output(String),
    Input,
    Resize { rows: u16, cols: u16 },
    Other,
}

type Slice = Rc<Vec<(f64, Event)>>;

/// What the player has read and where it is.
struct Player {
    id: String,
    index: RecordingIndex,
    slices: BTreeMap<usize, Slice>,
    /// The next event to show: its slice and its place in it.
    slice: usize,
    event: usize,
    /// The recording time on screen, in seconds.
    clock: f64,
}

type Shared = Rc<RefCell<Player>>;
type TermSlot = StoredValue<Option<Term>, LocalStorage>;

impl Player {
    /// The byte range of slice `i`.
    fn bounds(&self, i: usize) -> Option<(u64, u64)> {
        let start = self.index.points.get(i)?.offset;
        let end = self
            .index
            .points
            .get(i + 1)
            .map_or(self.index.bytes, |p| p.offset);
        Some((start, end))
    }
}

/// The slices of a recording's lines; lines that do not read are skipped.
fn parse_slice(text: &str) -> Vec<(f64, Event)> {
    text.lines()
        .filter_map(|line| serde_json::from_str::<(f64, String, String)>(line).ok())
        .map(|(time, code, data)| {
            let event = match code.as_str() {
                OUTPUT => Event::Output(data),
                INPUT => Event::Input,
                RESIZE => match data.split_once('x').map(|(c, r)| (c.parse(), r.parse())) {
                    Some((Ok(cols), Ok(rows))) => Event::Resize { rows, cols },
                    _ => Event::Other,
                },
                _ => Event::Other,
            };
            (time, event)
        })
        .collect()
}

/// Slice `i`, fetched if it is not held.
async fn slice(player: &Shared, i: usize) -> Result<Slice, String> {
    let (id, bounds) = {
        let p = player.borrow();
        if let Some(slice) = p.slices.get(&i) {
            return Ok(slice.clone());
        }
        (p.id.clone(), p.bounds(i))
    };
    let Some((start, end)) = bounds else {
        return Ok(Rc::new(Vec::new()));
    };
    let text = api::recording_slice(&id, start, end)
        .await
        .map_err(|e| e.to_string())?;
    let slice: Slice = Rc::new(parse_slice(&text));
    let mut p = player.borrow_mut();
    // Keep the slices nearest to this one.
    while p.slices.len() >= KEEP_SLICES {
        let farthest = p
            .slices
            .keys()
            .copied()
            .max_by_key(|k| k.abs_diff(i))
            .unwrap_or(i);
        p.slices.remove(&farthest);
    }
    p.slices.insert(i, slice.clone());
    Ok(slice)
}

/// Shows every event up to `until` seconds.
async fn advance(player: &Shared, term: TermSlot, until: f64) -> Result<(), String> {
    loop {
        let (i, mut j, slices) = {
            let p = player.borrow();
            (p.slice, p.event, p.index.points.len())
        };
        if i >= slices {
            break;
        }
        let events = slice(player, i).await?;
        let mut text = String::new();
        while let Some((time, event)) = events.get(j).filter(|(t, _)| *t <= until) {
            let _ = time;
            match event {
                Event::Output(data) => text.push_str(data),
                Event::Resize { rows, cols } => {
                    write(term, &std::mem::take(&mut text));
                    term.with_value(|t| t.as_ref().map(|t| t.resize(*rows, *cols)));
                }
                Event::Input | Event::Other => {}
            }
            j += 1;
        }
        write(term, &text);
        let mut p = player.borrow_mut();
        if j < events.len() {
            p.event = j;
            break;
        }
        p.slice = i + 1;
        p.event = 0;
    }
    let mut p = player.borrow_mut();
    p.clock = until.clamp(0.0, p.index.duration);
    Ok(())
}

fn write(term: TermSlot, text: &str) {
    if !text.is_empty() {
        term.with_value(|t| t.as_ref().map(|t| t.write_text(text)));
    }
}

/// The first slice to replay for a seek to `target`: the index point at or before it, or
/// an earlier one up to [`REPLAY_BEFORE`] bytes back.
fn replay_from(points: &[SeekPoint], target: f64) -> usize {
    let at = points
        .partition_point(|p| p.time <= target)
        .saturating_sub(1);
    let Some(offset) = points.get(at).map(|p| p.offset) else {
        return 0;
    };
    (0..=at)
        .find(|&j| offset - points[j].offset <= REPLAY_BEFORE)
        .unwrap_or(at)
}

/// Shows the screen at `target` seconds: a reset terminal, then the output from
/// [`replay_from`] up to it.
async fn seek(player: &Shared, term: TermSlot, target: f64) -> Result<(), String> {
    let (rows, cols) = {
        let mut p = player.borrow_mut();
        p.slice = replay_from(&p.index.points, target);
        p.event = 0;
        (p.index.header.height, p.index.header.width)
    };
    term.with_value(|t| {
        if let Some(t) = t {
            t.reset();
            t.resize(rows, cols);
        }
    });
    advance(player, term, target).await
}

/// The time of the next event, when its slice is held.
fn next_event_time(player: &Player) -> Option<f64> {
    let slice = player.slices.get(&player.slice)?;
    slice.get(player.event).map(|(t, _)| *t)
}

/// The player's controls, as signals.
#[derive(Clone, Copy)]
struct Controls {
    clock: RwSignal<f64>,
    playing: RwSignal<bool>,
    speed: RwSignal<f64>,
    skip_idle: RwSignal<bool>,
    status: RwSignal<String>,
    /// A seek asked for, taken by the next tick.
    pending: StoredValue<Option<f64>>,
    busy: StoredValue<bool>,
}

/// One step: the seek asked for, else playback's next stretch.
fn tick(player: &Shared, term: TermSlot, c: Controls) {
    if c.busy.get_value() {
        return;
    }
    let pending = c.pending.try_update_value(Option::take).flatten();
    if pending.is_none() && !c.playing.get_untracked() {
        return;
    }
    c.busy.set_value(true);
    let player = player.clone();
    leptos::task::spawn_local(async move {
        let result = match pending {
            Some(target) => seek(&player, term, target).await,
            None => {
                let (clock, next) = {
                    let p = player.borrow();
                    (p.clock, next_event_time(&p))
                };
                let mut until = clock + TICK.as_secs_f64() * c.speed.get_untracked();
                if c.skip_idle.get_untracked()
                    && let Some(next) = next
                    && next - clock > IDLE
                {
                    until = until.max(next);
                }
                advance(&player, term, until).await
            }
        };
        let (clock, duration) = {
            let p = player.borrow();
            (p.clock, p.index.duration)
        };
        c.clock.try_set(clock);
        if clock >= duration {
            c.playing.try_set(false);
        }
        if let Err(e) = result {
            c.playing.try_set(false);
            c.status
                .try_set(format!("Could not read the recording: {e}"));
        }
        c.busy.set_value(false);
    });
}

#[component]
pub fn ReplayPage(id: String) -> impl IntoView {
    let index = RwSignal::new(None::<Result<RecordingIndex, String>>);
    {
        let id = id.clone();
        leptos::task::spawn_local(async move {
            let result = match api::recording_index(&id).await {
                Ok(index) => Ok(index),
                Err(ApiFailure::Unauthorized(_)) => {
                    go_login();
                    return;
                }
                Err(e) => Err(e.to_string()),
            };
            index.try_set(Some(result));
        });
    }
    let download = api::relay_url(&api::recording_path(&id));
    view! {
        <section id="replay" class="page terminal-page replay">
            {move || match index.get() {
                None => view! { <p class="loading">"Loading the recording…"</p> }.into_any(),
                Some(Err(e)) => view! {
                    <p id="replay-error" class="error">{format!("Could not open the recording: {e}")}</p>
                    <a id="replay-download" href=download.clone() download="">"Download the .cast file"</a>
                }
                .into_any(),
                Some(Ok(index)) => {
                    view! { <Replayer id=id.clone() index download=download.clone() /> }.into_any()
                }
            }}
        </section>
    }
}

#[component]
fn Replayer(id: String, index: RecordingIndex, download: String) -> impl IntoView {
    let duration = index.duration;
    let (rows, cols) = (index.header.height, index.header.width);
    let title = format!(
        "{} · {} · {}",
        index.header.opsdeck.target,
        index.header.opsdeck.user,
        duration_text(duration.ceil() as u64)
    );
    let player: Shared = Rc::new(RefCell::new(Player {
        id: id.clone(),
        index,
        slices: BTreeMap::new(),
        slice: 0,
        event: 0,
        clock: 0.0,
    }));
    let host = NodeRef::<Div>::new();
    let term: TermSlot = StoredValue::new_local(None);
    let c = Controls {
        clock: RwSignal::new(0.0),
        playing: RwSignal::new(false),
        speed: RwSignal::new(1.0),
        skip_idle: RwSignal::new(true),
        status: RwSignal::new(String::new()),
        pending: StoredValue::new(None),
        busy: StoredValue::new(false),
    };
    let timer = StoredValue::new_local(None::<IntervalHandle>);

    host.on_load(move |el| {
        let t = Term::open(&el, true, &crate::settings::current().get_untracked());
        t.resize(rows, cols);
        term.set_value(Some(t));
        let handle = set_interval_with_handle(move || tick(&player, term, c), TICK).ok();
        timer.set_value(handle);
    });
    on_cleanup(move || {
        if let Some(Some(handle)) = timer.try_update_value(Option::take) {
            handle.clear();
        }
        drop(term.try_update_value(Option::take));
    });

    let play = move |_| {
        if c.playing.get_untracked() {
            c.playing.set(false);
        } else {
            if c.clock.get_untracked() >= duration {
                c.pending.set_value(Some(0.0));
            }
            c.playing.set(true);
        }
    };
    let scrub = move |ev: leptos::ev::Event| {
        if let Ok(target) = event_target_value(&ev).parse::<f64>() {
            c.pending.set_value(Some(target));
        }
    };
    let speed_change = move |ev: leptos::ev::Event| {
        if let Ok(speed) = event_target_value(&ev).parse::<f64>() {
            c.speed.set(speed);
        }
    };
    let search = RwSignal::new(String::new());
    let find = {
        let id = id.clone();
        move |target: FindTarget| {
            let id = id.clone();
            leptos::task::spawn_local(async move {
                let after = c.clock.get_untracked();
                let query = FindQuery {
                    after,
                    target: target.clone(),
                };
                let (hit, wrapped) = match api::recording_find(&id, &query).await {
                    Ok(None) if after > 0.0 => {
                        let again = FindQuery {
                            after: -1.0,
                            target,
                        };
                        (api::recording_find(&id, &again).await, true)
                    }
                    other => (other, false),
                };
                match hit {
                    Ok(Some(hit)) => {
                        c.playing.set(false);
                        c.pending.set_value(Some(hit.time));
                        c.status.set(format!(
                            "Found at {}{}",
                            clock_text(hit.time),
                            if wrapped { " (from the start)" } else { "" }
                        ));
                    }
                    Ok(None) => c.status.set("No match.".to_owned()),
                    Err(e) => c.status.set(e.to_string()),
                }
            });
        }
    };
    let find_text = {
        let find = find.clone();
        move || {
            let text = search.get_untracked();
            if !text.is_empty() {
                find(FindTarget::Text(text));
            }
        }
    };
    let on_search_key = {
        let find_text = find_text.clone();
        move |ev: leptos::ev::KeyboardEvent| {
            if ev.key() == "Enter" {
                ev.prevent_default();
                find_text();
            }
        }
    };
    let speeds = SPEEDS
        .iter()
        .map(
            |s| view! { <option value=s.to_string() selected=*s == 1.0>{format!("{s}×")}</option> },
        )
        .collect_view();

    view! {
        <div class="toolbar replay-toolbar">
            <button id="replay-play" type="button" on:click=play>
                {move || if c.playing.get() { "Pause" } else { "Play" }}
            </button>
            <span id="replay-time" data-time=move || c.clock.get().to_string() data-playing=move || c.playing.get().to_string()>
                {move || format!("{} / {}", clock_text(c.clock.get()), clock_text(duration))}
            </span>
            <input
                id="replay-timeline"
                type="range"
                min="0"
                max=duration.to_string()
                step="0.01"
                prop:value=move || c.clock.get().to_string()
                on:change=scrub
            />
            <select id="replay-speed" title="Speed" on:change=speed_change>{speeds}</select>
            <label title="Play pauses longer than a second as one second">
                <input id="replay-skip-idle" type="checkbox" prop:checked=move || c.skip_idle.get() on:change=move |ev| c.skip_idle.set(event_target_checked(&ev)) />
                "Skip idle"
            </label>
            <button id="replay-next-input" type="button" on:click={
                let find = find.clone();
                move |_| find(FindTarget::Input)
            }>"Next input"</button>
            <input id="replay-search" type="search" placeholder="Search the output" bind:value=search on:keydown=on_search_key />
            <button id="replay-find" type="button" on:click=move |_| find_text()>"Find"</button>
            <a id="replay-download" href=download download="">"Download .cast"</a>
            <span id="replay-status" class="muted">{move || c.status.get()}</span>
        </div>
        <p id="replay-title" class="muted">{title}</p>
        <div id="terminal" class="terminal-host" node_ref=host></div>
    }
}

/// `m:ss.s` of seconds.
fn clock_text(seconds: f64) -> String {
    let tenths = (seconds.max(0.0) * 10.0).floor() as u64;
    format!("{}:{:02}.{}", tenths / 600, tenths / 10 % 60, tenths % 10)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn point(time: f64, offset: u64) -> SeekPoint {
        SeekPoint { time, offset }
    }

    #[test]
    fn a_seek_replays_from_at_most_a_megabyte_before_its_target() {
        let mb = REPLAY_BEFORE;
        let points = [
            point(0.0, 100),
            point(10.0, 100 + mb / 2),
            point(20.0, 100 + mb),
            point(30.0, 100 + 2 * mb),
        ];
        assert_eq!(replay_from(&points, 5.0), 0);
        assert_eq!(replay_from(&points, 25.0), 0);
        assert_eq!(replay_from(&points, 35.0), 2);
        assert_eq!(replay_from(&[], 3.0), 0);
    }

    #[test]
    fn slices_read_output_resizes_and_skip_junk() {
        let text = "[0.5,\"o\",\"hi\"]\n[1,\"r\",\"100x30\"]\nnot json\n[2,\"i\",\"x\"]\n[3,\"m\",\"end: bye\"]\n";
        assert_eq!(
            parse_slice(text),
            vec![
                (0.5, Event::Output("hi".into())),
                (
                    1.0,
                    Event::Resize {
                        rows: 30,
                        cols: 100
                    }
                ),
                (2.0, Event::Input),
                (3.0, Event::Other),
            ]
        );
        assert_eq!(clock_text(75.25), "1:15.2");
    }
}
