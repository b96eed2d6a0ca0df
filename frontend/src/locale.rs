//! The language in force and the strings of the catalogue in it.
//!
//! [`t`] and [`msg`] read the language reactively: inside a view's closure the text
//! changes when the user switches language in the settings. [`tr`] is the closure itself,
//! for a view or an attribute (`aria-label=tr(Text::Close)`). Code that runs outside any
//! view (a socket's notice, an error's `Display`) uses [`lang_now`].

use leptos::prelude::*;

pub use crate::i18n::{Lang, Msg, Text};
use crate::settings;

/// The language in force, tracked.
pub fn lang() -> Lang {
    settings::resolve(settings::current().with(|s| s.language))
}

/// The language in force, untracked.
pub fn lang_now() -> Lang {
    settings::resolve(settings::current().with_untracked(|s| s.language))
}

/// A fixed string in the language in force (tracked).
pub fn t(text: Text) -> &'static str {
    text.get(lang())
}

/// A fixed string as a closure that follows the language: for views and attributes.
pub fn tr(text: Text) -> impl Fn() -> &'static str + Copy + Send + Sync + 'static {
    move || t(text)
}

/// A string with values, in the language in force (tracked).
pub fn msg(message: &Msg<'_>) -> String {
    message.text(lang())
}
