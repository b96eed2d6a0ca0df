//! "My sessions": the user's live terminal sessions (`GET /api/sessions`), wherever they
//! were opened. Opening one here takes it over (the browser that had it is told 4409 and
//! offered to take it back); ending one is one click (`DELETE /api/sessions/{id}`).

use std::time::Duration;

use common::api::TerminalSessionInfo;
use leptos::prelude::*;

use crate::api;
use crate::locale::{Text, t, tr};
use crate::route::{Container, Route};

/// How often the open panel asks again.
const REFRESH: Duration = Duration::from_secs(5);

/// The words of this panel, in one place (for the catalogue).
/// The page of a session's target (`ssh:web1`, `local:sh`, `k8s:c/ns/pod/ctr`).
pub fn route_of(target: &str) -> Option<Route> {
    let (kind, rest) = target.split_once(':')?;
    match kind {
        "ssh" => Some(Route::Ssh {
            host: rest.to_owned(),
        }),
        "local" => Some(Route::Local {
            shell: rest.to_owned(),
        }),
        "k8s" => match rest.split('/').collect::<Vec<_>>().as_slice() {
            [c, ns, pod, ctr] => Some(Route::K8sExec(Container::new(c, ns, pod, ctr))),
            _ => None,
        },
        _ => None,
    }
}

/// `HH:MM:SS`, local time, of Unix seconds.
fn clock(unix: u64) -> String {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(unix as f64 * 1000.0));
    format!(
        "{:02}:{:02}:{:02}",
        date.get_hours(),
        date.get_minutes(),
        date.get_seconds()
    )
}

/// The panel. `here`: the sessions this window shows; `on_open(target, session)` opens one.
#[component]
pub fn SessionsPanel(
    here: Signal<Vec<String>>,
    on_open: Callback<(String, String)>,
) -> impl IntoView {
    let list = RwSignal::new(None::<Result<Vec<TerminalSessionInfo>, String>>);
    let refresh = move || {
        leptos::task::spawn_local(async move {
            let answer = api::sessions().await.map_err(|e| e.to_string());
            list.try_set(Some(answer));
        });
    };
    refresh();
    if let Ok(timer) = set_interval_with_handle(refresh, REFRESH) {
        on_cleanup(move || timer.clear());
    }
    let end = move |id: String| {
        leptos::task::spawn_local(async move {
            if let Err(e) = api::end_session(&id).await {
                list.try_set(Some(Err(e.to_string())));
                return;
            }
            refresh();
        });
    };

    let row = move |info: TerminalSessionInfo| {
        let route = route_of(&info.target);
        let title = route
            .as_ref()
            .map_or_else(|| info.target.clone(), Route::title);
        let shown = {
            let id = info.session.clone();
            move || here.with(|h| h.contains(&id))
        };
        let shown_too = shown.clone();
        let open = {
            let id = info.session.clone();
            let hash = route.map(|r| r.to_hash());
            move |_| {
                if let Some(hash) = hash.clone() {
                    on_open.run((hash, id.clone()));
                }
            }
        };
        let end_it = {
            let id = info.session.clone();
            move |_| end(id.clone())
        };
        let state = if info.attached {
            t(Text::SessionAttached)
        } else {
            t(Text::SessionWaiting)
        };
        view! {
            <li class="session" data-session=info.session.clone() data-attached=info.attached.to_string()>
                <span class="session-target">{title}</span>
                <span class="session-meta muted">
                    {format!(
                        "{state} · {}×{} · {} {} · {} {}",
                        info.size.cols,
                        info.size.rows,
                        t(Text::SessionStarted),
                        clock(info.started),
                        t(Text::SessionActive),
                        clock(info.last_active),
                    )}
                </span>
                <span class="session-actions">
                    <button type="button" class="session-open" on:click=open disabled=shown_too>
                        {move || if shown() { t(Text::ShownHere) } else { t(Text::OpenHere) }}
                    </button>
                    <button type="button" class="session-end" on:click=end_it>{tr(Text::EndSession)}</button>
                </span>
            </li>
        }
    };

    view! {
        <aside id="sessions" class="sessions-panel" aria-label=tr(Text::MySessions)>
            <div class="sessions-head">
                <h2>{tr(Text::MySessions)}</h2>
                <button id="sessions-refresh" type="button" on:click=move |_| refresh()>{tr(Text::Refresh)}</button>
            </div>
            {move || match list.get() {
                None => view! { <p class="loading">"…"</p> }.into_any(),
                Some(Err(e)) => view! { <p id="sessions-error" class="error">{e}</p> }.into_any(),
                Some(Ok(l)) if l.is_empty() => view! { <p id="sessions-empty" class="muted">{tr(Text::SessionsNone)}</p> }.into_any(),
                Some(Ok(l)) => view! { <ul class="session-list">{l.into_iter().map(row).collect_view()}</ul> }.into_any(),
            }}
        </aside>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn session_targets_name_their_pages() {
        assert_eq!(
            route_of("local:sh"),
            Some(Route::Local { shell: "sh".into() })
        );
        assert_eq!(
            route_of("ssh:web-1"),
            Some(Route::Ssh {
                host: "web-1".into()
            })
        );
        assert_eq!(
            route_of("k8s:prod/default/api-1/app"),
            Some(Route::K8sExec(Container::new(
                "prod", "default", "api-1", "app"
            )))
        );
        assert_eq!(route_of("k8s:prod/x"), None);
        assert_eq!(route_of("tail:x"), None);
        assert_eq!(route_of("nonsense"), None);
    }
}
