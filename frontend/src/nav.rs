//! Moving between pages. The page is the [`Route`] of `location.hash`: going somewhere sets
//! the hash, and the root component follows the `hashchange` event. Pages and the socket
//! ([`crate::ws`], when the relay wants a login) call these instead of touching the location.

use leptos::prelude::*;

use crate::route::Route;

/// The route of the current `location.hash`.
pub fn current_route() -> Route {
    Route::parse(&window().location().hash().unwrap_or_default())
}

/// Goes to a page.
pub fn navigate(route: &Route) {
    let _ = window().location().set_hash(&route.to_hash());
}

/// Goes to the login page, coming back to the current page afterwards.
pub fn go_login() {
    let here = current_route();
    if matches!(here, Route::Login { .. }) {
        return;
    }
    let next = match here {
        Route::Picker | Route::NotFound(_) => None,
        other => Some(other.to_hash()),
    };
    navigate(&Route::Login {
        next,
        sso_error: None,
    });
}
