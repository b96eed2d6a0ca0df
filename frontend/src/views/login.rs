//! The login page: one button per single sign-on provider (from `/api/auth/providers`)
//! beside the username and password form (or instead of it, when the relay has password
//! logins switched off), and a plain message when a login or a sign-in was refused.

use common::sso::{AuthProviders, SsoRefusal};
use leptos::prelude::*;

use crate::api::{self, ApiFailure};
use crate::i18n::sso_refusal;
use crate::locale::{Msg, Text, lang, lang_now, tr};
use crate::nav::navigate;
use crate::route::Route;
use crate::session::Session;

#[component]
pub fn LoginPage(next: Option<String>, sso_error: Option<SsoRefusal>) -> impl IntoView {
    let session = use_context::<Session>();
    // Until the relay says otherwise, the password form is offered (older relays).
    let providers = RwSignal::new(AuthProviders {
        local_login: true,
        providers: Vec::new(),
    });
    leptos::task::spawn_local(async move {
        if let Ok(found) = api::providers().await {
            providers.set(found);
        }
    });
    let username = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let pending = RwSignal::new(false);

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if pending.get_untracked() {
            return;
        }
        let (user, pass) = (username.get_untracked(), password.get_untracked());
        if user.trim().is_empty() || pass.is_empty() {
            error.set(Some(Text::EnterCredentials.get(lang_now()).to_owned()));
            return;
        }
        pending.set(true);
        error.set(None);
        let next = next.clone();
        leptos::task::spawn_local(async move {
            match api::login(user.trim().to_owned(), pass).await {
                Ok(me) => {
                    password.set(String::new());
                    if let Some(session) = session {
                        session.me.set(Some(me));
                    }
                    let target = next.as_deref().map(Route::parse).unwrap_or(Route::Picker);
                    navigate(&target);
                }
                Err(ApiFailure::Unauthorized(_)) => {
                    error.set(Some(Text::WrongPassword.get(lang_now()).to_owned()));
                }
                Err(other) => error.set(Some(
                    Msg::CouldNotLogIn(&other.to_string()).text(lang_now()),
                )),
            }
            pending.set(false);
        });
    };

    let local_login = move || providers.with(|p| p.local_login);
    let buttons = move || {
        providers.with(|p| {
            p.providers
                .iter()
                .map(|provider| {
                    let href = api::relay_url(&provider.login_path);
                    let id = format!("sso-{}", provider.id);
                    view! {
                        <a class="sso-button button" id=id data-provider=provider.id.clone() href=href>
                            {provider.label.clone()}
                        </a>
                    }
                })
                .collect_view()
        })
    };

    view! {
        <section class="page login-page">
            <div class="card login-card">
            <h1>{tr(Text::LoginHeading)}</h1>
            {sso_error
                .map(|refusal| {
                    view! {
                        <p id="sso-error" class="error" role="alert" data-code=refusal.code()>
                            {move || sso_refusal(refusal, lang())}
                        </p>
                    }
                })}
            <nav id="sso-providers" class="sso-providers" aria-label=tr(Text::SignInWith)>{buttons}</nav>
            <Show when=local_login>
            <form id="login-form" on:submit=submit.clone()>
                <label for="login-username">{tr(Text::Username)}</label>
                <input
                    id="login-username"
                    name="username"
                    type="text"
                    autocomplete="username"
                    autofocus
                    bind:value=username
                />
                <label for="login-password">{tr(Text::Password)}</label>
                <input
                    id="login-password"
                    name="password"
                    type="password"
                    autocomplete="current-password"
                    bind:value=password
                />
                <button id="login-submit" type="submit" disabled=move || pending.get()>
                    {move || tr(if pending.get() { Text::LoggingIn } else { Text::LogIn })()}
                </button>
                <Show when=move || error.with(Option::is_some)>
                    <p id="login-error" class="error" role="alert">
                        {move || error.get().unwrap_or_default()}
                    </p>
                </Show>
            </form>
            </Show>
            </div>
        </section>
    }
}
