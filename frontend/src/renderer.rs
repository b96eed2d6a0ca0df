//! Which xterm.js renderer draws the terminals: the WebGL one (`@xterm/addon-webgl`: glyphs
//! from a texture atlas, a frame drawn in one GPU call instead of a DOM row per line) or the
//! DOM renderer built into xterm.js.
//!
//! `Auto` (the default) uses WebGL only where the browser draws it in hardware, and the DOM
//! otherwise: without a GPU, Chromium draws WebGL in software (SwiftShader), which the bench
//! measured about 6× slower than the DOM renderer (docs/BENCHMARKS.md,
//! `browser`). It falls back to the DOM too when the addon cannot load (no WebGL2) or later
//! loses the context. The choice is read from
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
    /// WebGL when the browser draws it in hardware, else the DOM.
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
        if choice == Renderer::Dom || (choice == Renderer::Auto && !hardware_webgl()) {
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

thread_local! {
    static HARDWARE_WEBGL: std::cell::OnceCell<bool> = const { std::cell::OnceCell::new() };
}

/// Whether this browser draws WebGL2 in hardware, asked once: a probe context's unmasked
/// renderer names the software ones (SwiftShader, llvmpipe). Chromium still hands out
/// SwiftShader contexts under `failIfMajorPerformanceCaveat`, so that flag cannot tell.
fn hardware_webgl() -> bool {
    HARDWARE_WEBGL.with(|known| *known.get_or_init(ask_for_hardware_webgl))
}

/// `UNMASKED_RENDERER_WEBGL` of the `WEBGL_debug_renderer_info` extension.
const UNMASKED_RENDERER_WEBGL: u32 = 0x9246;

fn ask_for_hardware_webgl() -> bool {
    let call = |target: &JsValue, method: &str, args: &[JsValue]| -> Option<JsValue> {
        let function = Reflect::get(target, &method.into())
            .ok()?
            .dyn_into::<js_sys::Function>()
            .ok()?;
        let args: js_sys::Array = args.iter().collect();
        let value = function.apply(target, &args).ok()?;
        (!value.is_null() && !value.is_undefined()).then_some(value)
    };
    let Some(canvas) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.create_element("canvas").ok())
    else {
        return false;
    };
    let Some(gl) = call(&canvas, "getContext", &["webgl2".into()]) else {
        return false;
    };
    let renderer = call(&gl, "getExtension", &["WEBGL_debug_renderer_info".into()])
        .and_then(|_| call(&gl, "getParameter", &[UNMASKED_RENDERER_WEBGL.into()]))
        .and_then(|name| name.as_string())
        .unwrap_or_default()
        .to_lowercase();
    if let Some(lose) = call(&gl, "getExtension", &["WEBGL_lose_context".into()]) {
        let _ = call(&lose, "loseContext", &[]);
    }
    !["swiftshader", "llvmpipe", "software"]
        .iter()
        .any(|software| renderer.contains(software))
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
    fn auto_draws_with_the_dom_in_a_browser_without_a_gpu() {
        // The wasm tests run in headless Chromium without a GPU: its WebGL is software.
        assert!(!hardware_webgl());
    }

    #[test]
    fn names_round_trip_and_unknown_ones_are_refused() {
        for r in Renderer::ALL {
            assert_eq!(Renderer::from_name(r.as_str()), Some(r));
        }
        assert_eq!(Renderer::from_name("canvas"), None);
        assert_eq!(Renderer::default(), Renderer::Auto);
    }
}
