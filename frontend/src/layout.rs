//! The workspace's layout as plain data: tabs, each a tree of splits whose leaves are panes,
//! each pane one target (a page of the app, by its fragment `#/ssh/web1`) and, for
//! terminals, the relay session it shows.
//!
//! Everything here is pure (no browser), so splitting, closing, moving, focusing and the
//! storage format are unit-tested. The workspace view (`views/workspace.rs`) renders
//! [`Layout::rects`] and [`Layout::handles`] as absolutely placed panes, so a change of
//! layout moves panes without remounting them (their sockets stay open).
//!
//! Stored as JSON with a [`LAYOUT_VERSION`]; [`Layout::restore`] refuses anything else
//! (corrupt, another version, inconsistent) with a [`LayoutError`] the view shows.

use serde::{Deserialize, Serialize};

/// The version of the stored layout; a stored layout of any other version is ignored.
pub const LAYOUT_VERSION: u32 = 1;

/// The smallest share of a split either side may have.
pub const MIN_RATIO: f64 = 0.1;

/// Most tabs and panes per tab a layout may hold (a stored layout beyond it is refused).
pub const MAX_TABS: usize = 32;
pub const MAX_PANES: usize = 16;

/// A pane's id, unique in its layout.
pub type PaneId = u32;

/// How a split divides its area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dir {
    /// Side by side, a vertical divider between them.
    Row,
    /// One above the other.
    Column,
}

/// One pane: a target and, for a terminal, the session it shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pane {
    pub id: PaneId,
    /// The page's fragment, e.g. `#/local/toolbox`.
    pub target: String,
    /// The relay session of a terminal pane, resumed after a reload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

/// A split or a pane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Node {
    Pane(Pane),
    Split {
        /// Unique in its layout (shared with pane ids); names the drag handle.
        id: u32,
        dir: Dir,
        /// The share of `first`, between [`MIN_RATIO`] and `1 - MIN_RATIO`.
        ratio: f64,
        first: Box<Node>,
        second: Box<Node>,
    },
}

/// One tab: a tree and the pane with the focus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tab {
    pub root: Node,
    pub focus: PaneId,
}

/// The whole workspace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layout {
    pub version: u32,
    pub tabs: Vec<Tab>,
    /// The tab shown.
    pub active: usize,
    /// The next id to hand out.
    pub next_id: u32,
}

/// A place in the workspace, in fractions of its area (0..1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

/// A split's drag handle: the split's whole area, its direction and where the divider is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Handle {
    pub split: u32,
    pub dir: Dir,
    pub area: Rect,
    pub ratio: f64,
}

/// Why a stored layout was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("the saved layout could not be read ({0})")]
    Corrupt(String),
    #[error(
        "the saved layout is from another version of Opsdeck ({0}, this one reads {LAYOUT_VERSION})"
    )]
    Version(u32),
    #[error("the saved layout is inconsistent ({0})")]
    Invalid(&'static str),
}

/// Where a pane is moved or split, relative to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Right,
    Below,
}

impl Default for Layout {
    fn default() -> Self {
        Self::new()
    }
}

impl Layout {
    /// An empty workspace.
    pub fn new() -> Self {
        Self {
            version: LAYOUT_VERSION,
            tabs: Vec::new(),
            active: 0,
            next_id: 1,
        }
    }

    fn fresh_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn new_pane(&mut self, target: &str, session: Option<String>) -> Pane {
        Pane {
            id: self.fresh_id(),
            target: target.to_owned(),
            session,
        }
    }

    /// Opens `target` in a new tab, shown and focused; `None` when there are too many tabs.
    pub fn open_tab(&mut self, target: &str, session: Option<String>) -> Option<PaneId> {
        if self.tabs.len() >= MAX_TABS {
            return None;
        }
        let pane = self.new_pane(target, session);
        let id = pane.id;
        self.tabs.push(Tab {
            root: Node::Pane(pane),
            focus: id,
        });
        self.active = self.tabs.len() - 1;
        Some(id)
    }

    /// Opens `target` beside `pane` (right of it or below it), focused. `None` if there
    /// is no such pane or its tab is full.
    pub fn split(
        &mut self,
        pane: PaneId,
        side: Side,
        target: &str,
        session: Option<String>,
    ) -> Option<PaneId> {
        let tab = self.tab_of(pane)?;
        if self.tabs[tab].root.panes().len() >= MAX_PANES {
            return None;
        }
        let new = self.new_pane(target, session);
        let new_id = new.id;
        let split_id = self.fresh_id();
        let node = self.tabs[tab].root.find_mut(pane)?;
        let old = std::mem::replace(node, Node::Pane(new.clone()));
        *node = Node::Split {
            id: split_id,
            dir: match side {
                Side::Right => Dir::Row,
                Side::Below => Dir::Column,
            },
            ratio: 0.5,
            first: Box::new(old),
            second: Box::new(Node::Pane(new)),
        };
        self.tabs[tab].focus = new_id;
        self.active = tab;
        Some(new_id)
    }

    /// Opens `target` beside the focused pane, or in a new tab when there is none.
    pub fn open_beside(&mut self, side: Side, target: &str) -> Option<PaneId> {
        match self.focused() {
            Some(pane) => self.split(pane, side, target, None),
            None => self.open_tab(target, None),
        }
    }

    /// Closes a pane: its sibling takes the split's place; an emptied tab goes. Returns the
    /// pane closed.
    pub fn close(&mut self, pane: PaneId) -> Option<Pane> {
        let tab = self.tab_of(pane)?;
        let closed = match take_pane(&mut self.tabs[tab].root, pane) {
            Taken::Whole(p) => {
                self.tabs.remove(tab);
                if self.active > tab || self.active >= self.tabs.len() {
                    self.active = self.active.saturating_sub(1);
                }
                return Some(p);
            }
            Taken::Inner(p) => p,
            Taken::No => return None,
        };
        let t = &mut self.tabs[tab];
        if t.focus == pane {
            t.focus = t.root.panes()[0].id;
        }
        Some(closed)
    }

    /// Moves a pane beside another one (in the same tab or another).
    pub fn move_pane(&mut self, pane: PaneId, beside: PaneId, side: Side) -> bool {
        if pane == beside || self.tab_of(beside).is_none() {
            return false;
        }
        let Some(p) = self.close(pane) else {
            return false;
        };
        // Ids are kept: the pane's view and its socket follow it.
        let Some(tab) = self.tab_of(beside) else {
            return false;
        };
        let split_id = self.fresh_id();
        let Some(node) = self.tabs[tab].root.find_mut(beside) else {
            return false;
        };
        let old = std::mem::replace(node, Node::Pane(p.clone()));
        *node = Node::Split {
            id: split_id,
            dir: match side {
                Side::Right => Dir::Row,
                Side::Below => Dir::Column,
            },
            ratio: 0.5,
            first: Box::new(old),
            second: Box::new(Node::Pane(p)),
        };
        self.tabs[tab].focus = pane;
        self.active = tab;
        true
    }

    /// Focuses a pane (and shows its tab).
    pub fn focus(&mut self, pane: PaneId) -> bool {
        let Some(tab) = self.tab_of(pane) else {
            return false;
        };
        self.tabs[tab].focus = pane;
        self.active = tab;
        true
    }

    /// Focuses the next (`step` 1) or previous (`step` -1) pane of the shown tab, in
    /// reading order, wrapping around.
    pub fn focus_step(&mut self, step: i32) -> Option<PaneId> {
        let tab = self.tabs.get_mut(self.active)?;
        let ids: Vec<PaneId> = tab.root.panes().iter().map(|p| p.id).collect();
        let at = ids.iter().position(|id| *id == tab.focus).unwrap_or(0) as i64;
        let n = ids.len() as i64;
        let next = ids[((at + i64::from(step)) % n + n) as usize % ids.len()];
        tab.focus = next;
        Some(next)
    }

    /// Shows another tab (`step` 1 next, -1 previous, wrapping).
    pub fn tab_step(&mut self, step: i32) {
        if self.tabs.is_empty() {
            return;
        }
        let n = self.tabs.len() as i64;
        self.active = ((self.active as i64 + i64::from(step)) % n + n) as usize % self.tabs.len();
    }

    /// The focused pane of the shown tab.
    pub fn focused(&self) -> Option<PaneId> {
        self.tabs.get(self.active).map(|t| t.focus)
    }

    /// Sets a split's ratio (clamped so neither side vanishes).
    pub fn set_ratio(&mut self, split: u32, ratio: f64) -> bool {
        let ratio = clamp_ratio(ratio);
        self.tabs
            .iter_mut()
            .any(|t| set_ratio(&mut t.root, split, ratio))
    }

    /// Records the relay session a terminal pane shows.
    pub fn set_session(&mut self, pane: PaneId, session: Option<String>) -> bool {
        let Some(tab) = self.tab_of(pane) else {
            return false;
        };
        match self.tabs[tab].root.find_mut(pane) {
            Some(Node::Pane(p)) if p.session != session => {
                p.session = session;
                true
            }
            _ => false,
        }
    }

    /// The pane showing a relay session, if any.
    pub fn pane_with_session(&self, session: &str) -> Option<PaneId> {
        self.panes()
            .into_iter()
            .find(|p| p.session.as_deref() == Some(session))
            .map(|p| p.id)
    }

    /// The index of the tab holding a pane.
    pub fn tab_of(&self, pane: PaneId) -> Option<usize> {
        self.tabs
            .iter()
            .position(|t| t.root.panes().iter().any(|p| p.id == pane))
    }

    /// Every pane of every tab.
    pub fn panes(&self) -> Vec<&Pane> {
        self.tabs.iter().flat_map(|t| t.root.panes()).collect()
    }

    /// Where each pane of a tab goes.
    pub fn rects(&self, tab: usize) -> Vec<(PaneId, Rect)> {
        let mut out = Vec::new();
        if let Some(t) = self.tabs.get(tab) {
            walk(&t.root, FULL, &mut |node, area| {
                if let Node::Pane(p) = node {
                    out.push((p.id, area));
                }
            });
        }
        out
    }

    /// The drag handles of a tab's splits.
    pub fn handles(&self, tab: usize) -> Vec<Handle> {
        let mut out = Vec::new();
        if let Some(t) = self.tabs.get(tab) {
            walk(&t.root, FULL, &mut |node, area| {
                if let Node::Split { id, dir, ratio, .. } = node {
                    out.push(Handle {
                        split: *id,
                        dir: *dir,
                        area,
                        ratio: *ratio,
                    });
                }
            });
        }
        out
    }

    /// The stored form.
    pub fn save(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a stored layout; anything corrupt, of another version or inconsistent is
    /// refused.
    pub fn restore(text: &str) -> Result<Self, LayoutError> {
        #[derive(Deserialize)]
        struct Versioned {
            version: u32,
        }
        let versioned: Versioned =
            serde_json::from_str(text).map_err(|e| LayoutError::Corrupt(e.to_string()))?;
        if versioned.version != LAYOUT_VERSION {
            return Err(LayoutError::Version(versioned.version));
        }
        let layout: Self =
            serde_json::from_str(text).map_err(|e| LayoutError::Corrupt(e.to_string()))?;
        layout.check()?;
        Ok(layout)
    }

    fn check(&self) -> Result<(), LayoutError> {
        if self.tabs.len() > MAX_TABS {
            return Err(LayoutError::Invalid("too many tabs"));
        }
        if !self.tabs.is_empty() && self.active >= self.tabs.len() {
            return Err(LayoutError::Invalid("the shown tab does not exist"));
        }
        let mut ids = Vec::new();
        for tab in &self.tabs {
            let panes = tab.root.panes();
            if panes.len() > MAX_PANES {
                return Err(LayoutError::Invalid("too many panes in a tab"));
            }
            if !panes.iter().any(|p| p.id == tab.focus) {
                return Err(LayoutError::Invalid(
                    "a tab focuses a pane it does not hold",
                ));
            }
            let mut bad_ratio = false;
            walk(&tab.root, FULL, &mut |node, _| match node {
                Node::Pane(p) => ids.push(p.id),
                Node::Split { id, ratio, .. } => {
                    ids.push(*id);
                    bad_ratio |= !(MIN_RATIO..=1.0 - MIN_RATIO).contains(ratio);
                }
            });
            if bad_ratio {
                return Err(LayoutError::Invalid("a split's ratio is out of range"));
            }
        }
        if ids.iter().any(|id| *id >= self.next_id) {
            return Err(LayoutError::Invalid("an id is beyond the next id"));
        }
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(LayoutError::Invalid("two parts share an id"));
        }
        Ok(())
    }
}

impl Node {
    /// The panes under this node, in reading order.
    pub fn panes(&self) -> Vec<&Pane> {
        match self {
            Self::Pane(p) => vec![p],
            Self::Split { first, second, .. } => {
                let mut v = first.panes();
                v.extend(second.panes());
                v
            }
        }
    }

    fn find_mut(&mut self, pane: PaneId) -> Option<&mut Node> {
        match self {
            Self::Pane(p) if p.id == pane => Some(self),
            Self::Pane(_) => None,
            Self::Split { first, second, .. } => {
                if first.panes().iter().any(|p| p.id == pane) {
                    first.find_mut(pane)
                } else {
                    second.find_mut(pane)
                }
            }
        }
    }
}

const FULL: Rect = Rect {
    x: 0.0,
    y: 0.0,
    w: 1.0,
    h: 1.0,
};

fn clamp_ratio(ratio: f64) -> f64 {
    if ratio.is_nan() {
        return 0.5;
    }
    ratio.clamp(MIN_RATIO, 1.0 - MIN_RATIO)
}

/// Calls `f` on every node with its area, parents first.
fn walk(node: &Node, area: Rect, f: &mut impl FnMut(&Node, Rect)) {
    f(node, area);
    if let Node::Split {
        dir,
        ratio,
        first,
        second,
        ..
    } = node
    {
        let (a, b) = match dir {
            Dir::Row => (
                Rect {
                    w: area.w * ratio,
                    ..area
                },
                Rect {
                    x: area.x + area.w * ratio,
                    w: area.w * (1.0 - ratio),
                    ..area
                },
            ),
            Dir::Column => (
                Rect {
                    h: area.h * ratio,
                    ..area
                },
                Rect {
                    y: area.y + area.h * ratio,
                    h: area.h * (1.0 - ratio),
                    ..area
                },
            ),
        };
        walk(first, a, f);
        walk(second, b, f);
    }
}

fn set_ratio(node: &mut Node, split: u32, value: f64) -> bool {
    match node {
        Node::Pane(_) => false,
        Node::Split {
            id,
            ratio,
            first,
            second,
            ..
        } => {
            if *id == split {
                *ratio = value;
                true
            } else {
                set_ratio(first, split, value) || set_ratio(second, split, value)
            }
        }
    }
}

enum Taken {
    /// The node was the pane itself: the caller removes it whole.
    Whole(Pane),
    /// Taken from a split under the node, whose sibling took the split's place.
    Inner(Pane),
    No,
}

fn take_pane(node: &mut Node, pane: PaneId) -> Taken {
    let replacement = match node {
        Node::Pane(p) if p.id == pane => return Taken::Whole(p.clone()),
        Node::Pane(_) => return Taken::No,
        Node::Split { first, second, .. } => match take_pane(first, pane) {
            Taken::Whole(p) => (p, (**second).clone()),
            Taken::Inner(p) => return Taken::Inner(p),
            Taken::No => match take_pane(second, pane) {
                Taken::Whole(p) => (p, (**first).clone()),
                other => return other,
            },
        },
    };
    let (taken, sibling) = replacement;
    *node = sibling;
    Taken::Inner(taken)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn ids(layout: &Layout, tab: usize) -> Vec<PaneId> {
        layout.rects(tab).into_iter().map(|(id, _)| id).collect()
    }

    #[test]
    fn splitting_puts_the_new_pane_beside_and_focuses_it() {
        let mut l = Layout::new();
        let a = l.open_tab("#/local/sh", None).unwrap();
        let b = l.split(a, Side::Right, "#/tail/app.log", None).unwrap();
        let c = l.split(b, Side::Below, "#/chat/ops", None).unwrap();
        assert_eq!(l.focused(), Some(c));
        let rects = l.rects(0);
        assert_eq!(ids(&l, 0), vec![a, b, c]);
        assert_eq!(
            rects[0].1,
            Rect {
                x: 0.0,
                y: 0.0,
                w: 0.5,
                h: 1.0
            }
        );
        assert_eq!(
            rects[1].1,
            Rect {
                x: 0.5,
                y: 0.0,
                w: 0.5,
                h: 0.5
            }
        );
        assert_eq!(
            rects[2].1,
            Rect {
                x: 0.5,
                y: 0.5,
                w: 0.5,
                h: 0.5
            }
        );
        assert_eq!(l.handles(0).len(), 2);
        assert_eq!(l.split(999, Side::Right, "#/x", None), None);
    }

    #[test]
    fn closing_a_pane_gives_its_place_to_its_sibling() {
        let mut l = Layout::new();
        let a = l.open_tab("#/local/sh", None).unwrap();
        let b = l.split(a, Side::Right, "#/local/sh", None).unwrap();
        let c = l.split(a, Side::Below, "#/local/sh", None).unwrap();
        assert_eq!(l.close(a).map(|p| p.id), Some(a));
        assert_eq!(ids(&l, 0), vec![c, b]);
        // c took a's whole left half.
        assert_eq!(l.rects(0)[0].1.h, 1.0);
        assert_eq!(l.rects(0)[0].1.w, 0.5);
        l.focus(b);
        l.close(b);
        assert_eq!(l.focused(), Some(c));
        assert!(l.handles(0).is_empty());
        // The last pane takes its tab with it.
        let d = l.open_tab("#/chat/ops", None).unwrap();
        assert_eq!(l.active, 1);
        l.close(d);
        assert_eq!((l.tabs.len(), l.active), (1, 0));
        l.close(c);
        assert!(l.tabs.is_empty());
        assert_eq!(l.focused(), None);
        assert!(l.close(c).is_none());
    }

    #[test]
    fn moving_a_pane_keeps_its_id_and_session() {
        let mut l = Layout::new();
        let a = l.open_tab("#/local/sh", Some("s1".into())).unwrap();
        let b = l.split(a, Side::Right, "#/local/sh", None).unwrap();
        let c = l.open_tab("#/chat/ops", None).unwrap();
        assert!(l.move_pane(a, c, Side::Below));
        assert_eq!(ids(&l, 0), vec![b]);
        assert_eq!(ids(&l, 1), vec![c, a]);
        assert_eq!(l.pane_with_session("s1"), Some(a));
        assert_eq!((l.active, l.focused()), (1, Some(a)));
        assert!(!l.move_pane(a, a, Side::Right));
        assert!(!l.move_pane(a, 999, Side::Right));
    }

    #[test]
    fn focus_and_tabs_step_around() {
        let mut l = Layout::new();
        let a = l.open_tab("#/local/sh", None).unwrap();
        let b = l.split(a, Side::Right, "#/local/sh", None).unwrap();
        assert_eq!(l.focus_step(1), Some(a));
        assert_eq!(l.focus_step(-1), Some(b));
        l.open_tab("#/chat/ops", None);
        l.tab_step(1);
        assert_eq!(l.active, 0);
        l.tab_step(-1);
        assert_eq!(l.active, 1);
    }

    #[test]
    fn ratios_are_kept_within_bounds() {
        let mut l = Layout::new();
        let a = l.open_tab("#/local/sh", None).unwrap();
        l.split(a, Side::Right, "#/local/sh", None);
        let split = l.handles(0)[0].split;
        assert!(l.set_ratio(split, 0.02));
        assert_eq!(l.handles(0)[0].ratio, MIN_RATIO);
        assert!(l.set_ratio(split, f64::NAN));
        assert_eq!(l.handles(0)[0].ratio, 0.5);
        assert!(l.set_ratio(split, 0.7));
        assert_eq!(l.rects(0)[1].1.x, 0.7);
        assert!(!l.set_ratio(12345, 0.5));
    }

    #[test]
    fn a_layout_round_trips_through_storage() {
        let mut l = Layout::new();
        let a = l.open_tab("#/local/sh", None).unwrap();
        let b = l.split(a, Side::Below, "#/ssh/web1", None).unwrap();
        assert!(l.set_session(b, Some("abc".into())));
        assert!(!l.set_session(b, Some("abc".into())));
        l.open_tab("#/chat/ops", None);
        let split = l.handles(0)[0].split;
        l.set_ratio(split, 0.3);
        assert_eq!(Layout::restore(&l.save()), Ok(l));
    }

    #[test]
    fn corrupt_old_or_inconsistent_layouts_are_refused() {
        assert!(matches!(
            Layout::restore("{not json"),
            Err(LayoutError::Corrupt(_))
        ));
        assert!(matches!(
            Layout::restore(r#"{"version":1,"tabs":"x"}"#),
            Err(LayoutError::Corrupt(_))
        ));
        assert_eq!(
            Layout::restore(r#"{"version":0,"panes":[]}"#),
            Err(LayoutError::Version(0))
        );
        let mut l = Layout::new();
        let a = l.open_tab("#/local/sh", None).unwrap();
        l.split(a, Side::Right, "#/local/sh", None);
        let mut bad = l.clone();
        bad.active = 5;
        assert!(matches!(
            Layout::restore(&bad.save()),
            Err(LayoutError::Invalid(_))
        ));
        let mut bad = l.clone();
        bad.tabs[0].focus = 77;
        assert!(matches!(
            Layout::restore(&bad.save()),
            Err(LayoutError::Invalid(_))
        ));
        let mut bad = l.clone();
        bad.next_id = 1;
        assert!(matches!(
            Layout::restore(&bad.save()),
            Err(LayoutError::Invalid(_))
        ));
        let text = l.save().replace("\"ratio\":0.5", "\"ratio\":1.5");
        assert!(matches!(
            Layout::restore(&text),
            Err(LayoutError::Invalid(_))
        ));
        let mut bad = l.clone();
        bad.tabs.push(bad.tabs[0].clone());
        assert!(matches!(
            Layout::restore(&bad.save()),
            Err(LayoutError::Invalid(_))
        ));
        // The error reads as a sentence for the notice.
        assert!(
            LayoutError::Version(0)
                .to_string()
                .contains("another version")
        );
    }

    #[test]
    fn tabs_and_panes_are_bounded() {
        let mut l = Layout::new();
        let first = l.open_tab("#/local/sh", None).unwrap();
        for _ in 1..MAX_PANES {
            assert!(l.split(first, Side::Right, "#/local/sh", None).is_some());
        }
        assert_eq!(l.split(first, Side::Right, "#/local/sh", None), None);
        for _ in 1..MAX_TABS {
            assert!(l.open_tab("#/local/sh", None).is_some());
        }
        assert_eq!(l.open_tab("#/local/sh", None), None);
    }
}
