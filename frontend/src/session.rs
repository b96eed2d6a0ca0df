//! Who is logged in. The root component provides a [`Session`] as context once it starts;
//! pages read it (the login page sets it, the user menu clears it) without knowing the root.

use common::api::Me;
use leptos::prelude::*;

/// Who is logged in, shared by every page (`None` until the relay says, or after logout).
#[derive(Clone, Copy)]
pub struct Session {
    pub me: RwSignal<Option<Me>>,
}
