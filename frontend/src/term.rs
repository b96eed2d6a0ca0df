//! xterm.js, through xterm-js-rs, plus the bindings xterm-js-rs lacks for xterm.js 5/6.
//!
//! xterm-js-rs was written for xterm.js 4. Against xterm.js 6: `writeUtf8` is gone (`write`
//! takes a `Uint8Array`), `setOption` is gone (options are properties of `terminal.options`),
//! and the Unicode 11 widths need `allowProposedApi` plus a setter for
//! `unicode.activeVersion`. Those few calls are bound here. The modules themselves are
//! resolved by the import map in `index.html` (`xterm`, `xterm-addon-fit`, ...).

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
    /// The WebGL renderer when it draws (dropped before the terminal is disposed).
    drawing: Option<Drawing>,
}

impl Term {
    /// Creates the terminal in `parent` and fits it to it. `read_only` terminals take no input.
    pub fn open(parent: &HtmlElement, read_only: bool) -> Self {
        let options = TerminalOptions::new();
        options.set_cursor_blink(!read_only);
        options.set_disable_stdin(read_only);
        options.set_font_family("ui-monospace, 'DejaVu Sans Mono', Menlo, Consolas, monospace");
        options.set_font_size(14);
        options.set_scrollback(10_000);
        let theme = Theme::new();
        theme.set_background("#0f1419");
        theme.set_foreground("#d8dee9");
        options.set_theme(&theme);
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
        let term = Self {
            terminal,
            fit,
            search,
            _callbacks: Vec::new(),
            _key_handler: None,
            disposables: Vec::new(),
            drawing: Some(drawing),
        };
        term.fit();
        term
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

/// Writes text to the system clipboard (needs a secure context: https or localhost).
pub fn copy_text(text: &str) {
    if text.is_empty() {
        return;
    }
    if let Some(window) = web_sys::window() {
        let _ = window.navigator().clipboard().write_text(text);
    }
}
