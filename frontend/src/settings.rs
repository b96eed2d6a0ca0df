//! The user's settings, kept in this browser (`localStorage`): font size, theme, scrollback
//! length, copy on select and language.
//!
//! Stored as `{"version": 1, "settings": {...}}` under [`STORAGE_KEY`]. What cannot be read
//! (not JSON, another version, a value of the wrong type) gives the defaults and a
//! [`Problem`] the page shows once; numbers out of range are brought into range. The
//! settings in force are one signal for the whole app ([`current`]): views read it (the
//! terminal applies font, theme and scrollback as they change), [`update`] changes, saves
//! and applies them to the page (`data-theme` and `lang` on `<html>`, see `app.css`).

use std::cell::{Cell, RefCell};

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::i18n::{Lang, Text};

/// The `localStorage` key.
pub const STORAGE_KEY: &str = "opsdeck.settings";
/// The version of the stored format; another one is read as the defaults (with a notice).
pub const VERSION: u32 = 1;
/// Font sizes offered, in CSS pixels.
pub const FONT_SIZES: std::ops::RangeInclusive<u16> = 8..=32;
/// The longest scrollback a terminal keeps, in lines (each costs memory in the page).
pub const MAX_SCROLLBACK: u32 = 100_000;

/// The colours of the page and of the terminals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Theme {
    #[default]
    Dark,
    Light,
    HighContrast,
}

impl Theme {
    pub const ALL: [Theme; 3] = [Theme::Dark, Theme::Light, Theme::HighContrast];

    /// The `data-theme` of `<html>` and the stored value.
    pub fn key(self) -> &'static str {
        match self {
            Self::Dark => "dark",
            Self::Light => "light",
            Self::HighContrast => "high-contrast",
        }
    }

    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.key() == key)
    }

    pub fn label(self) -> Text {
        match self {
            Self::Dark => Text::ThemeDark,
            Self::Light => Text::ThemeLight,
            Self::HighContrast => Text::ThemeHighContrast,
        }
    }

    /// The terminal's colours: (background, foreground, cursor, selection).
    pub fn terminal_colours(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            Self::Dark => ("#0f1419", "#d8dee9", "#d8dee9", "#3b4a5e"),
            Self::Light => ("#fbfbf8", "#1f2328", "#1f2328", "#b6d3f2"),
            Self::HighContrast => ("#000000", "#ffffff", "#ffff00", "#005fcc"),
        }
    }
}

/// The language setting: the browser's, or one chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Language {
    #[default]
    Browser,
    Fixed(Lang),
}

impl Language {
    /// The stored value and the `<select>` value: `auto` or a language tag.
    pub fn key(self) -> &'static str {
        match self {
            Self::Browser => "auto",
            Self::Fixed(lang) => lang.tag(),
        }
    }

    /// Unknown values are the browser's language.
    pub fn from_key(key: &str) -> Self {
        Lang::ALL
            .into_iter()
            .find(|l| l.tag() == key)
            .map_or(Self::Browser, Self::Fixed)
    }
}

impl Serialize for Language {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.key())
    }
}

impl<'de> Deserialize<'de> for Language {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let key = String::deserialize(d)?;
        Ok(Self::from_key(&key))
    }
}

/// Everything the user can set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub font_size: u16,
    pub theme: Theme,
    /// Lines a terminal keeps above its screen.
    pub scrollback: u32,
    /// Copy the terminal's selection to the clipboard as soon as it is made.
    pub copy_on_select: bool,
    pub language: Language,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            font_size: 14,
            theme: Theme::Dark,
            scrollback: 10_000,
            copy_on_select: false,
            language: Language::Browser,
        }
    }
}

impl Settings {
    /// The same settings with every number in its range.
    pub fn bounded(mut self) -> Self {
        self.font_size = self.font_size.clamp(*FONT_SIZES.start(), *FONT_SIZES.end());
        self.scrollback = self.scrollback.min(MAX_SCROLLBACK);
        self
    }
}

/// Why stored settings were not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// Not the stored format (not JSON, a value of the wrong type).
    Corrupt,
    /// Another version of the format.
    OtherVersion,
}

impl Problem {
    pub fn text(self) -> Text {
        match self {
            Self::Corrupt => Text::SettingsCorrupt,
            Self::OtherVersion => Text::SettingsOtherVersion,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Stored {
    version: u32,
    settings: serde_json::Value,
}

/// Reads stored settings (`None`: nothing stored yet, the defaults without a notice).
pub fn parse(raw: Option<&str>) -> (Settings, Option<Problem>) {
    let Some(raw) = raw else {
        return (Settings::default(), None);
    };
    let Ok(stored) = serde_json::from_str::<Stored>(raw) else {
        return (Settings::default(), Some(Problem::Corrupt));
    };
    if stored.version != VERSION {
        return (Settings::default(), Some(Problem::OtherVersion));
    }
    match serde_json::from_value::<Settings>(stored.settings) {
        Ok(settings) => (settings.bounded(), None),
        Err(_) => (Settings::default(), Some(Problem::Corrupt)),
    }
}

/// The stored form of `settings`.
pub fn to_stored(settings: &Settings) -> String {
    let stored = Stored {
        version: VERSION,
        settings: serde_json::to_value(settings).unwrap_or_default(),
    };
    serde_json::to_string(&stored).unwrap_or_default()
}

thread_local! {
    static CURRENT: Cell<Option<RwSignal<Settings>>> = const { Cell::new(None) };
    static PROBLEM: Cell<Option<RwSignal<Option<Problem>>>> = const { Cell::new(None) };
    static BROWSER_LANG: RefCell<Option<Lang>> = const { RefCell::new(None) };
}

/// Reads the stored settings and applies them to the page. Called once, before the app is
/// mounted (so the signals belong to no component and live as long as the page).
pub fn init() {
    let raw = storage().and_then(|s| s.get_item(STORAGE_KEY).ok().flatten());
    let (settings, problem) = parse(raw.as_deref());
    CURRENT.with(|c| c.set(Some(RwSignal::new(settings))));
    PROBLEM.with(|p| p.set(Some(RwSignal::new(problem))));
    apply_to_page(&settings);
}

/// The settings in force (the defaults until [`init`]).
pub fn current() -> RwSignal<Settings> {
    CURRENT.with(|c| match c.get() {
        Some(signal) => signal,
        None => {
            let signal = RwSignal::new(Settings::default());
            c.set(Some(signal));
            signal
        }
    })
}

/// Why the stored settings were not used, until the user dismisses it.
pub fn problem() -> RwSignal<Option<Problem>> {
    PROBLEM.with(|p| match p.get() {
        Some(signal) => signal,
        None => {
            let signal = RwSignal::new(None);
            p.set(Some(signal));
            signal
        }
    })
}

/// Changes the settings, keeps them in this browser and applies them to the page.
pub fn update(change: impl FnOnce(&mut Settings)) {
    let signal = current();
    let mut settings = signal.get_untracked();
    change(&mut settings);
    let settings = settings.bounded();
    if let Some(storage) = storage() {
        let _ = storage.set_item(STORAGE_KEY, &to_stored(&settings));
    }
    apply_to_page(&settings);
    signal.set(settings);
}

/// The language the settings resolve to (the browser's when not chosen).
pub fn resolve(language: Language) -> Lang {
    match language {
        Language::Fixed(lang) => lang,
        Language::Browser => browser_lang(),
    }
}

/// The first of `navigator.languages` the app has (read once).
fn browser_lang() -> Lang {
    BROWSER_LANG.with(|cached| {
        *cached.borrow_mut().get_or_insert_with(|| {
            let tags: Vec<String> = web_sys::window()
                .map(|w| w.navigator().languages())
                .map(|list| list.iter().filter_map(|tag| tag.as_string()).collect())
                .unwrap_or_default();
            Lang::pick(&tags)
        })
    })
}

/// This browser's `localStorage`, when the page may use it.
pub fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

/// `data-theme` and `lang` on `<html>`: the page's colours (`app.css`) and language.
fn apply_to_page(settings: &Settings) {
    let Some(root) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.document_element())
    else {
        return;
    };
    let _ = root.set_attribute("data-theme", settings.theme.key());
    let _ = root.set_attribute("lang", resolve(settings.language).tag());
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn settings_round_trip_through_storage() {
        let settings = Settings {
            font_size: 20,
            theme: Theme::HighContrast,
            scrollback: 500,
            copy_on_select: true,
            language: Language::Fixed(Lang::Zh),
        };
        let stored = to_stored(&settings);
        assert_eq!(parse(Some(&stored)), (settings, None));
        assert!(stored.contains("\"version\":1"), "{stored}");
        assert!(stored.contains("\"high-contrast\""), "{stored}");
        assert!(stored.contains("\"zh-CN\""), "{stored}");
    }

    #[test]
    fn nothing_stored_is_the_defaults_without_a_notice() {
        assert_eq!(parse(None), (Settings::default(), None));
    }

    #[test]
    fn corrupt_or_other_version_gives_the_defaults_with_a_notice() {
        for raw in [
            "",
            "not json",
            "[]",
            r#"{"version":1,"settings":{"font_size":"big"}}"#,
            r#"{"version":1,"settings":{"theme":"neon"}}"#,
        ] {
            assert_eq!(
                parse(Some(raw)),
                (Settings::default(), Some(Problem::Corrupt)),
                "{raw}"
            );
        }
        assert_eq!(
            parse(Some(r#"{"version":0,"settings":{}}"#)),
            (Settings::default(), Some(Problem::OtherVersion))
        );
    }

    #[test]
    fn missing_fields_take_defaults_and_numbers_are_brought_into_range() {
        let (settings, problem) = parse(Some(
            r#"{"version":1,"settings":{"font_size":500,"scrollback":4000000000,"language":"xx"}}"#,
        ));
        assert_eq!(problem, None);
        assert_eq!(settings.font_size, 32);
        assert_eq!(settings.scrollback, MAX_SCROLLBACK);
        assert_eq!(settings.language, Language::Browser);
        assert_eq!(settings.theme, Theme::Dark);
        let (tiny, _) = parse(Some(r#"{"version":1,"settings":{"font_size":1}}"#));
        assert_eq!(tiny.font_size, 8);
    }
}
