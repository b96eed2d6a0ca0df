//! xterm.js, through xterm-js-rs, plus the bindings xterm-js-rs lacks for xterm.js 5/6.
//!
//! xterm-js-rs was written for xterm.js 4. Against xterm.js 6: `writeUtf8` is gone (`write`
//! takes a `Uint8Array`), `setOption` is gone (options are properties of `terminal.options`),
//! and the Unicode 11 widths need `allowProposedApi` plus a setter for
//! `unicode.activeVersion`. Those few calls are bound here. The modules themselves are
//! resolved by the import map in `index.html` (`xterm`, `xterm-addon-fit`, ...).

use std::cell::Cell;
use std::rc::Rc;

use js_sys::{Object, Reflect, Uint8Array};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{HtmlElement, KeyboardEvent};
use xterm_js_rs::addons::fit::FitAddon;
use xterm_js_rs::addons::search::SearchAddon;
use xterm_js_rs::addons::unicode11::Unicode11Addon;
use xterm_js_rs::addons::web_links::WebLinksAddon;
use xterm_js_rs::{Disposable, Terminal, TerminalOptions, Theme};

use crate::renderer::{Drawing, Renderer};
use crate::settings::{self, Settings};

#[wasm_bindgen]
extern "C" {
    /// The xterm.js 6 view of a `Terminal` (same object, cast with `unchecked_ref`).
    type Terminal6;

    /// `terminal.write(data: Uint8Array)`: raw bytes; xterm.js decodes UTF-8 across writes.
    #[wasm_bindgen(method, js_name = write)]
    fn write(this: &Terminal6, data: &Uint8Array);

    /// `terminal.write(data, callback)`: `callback` runs once xterm.js has processed `data`.
    #[wasm_bindgen(method, js_name = write)]
    fn write_then(this: &Terminal6, data: &Uint8Array, callback: &JsValue);

    /// `terminal.options`, the xterm.js 5+ replacement of `setOption`/`getOption`.
    #[wasm_bindgen(method, getter)]
    fn options(this: &Terminal6) -> Object;

    /// `terminal.unicode`, whose `activeVersion` xterm-js-rs can only read.
    type Unicode6;

    /// `terminal.unicode.activeVersion = "11"`.
    #[wasm_bindgen(method, setter, js_name = activeVersion)]
    fn set_active_version(this: &Unicode6, version: &str);

    /// The `{cols, rows}` object of `onResize`.
    type Size;
    #[wasm_bindgen(method, getter)]
    fn cols(this: &Size) -> u32;
    #[wasm_bindgen(method, getter)]
    fn rows(this: &Size) -> u32;
}

/// A terminal with its addons, mounted in an element.
pub struct Term {
    terminal: Terminal,
    fit: FitAddon,
    search: SearchAddon,
    /// Closures xterm.js calls back; they live as long as the terminal.
    _callbacks: Vec<Closure<dyn FnMut(JsValue)>>,
    _key_handler: Option<Closure<dyn FnMut(KeyboardEvent) -> bool>>,
    disposables: Vec<Disposable>,
    /// The "copy on select" setting, read by the selection callback.
    copy_on_select: Rc<Cell<bool>>,
    /// The WebGL renderer when it draws (dropped before the terminal is disposed).
    drawing: Option<Drawing>,
}

impl Term {
    /// Creates the terminal in `parent` with the user's `settings` and fits it to it.
    /// `read_only` terminals take no input.
    pub fn open(parent: &HtmlElement, read_only: bool, settings: &Settings) -> Self {
        let options = TerminalOptions::new();
        options.set_cursor_blink(!read_only);
        options.set_disable_stdin(read_only);
        options.set_font_family("ui-monospace, 'DejaVu Sans Mono', Menlo, Consolas, monospace");
        options.set_font_size(u32::from(settings.font_size));
        options.set_scrollback(settings.scrollback);
        options.set_theme(&theme(settings.theme));
        // Unicode 11 widths (CJK, emoji) are a "proposed" API in xterm.js 6.
        let _ = Reflect::set(&options, &"allowProposedApi".into(), &true.into());

        let terminal = Terminal::new(&options);
        let fit = FitAddon::new();
        let search = SearchAddon::new();
        terminal.load_addon(fit.clone().unchecked_into());
        terminal.load_addon(search.clone().unchecked_into());
        terminal.load_addon(WebLinksAddon::new(None, None, None).unchecked_into());
        terminal.load_addon(Unicode11Addon::new().unchecked_into());
        terminal
            .get_unicode()
            .unchecked_ref::<Unicode6>()
            .set_active_version("11");
        terminal.open(parent.clone());
        let drawing = Drawing::start(Renderer::stored(), &terminal, parent);
        // The page shows only the visible rows; the end-to-end tests read the whole buffer
        // (scrollback included) through this property of the terminal's element.
        let _ = Reflect::set(parent, &"__opsdeckTerminal".into(), &terminal);
        let copy_on_select = Rc::new(Cell::new(settings.copy_on_select));
        let mut term = Self {
            terminal,
            fit,
            search,
            _callbacks: Vec::new(),
            _key_handler: None,
            disposables: Vec::new(),
            copy_on_select: Rc::clone(&copy_on_select),
            drawing: Some(drawing),
        };
        let selected: Terminal = term.terminal.clone().unchecked_into();
        let callback = Closure::<dyn FnMut(JsValue)>::new(move |_: JsValue| {
            if copy_on_select.get() && selected.has_selection() {
                copy_text(&selected.get_selection());
            }
        });
        let d = term
            .terminal
            .on_selection_change(callback.as_ref().unchecked_ref());
        term.disposables.push(d);
        term._callbacks.push(callback);
        term.fit();
        term
    }

    /// Applies changed settings: font size, theme, scrollback (refits, as the cell size
    /// may have changed), copy on select.
    pub fn apply(&self, settings: &Settings) {
        self.set_option("fontSize", &JsValue::from(settings.font_size));
        self.set_option("scrollback", &JsValue::from(settings.scrollback));
        self.set_option("theme", &theme(settings.theme));
        self.copy_on_select.set(settings.copy_on_select);
        self.fit();
    }

    /// Fits the terminal to its element; returns the size as (rows, cols).
    pub fn fit(&self) -> (u16, u16) {
        self.fit.fit();
        self.size()
    }

    /// The size in cells as (rows, cols).
    pub fn size(&self) -> (u16, u16) {
        let clamp = |n: u32| u16::try_from(n).unwrap_or(u16::MAX).max(1);
        (
            clamp(self.terminal.get_rows()),
            clamp(self.terminal.get_cols()),
        )
    }

    /// Writes output bytes exactly as received.
    pub fn write_bytes(&self, data: &Uint8Array) {
        self.terminal.unchecked_ref::<Terminal6>().write(data);
    }

    /// Writes output bytes and calls `displayed` once xterm.js has processed them.
    pub fn write_bytes_then(&self, data: &Uint8Array, displayed: impl FnOnce() + 'static) {
        let callback = Closure::once_into_js(displayed);
        self.terminal
            .unchecked_ref::<Terminal6>()
            .write_then(data, &callback);
    }

    /// Writes text (local notices; output never goes through here).
    pub fn write_text(&self, text: &str) {
        self.terminal.write(text);
    }

    /// Calls `f` with what the user types or pastes.
    pub fn on_data(&mut self, mut f: impl FnMut(String) + 'static) {
        let callback = Closure::<dyn FnMut(JsValue)>::new(move |data: JsValue| {
            if let Some(data) = data.as_string() {
                f(data);
            }
        });
        let d = self.terminal.on_data(callback.as_ref().unchecked_ref());
        self.disposables.push(d);
        self._callbacks.push(callback);
    }

    /// Calls `f(rows, cols)` whenever the terminal's size in cells changes.
    pub fn on_resize(&mut self, mut f: impl FnMut(u16, u16) + 'static) {
        let callback = Closure::<dyn FnMut(JsValue)>::new(move |size: JsValue| {
            let size: Size = size.unchecked_into();
            let clamp = |n: u32| u16::try_from(n).unwrap_or(u16::MAX).max(1);
            f(clamp(size.rows()), clamp(size.cols()));
        });
        let d = self.terminal.on_resize(callback.as_ref().unchecked_ref());
        self.disposables.push(d);
        self._callbacks.push(callback);
    }

    /// Ctrl+Shift+C copies the selection; Ctrl+Shift+V is left to the browser, whose paste
    /// event xterm.js turns into input (bracketed paste included).
    pub fn enable_clipboard_keys(&mut self) {
        let terminal: Terminal = self.terminal.clone().unchecked_into();
        let handler = Closure::<dyn FnMut(KeyboardEvent) -> bool>::new(move |e: KeyboardEvent| {
            if !(e.ctrl_key() && e.shift_key()) {
                return true;
            }
            match e.key().to_ascii_lowercase().as_str() {
                "c" => {
                    if e.type_() == "keydown" {
                        e.prevent_default();
                        copy_text(&terminal.get_selection());
                    }
                    false
                }
                "v" => false,
                _ => true,
            }
        });
        self.terminal
            .attach_custom_key_event_handler(handler.as_ref().unchecked_ref());
        self._key_handler = Some(handler);
    }

    /// Copies the selection to the clipboard; false if nothing is selected.
    pub fn copy_selection(&self) -> bool {
        let selection = self.terminal.get_selection();
        if selection.is_empty() {
            return false;
        }
        copy_text(&selection);
        true
    }

    /// Pastes text as if typed (xterm.js applies bracketed paste when the program asked).
    pub fn paste(&self, text: &str) {
        self.terminal.paste(text);
    }

    /// Finds the next (or previous) match in the scrollback; false if none.
    pub fn find(&self, text: &str, backwards: bool) -> bool {
        if text.is_empty() {
            return false;
        }
        if backwards {
            self.search.find_previous(text, None)
        } else {
            self.search.find_next(text, None)
        }
    }

    /// Clears the screen, the scrollback and every mode (a player rewinding).
    pub fn reset(&self) {
        self.terminal.reset();
    }

    /// Sets the size in cells (a player follows the recording's size, not its element).
    pub fn resize(&self, rows: u16, cols: u16) {
        self.terminal.resize(u32::from(cols), u32::from(rows));
    }

    pub fn focus(&self) {
        self.terminal.focus();
    }

    /// Sets any xterm.js option by name (`terminal.options[name] = value`).
    pub fn set_option(&self, name: &str, value: &JsValue) {
        let options = self.terminal.unchecked_ref::<Terminal6>().options();
        let _ = Reflect::set(&options, &name.into(), value);
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        for d in self.disposables.drain(..) {
            d.dispose();
        }
        drop(self.drawing.take());
        self.terminal.dispose();
    }
}

/// The xterm.js theme of one of the app's themes.
fn theme(theme: settings::Theme) -> Theme {
    let (background, foreground, cursor, selection) = theme.terminal_colours();
    let colours = Theme::new();
    colours.set_background(background);
    colours.set_foreground(foreground);
    colours.set_cursor(cursor);
    // xterm.js 5+ names it `selectionBackground` (xterm-js-rs's setter is the 4.x name).
    let _ = Reflect::set(&colours, &"selectionBackground".into(), &selection.into());
    colours
}

/// Writes text to the system clipboard (needs a secure context: https or localhost).
pub fn copy_text(text: &str) {
    if text.is_empty() {
        return;
    }
    if let Some(window) = web_sys::window() {
        let _ = window.navigator().clipboard().write_text(text);
    }
}
