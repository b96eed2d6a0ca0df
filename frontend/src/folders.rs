//! Folders handed to the files pane, dropped onto it or chosen with the folder input, as
//! one plain [`Tree`]: each file with its place under the folder shown, and the folders to
//! make first (parents before children).
//!
//! - A drop holds `DataTransferItem`s, readable only while the `drop` event runs:
//!   [`Dropped::take`] keeps each plain file and, through `webkitGetAsEntry`, each folder's
//!   file system entry; [`Dropped::walk`] then reads the folders, one reader per folder
//!   answering its children in batches (`readEntries`) until an empty batch.
//! - The folder input (`<input type=file webkitdirectory>`) gives `File`s whose
//!   `webkitRelativePath` is their place ([`Tree::picked`]).
//!
//! web-sys binds none of these without features the app needs nowhere else, so the few
//! calls are bound here.

use std::collections::BTreeSet;

use js_sys::{Array, Promise};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{DataTransfer, File, FileList};

#[wasm_bindgen]
extern "C" {
    /// `DataTransfer`, for its `items`.
    type Transfer;
    #[wasm_bindgen(method, getter)]
    fn items(this: &Transfer) -> Items;

    /// `DataTransferItemList`.
    type Items;
    #[wasm_bindgen(method, getter)]
    fn length(this: &Items) -> u32;
    #[wasm_bindgen(method, structural, indexing_getter)]
    fn get(this: &Items, index: u32) -> Option<Item>;

    /// `DataTransferItem`.
    type Item;
    #[wasm_bindgen(method, getter)]
    fn kind(this: &Item) -> String;
    #[wasm_bindgen(method, js_name = getAsFile)]
    fn get_as_file(this: &Item) -> Option<File>;
    /// Absent where the browser has no entry for it (a `DataTransfer` made by a script).
    #[wasm_bindgen(method, js_name = webkitGetAsEntry)]
    fn webkit_get_as_entry(this: &Item) -> Option<Entry>;

    /// `FileSystemEntry`, `FileSystemDirectoryEntry` and `FileSystemFileEntry` alike.
    type Entry;
    #[wasm_bindgen(method, getter)]
    fn name(this: &Entry) -> String;
    #[wasm_bindgen(method, getter, js_name = isDirectory)]
    fn is_directory(this: &Entry) -> bool;
    #[wasm_bindgen(method, getter, js_name = isFile)]
    fn is_file(this: &Entry) -> bool;
    #[wasm_bindgen(method, js_name = createReader)]
    fn create_reader(this: &Entry) -> Reader;
    #[wasm_bindgen(method, js_name = file)]
    fn file(this: &Entry, ok: &js_sys::Function, failed: &js_sys::Function);

    /// `FileSystemDirectoryReader`.
    type Reader;
    #[wasm_bindgen(method, js_name = readEntries)]
    fn read_entries(this: &Reader, ok: &js_sys::Function, failed: &js_sys::Function);

    /// A `File`, for `webkitRelativePath`: its place under the folder chosen with a
    /// folder input (empty for a file chosen alone).
    type PickedFile;
    #[wasm_bindgen(method, getter, js_name = webkitRelativePath)]
    fn webkit_relative_path(this: &PickedFile) -> String;
}

/// Files with their places (`/`-separated, relative to the folder shown) and the folders
/// those need.
#[derive(Default)]
pub struct Tree {
    files: Vec<(String, File)>,
    /// Folders asked for (empty ones too) and the parents of every place.
    folders: BTreeSet<String>,
}

impl Tree {
    /// What a file input gave: its files' places (`webkitRelativePath` from a folder
    /// input, else the name).
    pub fn picked(list: &FileList) -> Self {
        let mut tree = Self::default();
        for file in (0..list.length()).filter_map(|i| list.get(i)) {
            let place = file.unchecked_ref::<PickedFile>().webkit_relative_path();
            let place = if place.is_empty() { file.name() } else { place };
            tree.add_file(place, file);
        }
        tree
    }

    fn add_file(&mut self, place: String, file: File) {
        if let Some((folder, _)) = place.rsplit_once('/') {
            self.add_folder(folder);
        }
        self.files.push((place, file));
    }

    fn add_folder(&mut self, place: &str) {
        self.folders.extend(parents_and_self(place));
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.folders.is_empty()
    }

    /// Every place, folders then files.
    pub fn places(&self) -> impl Iterator<Item = &str> {
        self.folders
            .iter()
            .map(String::as_str)
            .chain(self.files.iter().map(|(place, _)| place.as_str()))
    }

    /// The folders to make, each once, parents before children (a prefix sorts before
    /// what extends it).
    pub fn folders(&self) -> impl Iterator<Item = &str> {
        self.folders.iter().map(String::as_str)
    }

    pub fn into_files(self) -> Vec<(String, File)> {
        self.files
    }
}

/// `a`, `a/b`, `a/b/c` of `a/b/c` (empty parts skipped).
fn parents_and_self(place: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut path = String::new();
    for part in place.split('/').filter(|p| !p.is_empty()) {
        if !path.is_empty() {
            path.push('/');
        }
        path.push_str(part);
        out.push(path.clone());
    }
    out
}

/// What a drop held: its plain files, and its folders still to be read.
#[derive(Default)]
pub struct Dropped {
    files: Vec<File>,
    folders: Vec<Entry>,
}

impl Dropped {
    /// Takes the drop's files and folders; call it while the `drop` event runs.
    pub fn take(data: &DataTransfer) -> Self {
        let items = data.unchecked_ref::<Transfer>().items();
        let mut dropped = Self::default();
        for item in (0..items.length()).filter_map(|i| items.get(i)) {
            if item.kind() != "file" {
                continue;
            }
            match item.webkit_get_as_entry() {
                Some(entry) if entry.is_directory() => dropped.folders.push(entry),
                _ => dropped.files.extend(item.get_as_file()),
            }
        }
        dropped
    }

    /// Nothing a files pane takes (text, or a pane of the workspace being moved).
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.folders.is_empty()
    }

    /// Reads every dropped folder down to its last file.
    pub async fn walk(self) -> Result<Tree, String> {
        let mut tree = Tree::default();
        for file in self.files {
            tree.add_file(file.name(), file);
        }
        let mut folders: Vec<(String, Entry)> =
            self.folders.into_iter().map(|e| (e.name(), e)).collect();
        while let Some((place, folder)) = folders.pop() {
            tree.add_folder(&place);
            let reader = folder.create_reader();
            loop {
                let batch = read_batch(&reader).await?;
                if batch.length() == 0 {
                    break;
                }
                for entry in batch.iter().map(|value| value.unchecked_into::<Entry>()) {
                    let inner = format!("{place}/{}", entry.name());
                    if entry.is_directory() {
                        folders.push((inner, entry));
                    } else if entry.is_file() {
                        tree.add_file(inner, file_of(&entry).await?);
                    }
                }
            }
        }
        Ok(tree)
    }
}

/// One batch of a folder's children (empty once all were given).
async fn read_batch(reader: &Reader) -> Result<Array, String> {
    let promise = Promise::new(&mut |ok, failed| reader.read_entries(&ok, &failed));
    Ok(JsFuture::from(promise).await.map_err(why)?.unchecked_into())
}

/// The `File` of a file entry.
async fn file_of(entry: &Entry) -> Result<File, String> {
    let promise = Promise::new(&mut |ok, failed| entry.file(&ok, &failed));
    Ok(JsFuture::from(promise).await.map_err(why)?.unchecked_into())
}

/// A browser error's words (a `DOMException`'s message).
fn why(error: JsValue) -> String {
    error
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| {
            js_sys::Reflect::get(&error, &"message".into())
                .ok()?
                .as_string()
        })
        .unwrap_or_else(|| format!("{error:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn folders_come_parents_first_and_once() {
        let mut tree = Tree::default();
        tree.add_folder("ツリー/空");
        tree.add_folder("ツリー/子フォルダ ü/深い");
        tree.add_folder("a");
        tree.add_folder("ツリー/子フォルダ ü");
        let folders: Vec<&str> = tree.folders().collect();
        assert_eq!(
            folders,
            [
                "a",
                "ツリー",
                "ツリー/子フォルダ ü",
                "ツリー/子フォルダ ü/深い",
                "ツリー/空"
            ]
        );
        assert_eq!(parents_and_self("/x//y/"), ["x", "x/y"]);
    }
}
