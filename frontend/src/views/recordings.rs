//! The recordings list: the session recordings the user may replay (all of them with the
//! `audit` grant; their own when the relay's `recording.owners_read` allows it), filtered
//! by user, target and day, each with its duration and size and a link to the player.

use common::recording::{RecordingInfo, RecordingQuery};
use leptos::prelude::*;

use crate::api::{self, ApiFailure};
use crate::nav::{go_login, navigate};
use crate::route::Route;

const DAY: u64 = 24 * 60 * 60;

#[component]
pub fn RecordingsPage(filter: RecordingQuery) -> impl IntoView {
    let list = RwSignal::new(None::<Result<Vec<RecordingInfo>, String>>);
    {
        let filter = filter.clone();
        leptos::task::spawn_local(async move {
            let result = match api::recordings(&filter).await {
                Ok(list) => Ok(list),
                Err(ApiFailure::Unauthorized(_)) => {
                    go_login();
                    return;
                }
                Err(e) => Err(e.to_string()),
            };
            list.try_set(Some(result));
        });
    }
    let user = RwSignal::new(filter.user.clone().unwrap_or_default());
    let target = RwSignal::new(filter.target.clone().unwrap_or_default());
    let day = RwSignal::new(filter.since.map(day_text).unwrap_or_default());
    let apply = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let text = |s: RwSignal<String>| {
            let value = s.get_untracked().trim().to_owned();
            (!value.is_empty()).then_some(value)
        };
        let since = text(day).and_then(|d| day_start(&d));
        navigate(&Route::Recordings(RecordingQuery {
            user: text(user),
            target: text(target),
            since,
            until: since.map(|s| s + DAY),
        }));
    };

    view! {
        <section id="recordings" class="page recordings">
            <form id="recordings-filter" class="toolbar" on:submit=apply>
                <input id="filter-user" type="text" placeholder="User" bind:value=user />
                <input id="filter-target" type="text" placeholder="Target (ssh:web-1)" bind:value=target />
                <input id="filter-day" type="date" title="Started on (UTC)" bind:value=day />
                <button id="filter-apply" type="submit">"Filter"</button>
            </form>
            {move || match list.get() {
                None => view! { <p class="loading">"Loading recordings…"</p> }.into_any(),
                Some(Err(e)) => view! {
                    <p id="recordings-error" class="error">{format!("Could not list recordings: {e}")}</p>
                }
                .into_any(),
                Some(Ok(list)) if list.is_empty() => {
                    view! { <p id="recordings-empty" class="muted">"No recordings match."</p> }.into_any()
                }
                Some(Ok(list)) => view! { <RecordingTable list /> }.into_any(),
            }}
        </section>
    }
}

#[component]
fn RecordingTable(list: Vec<RecordingInfo>) -> impl IntoView {
    let rows = list
        .into_iter()
        .map(|r| {
            let href = Route::Replay { id: r.id.clone() }.to_hash();
            let download = crate::api::relay_url(&api::recording_path(&r.id));
            let duration = r.modified.saturating_sub(r.started);
            view! {
                <tr class="recording" data-id=r.id.clone()>
                    <td>{time_text(r.started)}</td>
                    <td>{r.user}</td>
                    <td>{r.target}</td>
                    <td>{if r.live { "recording…".to_owned() } else { duration_text(duration) }}</td>
                    <td>{size_text(r.bytes)}</td>
                    <td>
                        {(!r.compressed).then(|| view! { <a class="play" href=href>"Play"</a> })}
                        " "
                        <a class="download" href=download download="">"Download"</a>
                    </td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <table id="recordings-table">
            <thead>
                <tr>
                    <th>"Started (UTC)"</th>
                    <th>"User"</th>
                    <th>"Target"</th>
                    <th>"Duration"</th>
                    <th>"Size"</th>
                    <th></th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
    }
}

/// Unix seconds of the start (UTC) of a `YYYY-MM-DD` day.
fn day_start(day: &str) -> Option<u64> {
    let mut parts = day.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (parts.next()??, parts.next()??, parts.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    u64::try_from(days_from_civil(y, m, d) * DAY as i64).ok()
}

/// Days since 1970-01-01 of a date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date (UTC) of unix seconds, `YYYY-MM-DD`.
fn day_text(seconds: u64) -> String {
    let days = i64::try_from(seconds / DAY).unwrap_or(0);
    // Hinnant's `civil_from_days`.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DD HH:MM:SS` (UTC).
fn time_text(seconds: u64) -> String {
    let s = seconds % DAY;
    format!(
        "{} {:02}:{:02}:{:02}",
        day_text(seconds),
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// `1h 02m 03s`, `2m 03s`, `4s`.
pub fn duration_text(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if h > 0 {
        format!("{h}h {m:02}m {s:02}s")
    } else if m > 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{s}s")
    }
}

/// `512 B`, `1.5 KiB`, `300.0 MiB`.
fn size_text(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn days_round_trip_through_their_unix_seconds() {
        assert_eq!(day_start("1970-01-01"), Some(0));
        assert_eq!(day_start("2026-12-05"), Some(1_796_428_800));
        assert_eq!(day_text(1_796_428_800 + 3_599), "2026-12-05");
        assert_eq!(
            day_start("2024-02-29").map(day_text).as_deref(),
            Some("2024-02-29")
        );
        assert_eq!(day_start("2026-13-01"), None);
        assert_eq!(day_start("nonsense"), None);
        assert_eq!(time_text(1_796_428_800 + 3_723), "2026-12-05 01:02:03");
    }

    #[test]
    fn durations_and_sizes_read_as_people_say_them() {
        assert_eq!(duration_text(4), "4s");
        assert_eq!(duration_text(123), "2m 03s");
        assert_eq!(duration_text(3723), "1h 02m 03s");
        assert_eq!(size_text(512), "512 B");
        assert_eq!(size_text(1536), "1.5 KiB");
        assert_eq!(size_text(300 * 1024 * 1024), "300.0 MiB");
    }
}
