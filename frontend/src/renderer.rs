//! Which xterm.js renderer draws the terminals: the WebGL one (`@xterm/addon-webgl`: glyphs
//! from a texture atlas, a frame drawn in one GPU call instead of a DOM row per line) or the
//! DOM renderer built into xterm.js.
//!
//! `Auto` (the default) tries WebGL and falls back to the DOM when the browser has no WebGL2
//! (the addon throws when it loads) or later loses the context. The choice is read from
//! `localStorage["opsdeck.renderer"]` (`auto`, `webgl` or `dom`), so a settings page can
//! offer it by storing there; `webgl` that cannot load falls back too, with a note in the console. Which
//! renderer is drawing is kept on the terminal's element as `__opsdeckRenderer`, for tests
//! and the bench.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::Reflect;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::HtmlElement;
use xterm_js_rs::Terminal;

/// The `localStorage` key of the choice.
pub const STORAGE_KEY: &str = "opsdeck.renderer";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Renderer {
    /// WebGL when the browser has it, else the DOM.
    #[default]
    Auto,
    Webgl,
    Dom,
}

impl Renderer {
    pub const ALL: [Self; 3] = [Self::Auto, Self::Webgl, Self::Dom];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Webgl => "webgl",
            Self::Dom => "dom",
        }
    }

    /// The choice named `name` (as [`Renderer::as_str`] spells it); `None` for anything else.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name.trim())
    }

    /// Its name in the settings dialog.
    pub fn label(self) -> crate::i18n::Text {
        use crate::i18n::Text;
        match self {
            Self::Auto => Text::RendererAuto,
            Self::Webgl => Text::RendererWebgl,
            Self::Dom => Text::RendererDom,
        }
    }

    /// Keeps the choice for the terminals opened from now on.
    pub fn store(self) {
        if let Some(storage) = web_sys::window().and_then(|w| w.local_storage().ok().flatten()) {
            let _ = storage.set_item(STORAGE_KEY, self.as_str());
        }
    }

    /// The stored choice; `Auto` when none (or an unknown one) is stored.
    pub fn stored() -> Self {
        web_sys::window()
            .and_then(|w| w.local_storage().ok().flatten())
            .and_then(|s| s.get_item(STORAGE_KEY).ok().flatten())
            .and_then(|name| Self::from_name(&name))
            .unwrap_or_default()
    }
}

#[wasm_bindgen(module = "xterm-addon-webgl")]
extern "C" {
    type WebglAddon;

    #[wasm_bindgen(constructor, catch)]
    fn new() -> Result<WebglAddon, JsValue>;

    /// `onContextLoss(listener)`: the GPU dropped the context (driver reset, too many).
    #[wasm_bindgen(method, js_name = onContextLoss)]
    fn on_context_loss(this: &WebglAddon, listener: &JsValue) -> JsValue;

    #[wasm_bindgen(method)]
    fn dispose(this: &WebglAddon);
}

#[wasm_bindgen]
extern "C" {
    type AddonHost;

    /// `terminal.loadAddon(addon)`, which throws when the WebGL addon finds no WebGL2.
    #[wasm_bindgen(method, catch, js_name = loadAddon)]
    fn load_addon(this: &AddonHost, addon: &JsValue) -> Result<(), JsValue>;
}

/// The WebGL addon while it draws, so it can be disposed with the terminal.
pub struct Drawing {
    webgl: Rc<RefCell<Option<WebglAddon>>>,
    _on_loss: Option<Closure<dyn FnMut(JsValue)>>,
}

impl Drawing {
    /// Gives the terminal the chosen renderer (after `terminal.open`, which WebGL needs).
    pub fn start(choice: Renderer, terminal: &Terminal, element: &HtmlElement) -> Self {
        let mark = |name: &str| {
            let _ = Reflect::set(element, &"__opsdeckRenderer".into(), &name.into());
        };
        let none = || Self {
            webgl: Rc::new(RefCell::new(None)),
            _on_loss: None,
        };
        if choice == Renderer::Dom {
            mark("dom");
            return none();
        }
        let loaded = WebglAddon::new().and_then(|addon| {
            terminal
                .unchecked_ref::<AddonHost>()
                .load_addon(&addon)
                .map(|()| addon)
        });
        let addon = match loaded {
            Ok(addon) => addon,
            Err(e) => {
                web_sys::console::info_2(
                    &"opsdeck: no WebGL renderer, drawing with the DOM:".into(),
                    &e,
                );
                mark("dom");
                return none();
            }
        };
        mark("webgl");
        let webgl = Rc::new(RefCell::new(None::<WebglAddon>));
        let held = webgl.clone();
        let element = element.clone();
        // On a lost context, dispose the addon: xterm.js goes back to its DOM renderer.
        let on_loss = Closure::<dyn FnMut(JsValue)>::new(move |_| {
            if let Some(addon) = held.borrow_mut().take() {
                addon.dispose();
                let _ = Reflect::set(&element, &"__opsdeckRenderer".into(), &"dom".into());
            }
        });
        addon.on_context_loss(on_loss.as_ref());
        *webgl.borrow_mut() = Some(addon);
        Self {
            webgl,
            _on_loss: Some(on_loss),
        }
    }
}

impl Drop for Drawing {
    fn drop(&mut self) {
        if let Some(addon) = self.webgl.borrow_mut().take() {
            addon.dispose();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn names_round_trip_and_unknown_ones_are_refused() {
        for r in Renderer::ALL {
            assert_eq!(Renderer::from_name(r.as_str()), Some(r));
        }
        assert_eq!(Renderer::from_name("canvas"), None);
        assert_eq!(Renderer::default(), Renderer::Auto);
    }
}
