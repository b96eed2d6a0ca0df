//! The files pane of an SSH host (`#/files/ssh/{host}?path=`, alone or in a workspace
//! pane): one folder at a time through the relay's `/api/files/ssh/{host}/…` (SFTP on the
//! relay's own login to the host; see docs/PROTOCOL.md), with the queries of
//! `common::files`.
//!
//! - The listing comes a page at a time in the server's order ("Load more" asks for the
//!   next page); the pane shows folders first, then by name, of what it has.
//! - Breadcrumbs and "Up" move between folders; a download is a plain link to the file
//!   (the browser sends the login cookie and saves what `Content-Disposition` names).
//! - Uploads go one `XMLHttpRequest` per file (the one browser API that reports upload
//!   progress), from a file picker or files dropped onto the pane, each with a progress
//!   bar, rate, time left and a cancel button; the relay writes to a temporary name and
//!   renames once complete, so a cancelled upload leaves nothing.
//! - Every refusal is shown in words: the status's meaning from the catalogue, then the
//!   relay's own reason (`i18n::Msg::FilesRefused`).

use common::api::ApiError;
use common::files::{
    DEFAULT_PAGE, DirEntry, EntryKind, ListQuery, PathQuery, RenameQuery, base64_decode,
};
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{DragEvent, Event, File, FileList, HtmlInputElement, ProgressEvent, XmlHttpRequest};

use crate::api::{self, ApiFailure};
use crate::locale::{Msg, Text, lang_now, msg, t, tr};
use crate::units::{clock_text, minute_text, size_text};

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
    Sending,
    Done,
    Cancelled,
    Failed(String),
}

impl TransferState {
    fn key(&self) -> &'static str {
        match self {
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

/// The pane's state; `Copy`, shared by every handler.
#[derive(Clone, Copy)]
struct FilesPane {
    host: StoredValue<String>,
    /// The folder shown: as asked, then as the relay resolved it (`.` is the home folder).
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
    /// Answers to an older listing than this one are dropped.
    generation: StoredValue<u32>,
    overwrite: RwSignal<bool>,
    transfers: RwSignal<Vec<Transfer>>,
    uploads: StoredValue<Vec<Upload>, LocalStorage>,
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
    fn host(&self) -> String {
        self.host.get_value()
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
            let answer = api::files_list(&self.host(), &query).await;
            if self.generation.try_get_value() != Some(generation) {
                return;
            }
            self.loading.set(false);
            match answer {
                Ok(page) => {
                    if offset == 0 {
                        self.dir.set(page.path);
                        self.entries.set(page.entries);
                    } else {
                        self.entries.update(|e| e.extend(page.entries));
                    }
                    self.next.set(page.next);
                }
                Err(e) => {
                    if offset == 0 {
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
        let host = self.host();
        let path = PathQuery::new(join(&self.dir.get_untracked(), &name));
        self.change(async move { api::files_mkdir(&host, &path).await });
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
        let host = self.host();
        self.change(async move { api::files_rename(&host, &query).await });
    }

    fn delete(self, entry: &DirEntry) {
        let question = msg(&Msg::FilesDeleteConfirm(&entry.name));
        if window().confirm_with_message(&question) != Ok(true) {
            return;
        }
        let path = PathQuery::new(entry_path(&self.dir.get_untracked(), entry));
        let host = self.host();
        self.change(async move { api::files_delete(&host, &path).await });
    }

    fn download_url(&self, entry: &DirEntry) -> String {
        let path = PathQuery::new(entry_path(&self.dir.get_untracked(), entry));
        api::files_url(&self.host(), "file", &path.to_query())
    }

    fn upload_all(self, files: &FileList) {
        for i in 0..files.length() {
            if let Some(file) = files.get(i) {
                self.upload(file);
            }
        }
    }

    /// Starts one upload into the folder shown.
    fn upload(self, file: File) {
        let name = file.name();
        if !valid_name(&name) {
            self.notice.set(Some(t(Text::FilesBadName).to_owned()));
            return;
        }
        let query = PathQuery {
            path: join(&self.dir.get_untracked(), &name).into_bytes(),
            overwrite: self.overwrite.get_untracked(),
        };
        let url = api::files_url(&self.host(), "file", &query.to_query());
        let Ok(xhr) = XmlHttpRequest::new() else {
            return;
        };
        if xhr.open_with_async("PUT", &url, true).is_err() {
            return;
        }
        // The login cookie, also when the relay is on another origin.
        xhr.set_with_credentials(true);
        let id = self.next_id.get_value();
        self.next_id.set_value(id.wrapping_add(1));
        let now = js_sys::Date::now();
        self.transfers.update(|ts| {
            ts.push(Transfer {
                id,
                name,
                total: file.size(),
                sent: 0.0,
                started: now,
                updated: now,
                state: TransferState::Sending,
            })
        });
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
                        let detail = serde_json::from_str::<ApiError>(&body)
                            .map(|e| e.error)
                            .unwrap_or_default();
                        TransferState::Failed(
                            Msg::FilesRefused {
                                status,
                                detail: &detail,
                            }
                            .text(lang_now()),
                        )
                    }
                },
            };
            let done = state == TransferState::Done;
            transfers.try_update(|ts| {
                if let Some(t) = ts.iter_mut().find(|t| t.id == id) {
                    if done {
                        t.sent = t.total;
                    }
                    t.state = state;
                }
            });
            if done && self.generation.try_get_value().is_some() {
                self.reload();
            }
            // Its handlers are dropped once this one has returned.
            let uploads = self.uploads;
            set_timeout(
                move || {
                    uploads.try_update_value(|u| u.retain(|u| u.id != id));
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
            let why = t(Text::TransferInterrupted).to_owned();
            self.transfers.update(|ts| {
                if let Some(entry) = ts.iter_mut().find(|entry| entry.id == id) {
                    entry.state = TransferState::Failed(why);
                }
            });
            return;
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

    fn cancel(self, id: u32) {
        self.uploads.with_value(|u| {
            if let Some(upload) = u.iter().find(|u| u.id == id) {
                let _ = upload.xhr.abort();
            }
        });
    }
}

/// Whether a drag carries files (not a pane being moved, not text).
fn carries_files(ev: &DragEvent) -> bool {
    ev.data_transfer()
        .is_some_and(|d| d.types().includes(&"Files".into(), 0))
}

#[component]
pub fn FilesPage(host: String, path: Option<String>) -> impl IntoView {
    let pane = FilesPane {
        host: StoredValue::new(host.clone()),
        dir: RwSignal::new(String::new()),
        entries: RwSignal::new(Vec::new()),
        next: RwSignal::new(None),
        loading: RwSignal::new(false),
        error: RwSignal::new(None),
        notice: RwSignal::new(None),
        generation: StoredValue::new(0),
        overwrite: RwSignal::new(false),
        transfers: RwSignal::new(Vec::new()),
        uploads: StoredValue::new_local(Vec::new()),
        next_id: StoredValue::new(1),
    };
    pane.load(path.unwrap_or_else(|| ".".to_owned()), 0);
    on_cleanup(move || {
        // Leaving the pane cancels its uploads (the relay then removes their temporary
        // files).
        if let Some(uploads) = pane.uploads.try_update_value(std::mem::take) {
            for upload in &uploads {
                let _ = upload.xhr.abort();
            }
        }
    });

    let new_folder = RwSignal::new(String::new());
    let dragging = RwSignal::new(false);
    let picker = NodeRef::<leptos::html::Input>::new();

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
        let download = (entry.kind != EntryKind::Dir).then(|| {
            view! {
                <a class="file-download" href=pane.download_url(&entry) download=entry.name.clone()>
                    {tr(Text::Download)}
                </a>
            }
        });
        let size = if entry.kind == EntryKind::Dir {
            String::new()
        } else {
            size_text(entry.size)
        };
        let (for_rename, for_delete) = (entry.clone(), entry.clone());
        view! {
            <tr class="file-row" data-name=entry.name.clone() data-kind=kind>
                <td class="file-cell-name">{name_cell}</td>
                <td class="file-size" data-bytes=entry.size.to_string()>{size}</td>
                <td class="file-modified">{entry.modified.map(minute_text).unwrap_or_default()}</td>
                <td class="file-mode">{mode_text(entry.mode)}</td>
                <td class="file-owner">{entry.owner.clone().unwrap_or_default()}</td>
                <td class="file-actions">
                    {download} " "
                    <button type="button" class="file-rename" on:click=move |_| pane.rename(&for_rename)>
                        {tr(Text::FilesRename)}
                    </button> " "
                    <button type="button" class="file-delete" on:click=move |_| pane.delete(&for_delete)>
                        {tr(Text::FilesDelete)}
                    </button>
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
            TransferState::Cancelled => t(Text::TransferCancelled).to_owned(),
            TransferState::Failed(why) => why.clone(),
        };
        let sending = tr_.state == TransferState::Sending;
        view! {
            <li class="transfer" data-transfer=id data-name=tr_.name.clone() data-state=tr_.state.key()>
                <span class="transfer-name">{tr_.name.clone()}</span>
                <progress class="transfer-bar" max=tr_.total.max(1.0).to_string() value=tr_.sent.to_string()></progress>
                <span class="transfer-status" role=if sending { "status" } else { "alert" }>{status}</span>
                {sending.then(|| view! {
                    <button type="button" class="transfer-cancel" on:click=move |_| pane.cancel(id)>
                        {tr(Text::FilesCancel)}
                    </button>
                })}
            </li>
        }
    };

    view! {
        <section class="page files-page" data-host=host>
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
                <button type="button" class="files-upload" on:click=move |_| {
                    if let Some(input) = picker.get_untracked() {
                        input.click();
                    }
                }>
                    {tr(Text::FilesUpload)}
                </button>
                <input
                    type="file"
                    multiple=true
                    class="files-picker"
                    hidden=true
                    node_ref=picker
                    on:change=move |ev| {
                        let input = event_target::<HtmlInputElement>(&ev);
                        if let Some(files) = input.files() {
                            pane.upload_all(&files);
                        }
                        // The same file can be picked again.
                        input.set_value("");
                    }
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
                    if carries_files(&ev) {
                        ev.prevent_default();
                        dragging.set(true);
                    }
                }
                on:dragleave=move |_| dragging.set(false)
                on:drop=move |ev: DragEvent| {
                    dragging.set(false);
                    let Some(files) = ev.data_transfer().and_then(|d| d.files()) else { return };
                    if files.length() == 0 {
                        // Not files (a pane being moved): the workspace handles it.
                        return;
                    }
                    ev.prevent_default();
                    ev.stop_propagation();
                    pane.upload_all(&files);
                }
            >
                <p class="files-drop-hint muted">{tr(Text::FilesDropHere)}</p>
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
