//! The settings dialog, opened from the top bar of every page (the login page included):
//! language, theme, renderer, font size, scrollback and copy on select. A change is kept and in force
//! at once (`settings::update`; the renderer from the next terminal on); open terminals follow it. The dialog is a native modal
//! `<dialog>`: the browser keeps keyboard focus inside it and Escape closes it.

use leptos::html::Dialog;
use leptos::prelude::*;

use crate::i18n::Lang;
use crate::locale::{Msg, Text, msg, t, tr};
use crate::renderer::Renderer;
use crate::settings::{self, FONT_SIZES, Language, MAX_SCROLLBACK, Theme};

/// The top bar's button and the dialog it opens.
#[component]
pub fn SettingsButton() -> impl IntoView {
    let dialog = NodeRef::<Dialog>::new();
    let open = move |_| {
        if let Some(dialog) = dialog.get_untracked() {
            let _ = dialog.show_modal();
        }
    };
    let close = move |_| {
        if let Some(dialog) = dialog.get_untracked() {
            dialog.close();
        }
    };
    let current = settings::current();
    let number = |ev: &leptos::ev::Event| event_target_value(ev).trim().parse::<u32>().ok();

    view! {
        <button
            id="open-settings"
            type="button"
            aria-haspopup="dialog"
            aria-label=tr(Text::OpenSettings)
            title=tr(Text::OpenSettings)
            on:click=open
        >
            "⚙ "
            {tr(Text::Settings)}
        </button>
        <dialog id="settings" class="settings-dialog" node_ref=dialog aria-labelledby="settings-title">
            <h2 id="settings-title">{tr(Text::Settings)}</h2>
            <div class="settings-grid">
                <label for="set-language">{tr(Text::Language)}</label>
                <select
                    id="set-language"
                    prop:value=move || current.with(|s| s.language.key())
                    on:change=move |ev| {
                        let language = Language::from_key(&event_target_value(&ev));
                        settings::update(|s| s.language = language);
                    }
                >
                    <option value="auto">{tr(Text::BrowserLanguage)}</option>
                    {Lang::ALL
                        .into_iter()
                        .map(|lang| view! { <option value=lang.tag() lang=lang.tag()>{lang.native_name()}</option> })
                        .collect_view()}
                </select>

                <label for="set-theme">{tr(Text::Theme)}</label>
                <select
                    id="set-theme"
                    prop:value=move || current.with(|s| s.theme.key())
                    on:change=move |ev| {
                        if let Some(theme) = Theme::from_key(&event_target_value(&ev)) {
                            settings::update(|s| s.theme = theme);
                        }
                    }
                >
                    {Theme::ALL
                        .into_iter()
                        .map(|theme| view! { <option value=theme.key()>{tr(theme.label())}</option> })
                        .collect_view()}
                </select>

                <label for="set-renderer">{tr(Text::Renderer)}</label>
                <select
                    id="set-renderer"
                    prop:value=Renderer::stored().as_str()
                    on:change=move |ev| {
                        if let Some(renderer) = Renderer::from_name(&event_target_value(&ev)) {
                            renderer.store();
                        }
                    }
                >
                    {Renderer::ALL
                        .into_iter()
                        .map(|r| view! { <option value=r.as_str()>{tr(r.label())}</option> })
                        .collect_view()}
                </select>

                <label for="set-font-size">{tr(Text::FontSize)}</label>
                <span class="settings-value">
                    <input
                        id="set-font-size"
                        type="number"
                        min=*FONT_SIZES.start()
                        max=*FONT_SIZES.end()
                        prop:value=move || current.with(|s| s.font_size.to_string())
                        on:change=move |ev| {
                            if let Some(size) = number(&ev) {
                                let size = u16::try_from(size).unwrap_or(u16::MAX);
                                settings::update(|s| s.font_size = size);
                            }
                        }
                    />
                    <span class="muted" aria-hidden="true">
                        {move || msg(&Msg::FontSizeValue(current.with(|s| s.font_size)))}
                    </span>
                </span>

                <label for="set-scrollback">{tr(Text::Scrollback)}</label>
                <input
                    id="set-scrollback"
                    type="number"
                    min="0"
                    max=MAX_SCROLLBACK
                    step="1000"
                    prop:value=move || current.with(|s| s.scrollback.to_string())
                    on:change=move |ev| {
                        if let Some(lines) = number(&ev) {
                            settings::update(|s| s.scrollback = lines);
                        }
                    }
                />

                <label for="set-copy-on-select">{tr(Text::CopyOnSelect)}</label>
                <input
                    id="set-copy-on-select"
                    type="checkbox"
                    prop:checked=move || current.with(|s| s.copy_on_select)
                    on:change=move |ev| {
                        let on = event_target_checked(&ev);
                        settings::update(|s| s.copy_on_select = on);
                    }
                />
            </div>
            <p class="muted">{tr(Text::SettingsKeptHere)}</p>
            <button id="settings-close" type="button" on:click=close>{tr(Text::Close)}</button>
        </dialog>
    }
}

/// Says once why the stored settings were not used (corrupt, another version).
#[component]
pub fn SettingsNotice() -> impl IntoView {
    let problem = settings::problem();
    move || {
        problem.get().map(|p| {
            view! {
                <p id="settings-notice" class="notice" role="status">
                    {move || t(p.text())}
                    " "
                    <button id="settings-notice-dismiss" type="button" on:click=move |_| problem.set(None)>
                        {tr(Text::Dismiss)}
                    </button>
                </p>
            }
        })
    }
}
