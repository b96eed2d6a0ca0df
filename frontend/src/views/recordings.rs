//! The recordings list: the session recordings the user may replay (all of them with the
//! `audit` grant; their own when the relay's `recording.owners_read` allows it), filtered
//! by user, target and day, each with its duration and size and a link to the player.

use common::recording::{RecordingInfo, RecordingQuery};
use leptos::prelude::*;

use crate::api::{self, ApiFailure};
use crate::nav::{go_login, navigate};
use crate::route::Route;
use crate::units::{DAY, day_start, day_text, duration_text, size_text, time_text};

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
