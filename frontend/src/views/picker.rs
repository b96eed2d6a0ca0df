//! The target picker: everything `/api/targets` says the user may open — shells on the
//! relay's machine, SSH hosts, Kubernetes clusters (namespace → pods → containers, via the pods API), log files, chat
//! rooms and, if allowed, job output by token.

use common::api::{ClusterTarget, PodInfo, Target, Targets};
use leptos::prelude::*;

use crate::api::{self, ApiFailure};
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
                None => view! { <p class="loading">"Loading targets…"</p> }.into_any(),
                Some(Err(e)) => {
                    view! { <p id="targets-error" class="error">{format!("Could not load targets: {e}")}</p> }
                        .into_any()
                }
                Some(Ok(t)) => view! { <TargetList targets=t /> }.into_any(),
            }}
        </section>
    }
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
    view! {
        {nothing.then(|| view! { <p id="targets-empty">"You have no targets. Ask an administrator for access."</p> })}
        <Section title="Shells on the relay's machine" show=!local.is_empty()>
            <ul class="target-list">
                {local.into_iter().map(|t| link(t, "target-local", |id| Route::Local { shell: id })).collect_view()}
            </ul>
        </Section>
        <Section title="SSH hosts" show=!ssh.is_empty()>
            <ul class="target-list">
                {ssh.into_iter().map(|t| link(t, "target-ssh", |id| Route::Ssh { host: id })).collect_view()}
            </ul>
        </Section>
        <Section title="Kubernetes" show=!k8s.is_empty()>
            <KubePicker clusters=k8s />
        </Section>
        <Section title="Log files" show=!files.is_empty()>
            <ul class="target-list">
                {files
                    .into_iter()
                    .map(|t| link(t, "target-file", |id| Route::Tail { file: id, lines: DEFAULT_LINES }))
                    .collect_view()}
            </ul>
        </Section>
        <Section title="Chat rooms" show=!chat.is_empty()>
            <ul class="target-list">
                {chat.into_iter().map(|t| link(t, "target-chat", |id| Route::Chat { room: id })).collect_view()}
            </ul>
        </Section>
        <Section title="Job output" show=jobs>
            <JobOpener />
        </Section>
    }
}

#[component]
fn Section(title: &'static str, show: bool, children: Children) -> impl IntoView {
    show.then(|| {
        view! {
            <div class="target-section">
                <h2>{title}</h2>
                {children()}
            </div>
        }
    })
}

fn link(target: Target, class: &'static str, route: fn(String) -> Route) -> impl IntoView {
    let page = route(target.id.clone());
    let href = page.to_hash();
    let id = target.id.clone();
    view! {
        <li>
            <a class=format!("target {class}") data-id=id href=href>
                <span class="target-label">{target.label}</span>
                <span class="target-id">{target.id}</span>
            </a>
            <OpenInWorkspace page />
        </li>
    }
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
                            <div class="namespaces">
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
                                                class:selected=is_selected
                                                data-cluster=id.clone()
                                                data-ns=ns.clone()
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
    let title = format!("Pods in {namespace}");
    view! {
        <div id="pods" data-cluster=data_cluster data-ns=data_ns>
            <h3>{title}</h3>
            {move || match pods.get() {
                Pods::Loading => view! { <p class="loading">"Loading pods…"</p> }.into_any(),
                Pods::Failed(e) => view! { <p id="pods-error" class="error">{e}</p> }.into_any(),
                Pods::Loaded(list) if list.is_empty() => {
                    view! { <p id="pods-empty">"No pods in this namespace."</p> }.into_any()
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
                        "Shell"
                    </a>
                    <OpenInWorkspace page=exec_page />
                    <a class="target-logs" data-pod=pod.name.clone() data-container=container.clone() href=logs>
                        "Logs"
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
            <input id="job-token" type="text" placeholder="job token" bind:value=token />
            <button id="job-open" type="submit">"Watch output"</button>
        </form>
    }
}
