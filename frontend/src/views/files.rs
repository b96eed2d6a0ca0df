//! The files pane of an SSH host or a pod's container (`#/files/ssh/{host}?path=`,
//! `#/files/k8s/{cluster}/{namespace}/{pod}/{container}?path=`, alone or in a workspace
//! pane): one folder at a time through the relay's `/api/files/ssh/{host}/…` (SFTP on the
//! relay's own login to the host) or `/api/files/k8s/…/{container}/…` (`find`, `tar` and
//! `mv` by exec in the container; see docs/PROTOCOL.md), with the queries of
//! `common::files`. [`FilesPlace`] builds both.
//!
//! - The listing comes a page at a time in the server's order ("Load more" asks for the
//!   next page); the pane shows folders first, then by name, of what it has.
//! - Breadcrumbs and "Up" move between folders; a download is a plain link to the file
//!   (the browser sends the login cookie and saves what `Content-Disposition` names); in a
//!   container a folder has a link too, to its `archive` (the folder as `NAME.tar`).
//! - Uploads go one `XMLHttpRequest` per file (the one browser API that reports upload
//!   progress), from a file picker or files dropped onto the pane, each with a progress
//!   bar, rate, time left and a cancel button; the relay writes to a temporary name and
//!   renames once complete, so a cancelled upload leaves nothing. At most
//!   [`MAX_UPLOADS`] are sent at once, the others wait in the list as queued.
//! - Whole folders too, dropped or chosen with "Upload a folder" (`crate::folders`): their
//!   folders are made first (one that exists is fine), then each file is sent to its place.
//! - The pane offers what the user's grant gives: the listing says it (`DirPage::access`);
//!   with `read`, no upload, drop, new folder, rename or delete, and a note saying so.
//!   [`FileGrants`] tells other pages (terminal, workspace) whether a host or a cluster
//!   has files for the user at all (`Target::file_access` and `ClusterTarget::file_access`
//!   in `GET /api/targets`).
//! - Every refusal is shown in words: the status's meaning from the catalogue, then the
//!   relay's own reason (`i18n::Msg::FilesRefused`).

use std::collections::{HashMap, VecDeque};

use common::files::{
    DEFAULT_PAGE, DirEntry, EntryKind, FileAccess, ListQuery, PathQuery, RenameQuery, base64_decode,
};
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{DragEvent, Event, File, HtmlInputElement, ProgressEvent, XmlHttpRequest};

use crate::api::{self, ApiFailure};
use crate::folders::{Dropped, Tree};
use crate::locale::{Msg, Text, msg, t, tr};
use crate::route::FilesPlace;
use crate::units::{clock_text, minute_text, size_text};

/// Uploads sent at once by one pane; the rest wait, queued, in its transfer list (the
/// relay bounds each user's transfers too, and answers 429 beyond them).
pub const MAX_UPLOADS: usize = 3;

/// What the user may do with the files of each SSH host and in the pods of each cluster,
/// from `GET /api/targets`: asked once per page that offers files, in the background.
/// Nothing is offered until the answer has come.
#[derive(Clone, Copy)]
pub struct FileGrants(RwSignal<Option<Granted>>);

/// The `file_access` of each SSH host and of each cluster (the most any namespace's grant
/// gives: a namespace's listing may then say less).
#[derive(Default)]
struct Granted {
    hosts: HashMap<String, FileAccess>,
    clusters: HashMap<String, FileAccess>,
}

impl FileGrants {
    /// Not known yet; [`FileGrants::load`] asks.
    pub fn unknown() -> Self {
        Self(RwSignal::new(None))
    }

    /// Asks the relay (one `GET /api/targets`); a failure offers nothing.
    pub fn load(self) {
        leptos::task::spawn_local(async move {
            let grants = match api::targets().await {
                Ok(targets) => Granted {
                    hosts: targets
                        .ssh
                        .into_iter()
                        .map(|t| (t.id, t.file_access))
                        .collect(),
                    clusters: targets
                        .k8s
                        .into_iter()
                        .map(|c| (c.id, c.file_access))
                        .collect(),
                },
                Err(_) => Granted::default(),
            };
            let _ = self.0.try_set(Some(grants));
        });
    }

    /// What the user may do with the files of `place` (tracked); `None` until known.
    pub fn of(self, place: &FilesPlace) -> Option<FileAccess> {
        self.0.with(|known| {
            known.as_ref().map(|g| {
                let access = match place {
                    FilesPlace::Ssh(host) => g.hosts.get(host),
                    FilesPlace::Pod(c) => g.clusters.get(&c.cluster),
                };
                access.copied().unwrap_or_default()
            })
        })
    }

    /// Whether the files of `place` may be opened at all (tracked; not while unknown).
    pub fn allows(self, place: &FilesPlace) -> bool {
        self.of(place).is_some_and(|access| !access.is_none())
    }
}

/// One upload in the transfer list.
#[derive(Debug, Clone, PartialEq)]
struct Transfer {
    id: u32,
    name: String,
    total: f64,
    sent: f64,
    /// `Date.now()` when it started, and at its last progress event.
    started: f64,
    updated: f64,
    state: TransferState,
}

#[derive(Debug, Clone, PartialEq)]
enum TransferState {
    /// Waiting for one of the [`MAX_UPLOADS`] to end (or for its folders to be made).
    Queued,
    Sending,
    Done,
    Cancelled,
    Failed(String),
}

impl TransferState {
    fn key(&self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Done => "done",
            Self::Cancelled => "cancelled",
            Self::Failed(_) => "failed",
        }
    }
}

/// The browser side of one upload under way: its request and the handlers it calls (kept
/// alive until it has ended).
struct Upload {
    id: u32,
    xhr: XmlHttpRequest,
    _progress: Closure<dyn FnMut(ProgressEvent)>,
    _ended: Closure<dyn FnMut(Event)>,
}

/// An upload waiting for its turn: the file and where it goes.
struct Waiting {
    id: u32,
    file: File,
    query: PathQuery,
}

/// The pane's state; `Copy`, shared by every handler.
#[derive(Clone, Copy)]
struct FilesPane {
    place: StoredValue<FilesPlace>,
    /// The folder shown: as asked, then as the relay resolved it (`.` is an SSH login's
    /// home folder).
    dir: RwSignal<String>,
    entries: RwSignal<Vec<DirEntry>>,
    /// The offset of the next page, if there is one.
    next: RwSignal<Option<u64>>,
    loading: RwSignal<bool>,
    /// Why the folder could not be listed: the status (0 when the relay was not reached)
    /// and the text.
    error: RwSignal<Option<(u16, String)>>,
    /// Why the last change (mkdir, rename, delete, a refused file) did not happen.
    notice: RwSignal<Option<String>>,
    /// What the user may do here, as the listing said (nothing until it has).
    access: RwSignal<FileAccess>,
    /// Answers to an older listing than this one are dropped.
    generation: StoredValue<u32>,
    overwrite: RwSignal<bool>,
    transfers: RwSignal<Vec<Transfer>>,
    /// The uploads being sent (at most [`MAX_UPLOADS`]) and those waiting, in order.
    uploads: StoredValue<Vec<Upload>, LocalStorage>,
    queue: StoredValue<VecDeque<Waiting>, LocalStorage>,
    next_id: StoredValue<u32>,
}

/// The status and the words of a failed files call.
fn refusal(e: &ApiFailure) -> (u16, String) {
    let (status, detail) = match e {
        ApiFailure::Status { status, message } => (*status, message),
        ApiFailure::Unauthorized(message) => (401, message),
        other => return (0, other.to_string()),
    };
    (status, msg(&Msg::FilesRefused { status, detail }))
}

impl FilesPane {
    fn place(&self) -> FilesPlace {
        self.place.get_value()
    }

    /// Lists `path` from `offset` (0: a new folder, replacing what is shown).
    fn load(self, path: String, offset: u64) {
        let generation = if offset == 0 {
            self.generation.update_value(|g| *g += 1);
            self.dir.set(path.clone());
            self.error.set(None);
            self.generation.get_value()
        } else {
            self.generation.get_value()
        };
        self.loading.set(true);
        leptos::task::spawn_local(async move {
            let query = ListQuery {
                path: path.clone().into_bytes(),
                offset,
                limit: DEFAULT_PAGE,
            };
            let answer = api::files_list(&self.place(), &query).await;
            if self.generation.try_get_value() != Some(generation) {
                return;
            }
            self.loading.set(false);
            match answer {
                Ok(page) => {
                    if offset == 0 {
                        self.access.set(page.access);
                        self.dir.set(page.path);
                        self.entries.set(page.entries);
                    } else {
                        self.entries.update(|e| e.extend(page.entries));
                    }
                    self.next.set(page.next);
                }
                Err(e) => {
                    if offset == 0 {
                        self.access.set(FileAccess::None);
                        self.entries.set(Vec::new());
                        self.next.set(None);
                    }
                    self.error.set(Some(refusal(&e)));
                }
            }
        });
    }

    fn reload(self) {
        self.load(self.dir.get_untracked(), 0);
    }

    fn open(self, path: String) {
        self.notice.set(None);
        self.load(path, 0);
    }

    /// A change (mkdir, rename, delete): the folder is listed again once it is done, or
    /// the refusal shown.
    fn change(self, call: impl std::future::Future<Output = Result<(), ApiFailure>> + 'static) {
        self.notice.set(None);
        leptos::task::spawn_local(async move {
            match call.await {
                Ok(()) => self.reload(),
                Err(e) => {
                    let _ = self.notice.try_set(Some(refusal(&e).1));
                }
            }
        });
    }

    fn mkdir(self, name: String) {
        if !valid_name(&name) {
            self.notice.set(Some(t(Text::FilesBadName).to_owned()));
            return;
        }
        let place = self.place();
        let path = PathQuery::new(join(&self.dir.get_untracked(), &name));
        self.change(async move { api::files_mkdir(&place, &path).await });
    }

    fn rename(self, entry: &DirEntry) {
        let Ok(Some(to)) =
            window().prompt_with_message_and_default(t(Text::FilesRenamePrompt), &entry.name)
        else {
            return;
        };
        let to = to.trim().to_owned();
        if to == entry.name {
            return;
        }
        if !valid_name(&to) {
            self.notice.set(Some(t(Text::FilesBadName).to_owned()));
            return;
        }
        let dir = self.dir.get_untracked();
        let query = RenameQuery {
            from: entry_path(&dir, entry),
            to: join(&dir, &to).into_bytes(),
        };
        let place = self.place();
        self.change(async move { api::files_rename(&place, &query).await });
    }

    fn delete(self, entry: &DirEntry) {
        let question = msg(&Msg::FilesDeleteConfirm(&entry.name));
        if window().confirm_with_message(&question) != Ok(true) {
            return;
        }
        let path = PathQuery::new(entry_path(&self.dir.get_untracked(), entry));
        let place = self.place();
        self.change(async move { api::files_delete(&place, &path).await });
    }

    fn download_url(&self, entry: &DirEntry) -> String {
        let path = PathQuery::new(entry_path(&self.dir.get_untracked(), entry));
        api::files_url(&self.place(), "file", &path.to_query())
    }

    /// A folder as `NAME.tar` (pods only: see [`FilesPlace::has_archives`]).
    fn archive_url(&self, entry: &DirEntry) -> String {
        let path = PathQuery::new(entry_path(&self.dir.get_untracked(), entry));
        api::files_url(&self.place(), "archive", &path.to_query())
    }

    /// Whether the user may change files here (the listing said `write`).
    fn writable(&self) -> bool {
        self.access.get_untracked() == FileAccess::Write
    }

    /// Sends what was dropped onto the pane (files, folders or both).
    fn upload_dropped(self, dropped: Dropped) {
        leptos::task::spawn_local(async move {
            match dropped.walk().await {
                Ok(tree) => self.upload_tree(tree),
                Err(e) => {
                    let _ = self
                        .notice
                        .try_set(Some(msg(&Msg::FilesFolderUnreadable(&e))));
                }
            }
        });
    }

    /// Sends files into their places under the folder shown: the folders they need are
    /// made first (one that exists already is fine), then each file is queued.
    fn upload_tree(self, tree: Tree) {
        if tree.is_empty() || self.generation.try_get_value().is_none() {
            return;
        }
        if !tree.places().all(|place| place.split('/').all(valid_name)) {
            self.notice.set(Some(t(Text::FilesBadName).to_owned()));
            return;
        }
        let base = self.dir.get_untracked();
        let overwrite = self.overwrite.get_untracked();
        let place = self.place();
        let folders: Vec<String> = tree.folders().map(str::to_owned).collect();
        // Listed at once, as queued, while their folders are made.
        let waiting: Vec<Waiting> = tree
            .into_files()
            .into_iter()
            .map(|(place, file)| {
                let id = self.listed(place.clone(), file.size());
                let query = PathQuery {
                    path: join(&base, &place).into_bytes(),
                    overwrite,
                };
                Waiting { id, file, query }
            })
            .collect();
        leptos::task::spawn_local(async move {
            for folder in &folders {
                let path = PathQuery::new(join(&base, folder));
                match api::files_mkdir(&place, &path).await {
                    Ok(()) | Err(ApiFailure::Status { status: 409, .. }) => {}
                    Err(e) => {
                        let why = msg(&Msg::FilesFolderNotMade {
                            folder,
                            why: &refusal(&e).1,
                        });
                        let _ = self.notice.try_set(Some(why.clone()));
                        for w in &waiting {
                            self.set_state(w.id, TransferState::Failed(why.clone()));
                        }
                        return;
                    }
                }
            }
            if self.generation.try_get_value().is_none() {
                return;
            }
            if !folders.is_empty() {
                self.reload();
            }
            let waiting = waiting.into_iter().filter(|w| self.is_queued(w.id));
            self.queue.update_value(|q| q.extend(waiting));
            self.pump();
        });
    }

    /// Adds an upload to the transfer list, queued; its id.
    fn listed(self, name: String, total: f64) -> u32 {
        let id = self.next_id.get_value();
        self.next_id.set_value(id.wrapping_add(1));
        let now = js_sys::Date::now();
        self.transfers.update(|ts| {
            ts.push(Transfer {
                id,
                name,
                total,
                sent: 0.0,
                started: now,
                updated: now,
                state: TransferState::Queued,
            })
        });
        id
    }

    fn set_state(self, id: u32, state: TransferState) {
        self.transfers.try_update(|ts| {
            if let Some(t) = ts.iter_mut().find(|t| t.id == id) {
                if state == TransferState::Done {
                    t.sent = t.total;
                }
                if state == TransferState::Sending {
                    t.started = js_sys::Date::now();
                    t.updated = t.started;
                }
                t.state = state;
            }
        });
    }

    /// Starts queued uploads while fewer than [`MAX_UPLOADS`] are being sent.
    fn pump(self) {
        loop {
            let busy = self.uploads.try_with_value(Vec::len).unwrap_or(MAX_UPLOADS);
            if busy >= MAX_UPLOADS {
                return;
            }
            let Some(Some(next)) = self.queue.try_update_value(VecDeque::pop_front) else {
                return;
            };
            self.send(next);
        }
    }

    /// Sends one upload.
    fn send(self, Waiting { id, file, query }: Waiting) {
        let failed = |why: Text| self.set_state(id, TransferState::Failed(t(why).to_owned()));
        let url = api::files_url(&self.place(), "file", &query.to_query());
        let Ok(xhr) = XmlHttpRequest::new() else {
            return failed(Text::TransferInterrupted);
        };
        if xhr.open_with_async("PUT", &url, true).is_err() {
            return failed(Text::TransferInterrupted);
        }
        // The login cookie, also when the relay is on another origin.
        xhr.set_with_credentials(true);
        self.set_state(id, TransferState::Sending);
        let transfers = self.transfers;
        let progress = Closure::<dyn FnMut(ProgressEvent)>::new(move |e: ProgressEvent| {
            transfers.try_update(|ts| {
                if let Some(t) = ts.iter_mut().find(|t| t.id == id) {
                    t.sent = e.loaded();
                    t.updated = js_sys::Date::now();
                }
            });
        });
        let request = xhr.clone();
        let ended = Closure::<dyn FnMut(Event)>::new(move |e: Event| {
            let state = match e.type_().as_str() {
                "abort" => TransferState::Cancelled,
                "error" | "timeout" => {
                    TransferState::Failed(t(Text::TransferInterrupted).to_owned())
                }
                _ => match request.status().unwrap_or(0) {
                    201 => TransferState::Done,
                    status => {
                        let body = request.response_text().ok().flatten().unwrap_or_default();
                        TransferState::Failed(refusal(&api::failure(status, &body)).1)
                    }
                },
            };
            let done = state == TransferState::Done;
            self.set_state(id, state);
            if done && self.generation.try_get_value().is_some() {
                self.reload();
            }
            // Its handlers are dropped once this one has returned; then the next waiting
            // upload takes its place.
            set_timeout(
                move || {
                    self.uploads.try_update_value(|u| u.retain(|u| u.id != id));
                    self.pump();
                },
                std::time::Duration::ZERO,
            );
        });
        if let Ok(upload) = xhr.upload() {
            upload.set_onprogress(Some(progress.as_ref().unchecked_ref()));
        }
        for event in ["load", "error", "abort", "timeout"] {
            let _ = xhr.add_event_listener_with_callback(event, ended.as_ref().unchecked_ref());
        }
        let blob: &web_sys::Blob = &file;
        if xhr.send_with_opt_blob(Some(blob)).is_err() {
            return failed(Text::TransferInterrupted);
        }
        self.uploads.update_value(|u| {
            u.push(Upload {
                id,
                xhr,
                _progress: progress,
                _ended: ended,
            })
        });
    }

    /// Cancels an upload: aborts it when it is being sent (the relay then removes its
    /// temporary file), else takes it out of the queue.
    fn cancel(self, id: u32) {
        let sending = self
            .uploads
            .try_with_value(|u| u.iter().find(|u| u.id == id).map(|u| u.xhr.clone()))
            .flatten();
        match sending {
            Some(xhr) => {
                let _ = xhr.abort();
            }
            None => {
                self.queue.try_update_value(|q| q.retain(|w| w.id != id));
                self.set_state(id, TransferState::Cancelled);
            }
        }
    }

    /// Whether an upload is still waiting (not cancelled meanwhile).
    fn is_queued(self, id: u32) -> bool {
        self.transfers
            .try_with_untracked(|ts| {
                ts.iter()
                    .any(|t| t.id == id && t.state == TransferState::Queued)
            })
            .unwrap_or(false)
    }
}

/// Sends what a file input (files, or a folder) was given, then empties it (the same
/// files can be chosen again).
fn picked(ev: &Event, pane: FilesPane) {
    let input = event_target::<HtmlInputElement>(ev);
    if let Some(files) = input.files() {
        pane.upload_tree(Tree::picked(&files));
    }
    input.set_value("");
}

/// Whether a drag carries files (not a pane being moved, not text).
fn carries_files(ev: &DragEvent) -> bool {
    ev.data_transfer()
        .is_some_and(|d| d.types().includes(&"Files".into(), 0))
}

#[component]
pub fn FilesPage(place: FilesPlace, path: Option<String>) -> impl IntoView {
    let start = path.unwrap_or_else(|| place.start().to_owned());
    let archives = place.has_archives();
    // `data-host` for an SSH host, `data-pod` (`namespace/pod/container`) for a container.
    let (data_host, data_pod) = match &place {
        FilesPlace::Ssh(host) => (Some(host.clone()), None),
        FilesPlace::Pod(_) => (None, Some(place.label())),
    };
    let pane = FilesPane {
        place: StoredValue::new(place),
        dir: RwSignal::new(String::new()),
        entries: RwSignal::new(Vec::new()),
        next: RwSignal::new(None),
        loading: RwSignal::new(false),
        error: RwSignal::new(None),
        notice: RwSignal::new(None),
        access: RwSignal::new(FileAccess::None),
        generation: StoredValue::new(0),
        overwrite: RwSignal::new(false),
        transfers: RwSignal::new(Vec::new()),
        uploads: StoredValue::new_local(Vec::new()),
        queue: StoredValue::new_local(VecDeque::new()),
        next_id: StoredValue::new(1),
    };
    pane.load(start, 0);
    on_cleanup(move || {
        // Leaving the pane cancels its uploads (the relay then removes their temporary
        // files); the waiting ones are never sent.
        pane.queue.try_update_value(VecDeque::clear);
        if let Some(uploads) = pane.uploads.try_update_value(std::mem::take) {
            for upload in &uploads {
                let _ = upload.xhr.abort();
            }
        }
    });

    let new_folder = RwSignal::new(String::new());
    let dragging = RwSignal::new(false);
    let picker = NodeRef::<leptos::html::Input>::new();
    let folder_picker = NodeRef::<leptos::html::Input>::new();
    let writable = move || pane.access.get() == FileAccess::Write;

    let sorted = move || {
        let mut entries = pane.entries.get();
        entries.sort_by(|a, b| {
            (a.kind != EntryKind::Dir)
                .cmp(&(b.kind != EntryKind::Dir))
                .then_with(|| a.name.cmp(&b.name))
        });
        entries
    };
    let row = move |entry: DirEntry| {
        let kind = match entry.kind {
            EntryKind::File => "file",
            EntryKind::Dir => "dir",
            EntryKind::Symlink => "symlink",
            EntryKind::Other => "other",
        };
        let navigable = matches!(entry.kind, EntryKind::Dir | EntryKind::Symlink);
        let target = join(&pane.dir.get_untracked(), &entry.name);
        let name_cell = if navigable && entry.raw.is_none() {
            let label = match (&entry.kind, &entry.link_target) {
                (EntryKind::Symlink, Some(to)) => format!("{} → {to}", entry.name),
                _ => format!("{}/", entry.name),
            };
            view! {
                <button type="button" class="file-open link" on:click=move |_| pane.open(target.clone())>
                    {label}
                </button>
            }
            .into_any()
        } else {
            view! { <span class="file-name">{entry.name.clone()}</span> }.into_any()
        };
        let download = if entry.kind != EntryKind::Dir {
            Some(view! {
                <a class="file-download" href=pane.download_url(&entry) download=entry.name.clone()>
                    {tr(Text::Download)}
                </a>
            }.into_any())
        } else {
            // A container's folder comes whole, as a tar.
            archives.then(|| view! {
                <a class="file-archive" href=pane.archive_url(&entry) download=format!("{}.tar", entry.name)>
                    {tr(Text::FilesDownloadTar)}
                </a>
            }.into_any())
        };
        let size = if entry.kind == EntryKind::Dir {
            String::new()
        } else {
            size_text(entry.size)
        };
        let (for_rename, for_delete) = (entry.clone(), entry.clone());
        // Only what the grant gives (`write`).
        let changes = writable().then(|| {
            view! {
                " "
                <button type="button" class="file-rename" on:click=move |_| pane.rename(&for_rename)>
                    {tr(Text::FilesRename)}
                </button> " "
                <button type="button" class="file-delete" on:click=move |_| pane.delete(&for_delete)>
                    {tr(Text::FilesDelete)}
                </button>
            }
        });
        view! {
            <tr class="file-row" data-name=entry.name.clone() data-kind=kind>
                <td class="file-cell-name">{name_cell}</td>
                <td class="file-size" data-bytes=entry.size.to_string()>{size}</td>
                <td class="file-modified">{entry.modified.map(minute_text).unwrap_or_default()}</td>
                <td class="file-mode">{mode_text(entry.mode)}</td>
                <td class="file-owner">{entry.owner.clone().unwrap_or_default()}</td>
                <td class="file-actions">
                    {download}
                    {changes}
                </td>
            </tr>
        }
    };
    let crumbs = move || {
        crumbs(&pane.dir.get())
            .into_iter()
            .map(|(label, path)| {
                view! {
                    <button type="button" class="files-crumb link" data-path=path.clone() on:click=move |_| pane.open(path.clone())>
                        {label}
                    </button>
                    <span class="files-crumb-sep">"/"</span>
                }
            })
            .collect_view()
    };
    let transfer_row = move |tr_: Transfer| {
        let id = tr_.id;
        let status = match &tr_.state {
            TransferState::Sending => {
                let elapsed = ((tr_.updated - tr_.started) / 1000.0).max(0.001);
                let rate = tr_.sent / elapsed;
                let left = if rate > 0.0 {
                    clock_text((tr_.total - tr_.sent).max(0.0) / rate)
                } else {
                    "–".to_owned()
                };
                msg(&Msg::TransferProgress {
                    sent: &size_text(tr_.sent as u64),
                    total: &size_text(tr_.total as u64),
                    rate: &size_text(rate as u64),
                    left: &left,
                })
            }
            TransferState::Done => format!(
                "{} · {}",
                size_text(tr_.total as u64),
                t(Text::TransferDone)
            ),
            TransferState::Queued => t(Text::TransferQueued).to_owned(),
            TransferState::Cancelled => t(Text::TransferCancelled).to_owned(),
            TransferState::Failed(why) => why.clone(),
        };
        let sending = tr_.state == TransferState::Sending;
        let cancellable = sending || tr_.state == TransferState::Queued;
        view! {
            <li class="transfer" data-transfer=id data-name=tr_.name.clone() data-state=tr_.state.key()>
                <span class="transfer-name">{tr_.name.clone()}</span>
                <progress class="transfer-bar" max=tr_.total.max(1.0).to_string() value=tr_.sent.to_string()></progress>
                <span class="transfer-status" role=if cancellable { "status" } else { "alert" }>{status}</span>
                {cancellable.then(|| view! {
                    <button type="button" class="transfer-cancel" on:click=move |_| pane.cancel(id)>
                        {tr(Text::FilesCancel)}
                    </button>
                })}
            </li>
        }
    };

    view! {
        <section class="page files-page" data-host=data_host data-pod=data_pod data-access=move || pane.access.get().as_str()>
            <div class="toolbar files-toolbar" role="toolbar" aria-label=tr(Text::TitleFiles)>
                <button
                    type="button"
                    class="files-up"
                    disabled=move || pane.dir.with(|d| parent(d).is_none())
                    on:click=move |_| {
                        if let Some(up) = parent(&pane.dir.get_untracked()) {
                            pane.open(up);
                        }
                    }
                >
                    {tr(Text::FilesUp)}
                </button>
                <nav class="files-crumbs" aria-label=tr(Text::FilesFolder)>{crumbs}</nav>
                <span class="spacer"></span>
                <button type="button" class="files-refresh" on:click=move |_| pane.reload()>{tr(Text::Refresh)}</button>
                <Show when=move || pane.access.get() == FileAccess::Read>
                    <span class="files-read-only muted" role="note">{tr(Text::FilesReadOnly)}</span>
                </Show>
                <Show when=writable>
                    <button type="button" class="files-upload" on:click=move |_| {
                        if let Some(input) = picker.get_untracked() {
                            input.click();
                        }
                    }>
                        {tr(Text::FilesUpload)}
                    </button>
                    <button type="button" class="files-upload-folder" on:click=move |_| {
                        if let Some(input) = folder_picker.get_untracked() {
                            input.click();
                        }
                    }>
                        {tr(Text::FilesUploadFolder)}
                    </button>
                    <input
                        type="file"
                        multiple=true
                        class="files-picker"
                        hidden=true
                        node_ref=picker
                        on:change=move |ev| picked(&ev, pane)
                    />
                    // Each chosen file's `webkitRelativePath` is its place in the folder.
                    <input
                        type="file"
                        multiple=true
                        prop:webkitdirectory=true
                        class="files-folder-picker"
                        hidden=true
                        node_ref=folder_picker
                        on:change=move |ev| picked(&ev, pane)
                    />
                    <label class="files-overwrite">
                        <input
                            type="checkbox"
                            prop:checked=move || pane.overwrite.get()
                            on:change=move |ev| pane.overwrite.set(event_target_checked(&ev))
                        />
                        {tr(Text::FilesOverwrite)}
                    </label>
                    <form class="files-mkdir" on:submit=move |ev| {
                        ev.prevent_default();
                        let name = new_folder.get_untracked().trim().to_owned();
                        new_folder.set(String::new());
                        pane.mkdir(name);
                    }>
                        <input
                            type="text"
                            class="files-mkdir-name"
                            placeholder=tr(Text::FilesNewFolder)
                            aria-label=tr(Text::FilesNewFolder)
                            bind:value=new_folder
                        />
                        <button type="submit" class="files-mkdir-submit">{tr(Text::FilesCreateFolder)}</button>
                    </form>
                </Show>
            </div>
            {move || pane.notice.get().map(|n| view! {
                <p class="files-notice error" role="alert">
                    {n} " "
                    <button type="button" on:click=move |_| pane.notice.set(None)>{tr(Text::Dismiss)}</button>
                </p>
            })}
            <div
                class="files-drop"
                class:dragging=move || dragging.get()
                on:dragover=move |ev: DragEvent| {
                    if carries_files(&ev) && pane.writable() {
                        ev.prevent_default();
                        dragging.set(true);
                    }
                }
                on:dragleave=move |_| dragging.set(false)
                on:drop=move |ev: DragEvent| {
                    dragging.set(false);
                    // Read now: a drop's items are gone once its handler has returned.
                    let Some(dropped) = ev.data_transfer().map(|d| Dropped::take(&d)) else { return };
                    if dropped.is_empty() {
                        // Not files (a pane being moved): the workspace handles it.
                        return;
                    }
                    ev.prevent_default();
                    ev.stop_propagation();
                    if pane.writable() {
                        pane.upload_dropped(dropped);
                    }
                }
            >
                <Show when=writable>
                    <p class="files-drop-hint muted">{tr(Text::FilesDropHere)}</p>
                </Show>
                {move || pane.error.get().map(|(status, text)| view! {
                    <p class="files-error error" role="alert" data-status=status.to_string()>{text}</p>
                })}
                <Show when=move || pane.error.with(Option::is_none)>
                    <table class="files-table">
                        <thead>
                            <tr>
                                <th>{tr(Text::FilesName)}</th>
                                <th>{tr(Text::FilesSize)}</th>
                                <th>{tr(Text::FilesModified)}</th>
                                <th>{tr(Text::FilesMode)}</th>
                                <th>{tr(Text::FilesOwner)}</th>
                                <th>{tr(Text::FilesActions)}</th>
                            </tr>
                        </thead>
                        <tbody>{move || sorted().into_iter().map(row).collect_view()}</tbody>
                    </table>
                    <Show when=move || !pane.loading.get() && pane.entries.with(Vec::is_empty)>
                        <p class="files-empty muted">{tr(Text::FilesEmpty)}</p>
                    </Show>
                </Show>
                <Show when=move || pane.loading.get()>
                    <p class="files-loading muted">{tr(Text::FilesLoading)}</p>
                </Show>
                {move || pane.next.get().filter(|_| !pane.loading.get()).map(|offset| view! {
                    <button type="button" class="files-more" on:click=move |_| pane.load(pane.dir.get_untracked(), offset)>
                        {tr(Text::FilesLoadMore)}
                    </button>
                })}
            </div>
            <Show when=move || pane.transfers.with(|t| !t.is_empty())>
                <section class="files-transfers" aria-label=tr(Text::FilesTransfers)>
                    <h3>{tr(Text::FilesTransfers)}</h3>
                    <ul>{move || pane.transfers.get().into_iter().rev().map(transfer_row).collect_view()}</ul>
                </section>
            </Show>
        </section>
    }
}

/// `name` inside `dir`.
fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// An entry's path bytes: its exact name's bytes when it has them (a name that is not
/// UTF-8), else its name.
fn entry_path(dir: &str, entry: &DirEntry) -> Vec<u8> {
    match entry.raw.as_deref().and_then(base64_decode) {
        Some(raw) => {
            let mut path = join(dir, "").into_bytes();
            path.extend(raw);
            path
        }
        None => join(dir, &entry.name).into_bytes(),
    }
}

/// The folder above an absolute one; `None` at `/` (and for a relative one, before the
/// relay has resolved it).
fn parent(dir: &str) -> Option<String> {
    let trimmed = dir.trim_end_matches('/');
    if !dir.starts_with('/') || trimmed.is_empty() {
        return None;
    }
    match trimmed.rsplit_once('/') {
        Some(("", _)) => Some("/".to_owned()),
        Some((up, _)) => Some(up.to_owned()),
        None => None,
    }
}

/// The breadcrumbs of an absolute folder: `/` and then each folder, with its path.
fn crumbs(dir: &str) -> Vec<(String, String)> {
    if !dir.starts_with('/') {
        return Vec::new();
    }
    let mut out = vec![("/".to_owned(), "/".to_owned())];
    let mut path = String::new();
    for part in dir.split('/').filter(|p| !p.is_empty()) {
        path.push('/');
        path.push_str(part);
        out.push((part.to_owned(), path.clone()));
    }
    out
}

/// A name a new file or folder may have: one path component, not `.` or `..`.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\0')
        && name.len() <= common::files::MAX_NAME_BYTES
}

/// `drwxr-xr-x` from a Unix mode with its type bits.
fn mode_text(mode: u32) -> String {
    let kind = match mode & 0o170_000 {
        0o040_000 => 'd',
        0o120_000 => 'l',
        0o100_000 => '-',
        0o020_000 => 'c',
        0o060_000 => 'b',
        0o010_000 => 'p',
        0o140_000 => 's',
        _ => '?',
    };
    let mut text = String::from(kind);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        text.push(if bits & 4 != 0 { 'r' } else { '-' });
        text.push(if bits & 2 != 0 { 'w' } else { '-' });
        text.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn folders_join_go_up_and_make_breadcrumbs() {
        assert_eq!(join("/srv", "app"), "/srv/app");
        assert_eq!(join("/", "etc"), "/etc");
        assert_eq!(parent("/srv/app"), Some("/srv".to_owned()));
        assert_eq!(parent("/srv/"), Some("/".to_owned()));
        assert_eq!(parent("/srv"), Some("/".to_owned()));
        assert_eq!(parent("/"), None);
        assert_eq!(parent("."), None);
        assert_eq!(
            crumbs("/srv/app ü"),
            vec![
                ("/".to_owned(), "/".to_owned()),
                ("srv".to_owned(), "/srv".to_owned()),
                ("app ü".to_owned(), "/srv/app ü".to_owned()),
            ]
        );
        assert!(crumbs(".").is_empty());
    }

    #[test]
    fn names_that_are_not_utf8_are_addressed_by_their_bytes() {
        let entry = DirEntry {
            name: "caf\u{fffd}".into(),
            raw: Some(common::files::base64_encode(b"caf\xe9")),
            kind: EntryKind::File,
            size: 1,
            mode: 0o100_644,
            owner: None,
            modified: None,
            link_target: None,
        };
        assert_eq!(entry_path("/tmp", &entry), b"/tmp/caf\xe9");
        let plain = DirEntry {
            raw: None,
            name: "a.txt".into(),
            ..entry
        };
        assert_eq!(entry_path("/", &plain), b"/a.txt");
    }

    #[test]
    fn new_names_are_single_components() {
        assert!(valid_name("report 2026.txt"));
        assert!(valid_name("日志"));
        for bad in ["", ".", "..", "a/b", "a\0b"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert!(!valid_name(&"x".repeat(256)));
    }

    #[test]
    fn modes_read_like_ls() {
        assert_eq!(mode_text(0o100_644), "-rw-r--r--");
        assert_eq!(mode_text(0o040_755), "drwxr-xr-x");
        assert_eq!(mode_text(0o120_777), "lrwxrwxrwx");
    }
}
