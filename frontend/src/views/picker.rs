//! The target picker: everything `/api/targets` says the user may open — shells on the
//! relay's machine, SSH hosts, Kubernetes clusters (namespace → pods → containers, via the pods API), log files, chat
//! rooms and, if allowed, job output by token. A search box above filters them by label or
//! id as the user types (the pods of a namespace by name).

use common::api::{ClusterTarget, PodInfo, Target, Targets};
use leptos::prelude::*;

use crate::api::{self, ApiFailure};
use crate::locale::{Msg, Text, msg, tr};
use crate::nav::{go_login, navigate};
use crate::route::{Container, DEFAULT_LINES, PodLogOptions, Route};
use crate::views::workspace::OpenInWorkspace;

/// Pods of the namespace being looked at.
#[derive(Debug, Clone, PartialEq)]
enum Pods {
    Loading,
    Loaded(Vec<PodInfo>),
    Failed(String),
}

#[component]
pub fn PickerPage() -> impl IntoView {
    let targets = RwSignal::new(None::<Result<Targets, String>>);
    leptos::task::spawn_local(async move {
        let result = match api::targets().await {
            Ok(t) => Ok(t),
            Err(ApiFailure::Unauthorized(_)) => {
                go_login();
                return;
            }
            Err(e) => Err(e.to_string()),
        };
        targets.try_set(Some(result));
    });

    view! {
        <section id="targets" class="page picker">
            {move || match targets.get() {
                None => view! { <p class="loading">{tr(Text::LoadingTargets)}</p> }.into_any(),
                Some(Err(e)) => {
                    view! { <p id="targets-error" class="error">{move || msg(&Msg::CouldNotLoadTargets(&e))}</p> }
                        .into_any()
                }
                Some(Ok(t)) => view! { <TargetList targets=t /> }.into_any(),
            }}
        </section>
    }
}

/// Whether a target matches the search (case-insensitive, in its label or id).
fn matches(query: &str, label: &str, id: &str) -> bool {
    let query = query.trim().to_lowercase();
    query.is_empty() || label.to_lowercase().contains(&query) || id.to_lowercase().contains(&query)
}

#[component]
fn TargetList(targets: Targets) -> impl IntoView {
    let Targets {
        ssh,
        local,
        k8s,
        files,
        chat,
        jobs,
    } = targets;
    let nothing = ssh.is_empty()
        && local.is_empty()
        && k8s.is_empty()
        && files.is_empty()
        && chat.is_empty()
        && !jobs;
    // What this relay does not offer the user, said once instead of an empty section.
    let missing = [
        (k8s.is_empty(), "targets-no-k8s", Text::NoKubernetes),
        (!jobs, "targets-no-jobs", Text::NoJobOutput),
    ];
    let query = RwSignal::new(String::new());
    // Everything searchable, to say when nothing matches.
    let searchable: Vec<(String, String)> = ssh
        .iter()
        .chain(&local)
        .chain(&files)
        .chain(&chat)
        .map(|t| (t.label.clone(), t.id.clone()))
        .chain(k8s.iter().map(|c| (c.label.clone(), c.id.clone())))
        .collect();
    let no_match = move || {
        query.with(|q| !q.trim().is_empty() && !searchable.iter().any(|(l, i)| matches(q, l, i)))
    };
    view! {
        {nothing.then(|| view! { <p id="targets-empty">{tr(Text::NoTargets)}</p> })}
        {(!nothing).then(|| view! {
            <input
                id="target-search"
                type="search"
                placeholder=tr(Text::SearchTargets)
                aria-label=tr(Text::SearchTargets)
                aria-controls="targets"
                autocomplete="off"
                bind:value=query
            />
        })}
        <Show when=no_match>
            <p id="targets-no-match" role="status">{tr(Text::NoTargetMatches)}</p>
        </Show>
        <Section title=Text::SectionLocal items=local query class="target-local" route=|id| Route::Local { shell: id } />
        <Section title=Text::SectionSsh items=ssh query class="target-ssh" route=|id| Route::Ssh { host: id } />
        <KubeSection clusters=k8s query />
        <Section
            title=Text::SectionFiles
            items=files
            query
            class="target-file"
            route=|id| Route::Tail { file: id, lines: DEFAULT_LINES }
        />
        <Section title=Text::SectionChat items=chat query class="target-chat" route=|id| Route::Chat { room: id } />
        {(!nothing).then(|| view! {
            <div id="targets-unavailable" class="muted">
                {missing
                    .into_iter()
                    .filter(|(absent, _, _)| *absent)
                    .map(|(_, id, text)| view! { <p id=id>{tr(text)}</p> })
                    .collect_view()}
            </div>
        })}
        {jobs.then(|| view! {
            <Show when=move || query.with(|q| q.trim().is_empty())>
                <div class="target-section" role="group" aria-labelledby="section-jobs">
                    <h2 id="section-jobs">{tr(Text::SectionJobs)}</h2>
                    <JobOpener />
                </div>
            </Show>
        })}
    }
}

/// One kind of target: its heading and the targets that match the search.
#[component]
fn Section(
    title: Text,
    items: Vec<Target>,
    query: RwSignal<String>,
    class: &'static str,
    route: fn(String) -> Route,
) -> impl IntoView {
    if items.is_empty() {
        return ().into_any();
    }
    let heading = format!("section-{class}");
    let labels: Vec<(String, String)> = items
        .iter()
        .map(|t| (t.label.clone(), t.id.clone()))
        .collect();
    let any = move || query.with(|q| labels.iter().any(|(l, i)| matches(q, l, i)));
    view! {
        <div class="target-section" role="group" aria-labelledby=heading.clone() hidden=move || !any()>
            <h2 id=heading.clone()>{tr(title)}</h2>
            <ul class="target-list">
                {items.into_iter().map(|t| link(t, class, route, query)).collect_view()}
            </ul>
        </div>
    }
    .into_any()
}

fn link(
    target: Target,
    class: &'static str,
    route: fn(String) -> Route,
    query: RwSignal<String>,
) -> impl IntoView {
    let page = route(target.id.clone());
    let href = page.to_hash();
    // An SSH host whose files the user's grant opens: a link to its files pane too.
    let files = (!target.file_access.is_none())
        .then(|| page.files_here())
        .flatten()
        .map(|files| {
            view! {
                <a class="target-files" href=files.to_hash() title=tr(Text::OpenFilesHereTitle)>
                    {tr(Text::TitleFiles)}
                </a>
            }
        });
    let (label, id) = (target.label.clone(), target.id.clone());
    let data_id = target.id.clone();
    let shown = move || query.with(|q| matches(q, &label, &id));
    view! {
        <li hidden=move || !shown()>
            <a class=format!("target {class}") data-id=data_id href=href>
                <span class="target-label">{target.label}</span>
                <span class="target-id">{target.id}</span>
            </a>
            {files}
            <OpenInWorkspace page />
        </li>
    }
}

#[component]
fn KubeSection(clusters: Vec<ClusterTarget>, query: RwSignal<String>) -> impl IntoView {
    if clusters.is_empty() {
        return ().into_any();
    }
    let labels: Vec<(String, String)> = clusters
        .iter()
        .map(|c| (c.label.clone(), c.id.clone()))
        .collect();
    let any = move || query.with(|q| labels.iter().any(|(l, i)| matches(q, l, i)));
    view! {
        <div class="target-section" role="group" aria-labelledby="section-k8s" hidden=move || !any()>
            <h2 id="section-k8s">{tr(Text::SectionKubernetes)}</h2>
            <KubePicker clusters />
        </div>
    }
    .into_any()
}

#[component]
fn KubePicker(clusters: Vec<ClusterTarget>) -> impl IntoView {
    let selected = RwSignal::new(None::<(String, String)>);
    let pods = RwSignal::new(Pods::Loading);
    let choose = move |cluster: String, namespace: String| {
        selected.set(Some((cluster.clone(), namespace.clone())));
        pods.set(Pods::Loading);
        leptos::task::spawn_local(async move {
            let result = match api::pods(&cluster, &namespace).await {
                Ok(list) => Pods::Loaded(list),
                Err(ApiFailure::Unauthorized(_)) => {
                    go_login();
                    return;
                }
                Err(e) => Pods::Failed(e.to_string()),
            };
            // Only if the user has not picked another namespace meanwhile.
            if selected.get_untracked() == Some((cluster, namespace)) {
                pods.try_set(result);
            }
        });
    };
    view! {
        <div class="clusters">
            {clusters
                .into_iter()
                .map(|c| {
                    let id = c.id.clone();
                    view! {
                        <div class="target-cluster" data-id=c.id.clone()>
                            <h3>{c.label}</h3>
                            <div class="namespaces" role="group" aria-label=tr(Text::Namespaces)>
                                {c
                                    .namespaces
                                    .into_iter()
                                    .map(|ns| {
                                        let (cl, n) = (id.clone(), ns.clone());
                                        let (cl2, n2) = (id.clone(), ns.clone());
                                        let is_selected = move || {
                                            selected.with(|s| s.as_ref() == Some(&(cl2.clone(), n2.clone())))
                                        };
                                        view! {
                                            <button
                                                type="button"
                                                class="target-ns"
                                                class:selected=is_selected.clone()
                                                data-cluster=id.clone()
                                                data-ns=ns.clone()
                                                aria-pressed=move || is_selected().to_string()
                                                on:click=move |_| choose(cl.clone(), n.clone())
                                            >
                                                {ns.clone()}
                                            </button>
                                        }
                                    })
                                    .collect_view()}
                            </div>
                        </div>
                    }
                })
                .collect_view()}
            {move || selected.get().map(|(cluster, namespace)| view! { <PodList cluster namespace pods /> })}
        </div>
    }
}

#[component]
fn PodList(cluster: String, namespace: String, pods: RwSignal<Pods>) -> impl IntoView {
    let (data_cluster, data_ns) = (cluster.clone(), namespace.clone());
    let ns = namespace.clone();
    let title = move || msg(&Msg::PodsIn(&ns));
    view! {
        <div id="pods" data-cluster=data_cluster data-ns=data_ns>
            <h3>{title}</h3>
            {move || match pods.get() {
                Pods::Loading => view! { <p class="loading">{tr(Text::LoadingPods)}</p> }.into_any(),
                Pods::Failed(e) => view! { <p id="pods-error" class="error">{e}</p> }.into_any(),
                Pods::Loaded(list) if list.is_empty() => {
                    view! { <p id="pods-empty">{tr(Text::NoPods)}</p> }.into_any()
                }
                Pods::Loaded(list) => {
                    let (cluster, namespace) = (cluster.clone(), namespace.clone());
                    view! {
                        <ul class="pod-list">
                            {list
                                .into_iter()
                                .map(|pod| pod_row(&cluster, &namespace, pod))
                                .collect_view()}
                        </ul>
                    }
                        .into_any()
                }
            }}
        </div>
    }
}

fn pod_row(cluster: &str, namespace: &str, pod: PodInfo) -> impl IntoView {
    let containers = pod
        .containers
        .iter()
        .map(|container| {
            let target = Container::new(cluster, namespace, &pod.name, container);
            let exec_page = Route::K8sExec(target.clone());
            let logs_page = Route::K8sLogs(target, PodLogOptions::default());
            let exec = exec_page.to_hash();
            let logs = logs_page.to_hash();
            view! {
                <li class="target-container" data-pod=pod.name.clone() data-container=container.clone()>
                    <span class="container-name">{container.clone()}</span>
                    <a class="target-exec" data-pod=pod.name.clone() data-container=container.clone() href=exec>
                        {tr(Text::OpenShell)}
                    </a>
                    <OpenInWorkspace page=exec_page />
                    <a class="target-logs" data-pod=pod.name.clone() data-container=container.clone() href=logs>
                        {tr(Text::OpenLogs)}
                    </a>
                    <OpenInWorkspace page=logs_page />
                </li>
            }
        })
        .collect_view();
    view! {
        <li class="target-pod" data-name=pod.name.clone() data-phase=pod.phase.clone()>
            <span class="pod-name">{pod.name.clone()}</span>
            <span class=format!("pod-phase phase-{}", pod.phase.to_lowercase())>{pod.phase.clone()}</span>
            <ul class="containers">{containers}</ul>
        </li>
    }
}

#[component]
fn JobOpener() -> impl IntoView {
    let token = RwSignal::new(String::new());
    let open = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let t = token.get_untracked().trim().to_owned();
        if !t.is_empty() {
            navigate(&Route::Job { token: t });
        }
    };
    view! {
        <form id="job-form" on:submit=open>
            <input
                id="job-token"
                type="text"
                placeholder=tr(Text::JobToken)
                aria-label=tr(Text::JobToken)
                bind:value=token
            />
            <button id="job-open" type="submit">{tr(Text::WatchOutput)}</button>
        </form>
    }
}
