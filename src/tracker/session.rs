//! What the tracker remembers of one live session, kept small: the tracker
//! may hold a million of them.

use std::hash::{Hash, Hasher};

/// A transport instance: interned module name and Janus's instance id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransportKey {
    pub module: u16,
    /// Janus's ids are decimal u64 strings; anything else is hashed.
    numeric: bool,
    id: u64,
}

impl TransportKey {
    pub fn new(module: u16, id: &str) -> TransportKey {
        match id.parse::<u64>() {
            Ok(n) => TransportKey {
                module,
                numeric: true,
                id: n,
            },
            Err(_) => {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                id.hash(&mut h);
                TransportKey {
                    module,
                    numeric: false,
                    id: h.finish(),
                }
            }
        }
    }

    pub fn id_string(&self) -> String {
        if self.numeric {
            self.id.to_string()
        } else {
            format!("hashed:{:016x}", self.id)
        }
    }
}

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Live,
    /// Its transport closed at `at` with reclaim off: it ends when the settle
    /// window closes, unless Janus ends it first.
    Disconnected {
        at: i64,
        seq: u32,
    },
    /// Its transport closed at `at` with reclaim on: it ends with Janus's
    /// `timeout`, unless another transport claims it.
    AwaitingReclaim {
        at: i64,
        seq: u32,
    },
    /// Its transport closed with reclaim on, and no `timeout` came by the
    /// time Janus's watchdog was due to send it: taken as claimed by another
    /// connection (Janus emits nothing for a claim), and live. `window`:
    /// when its last reclaim window began (the close, or a later request on
    /// the session). A claim comes after that, and sets the session's
    /// activity, so Janus cannot idle it out before `window` +
    /// `session_timeout`: a `timeout` before then is the reclaim expiring
    /// late, and the claim was not one. No larger than the other states: a
    /// session pays nothing for it.
    Claimed {
        window: i64,
    },
}

impl State {
    pub fn name(&self) -> &'static str {
        match self {
            State::Live => "live",
            State::Disconnected { .. } => "disconnected",
            State::AwaitingReclaim { .. } => "awaiting_reclaim",
            State::Claimed { .. } => "claimed",
        }
    }

    /// Whether the session is bound to a live transport instance (or to
    /// none known): its `transport`, if any, indexes it.
    pub fn is_bound(&self) -> bool {
        matches!(self, State::Live | State::Claimed { .. })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handle {
    pub id: u64,
    /// Interned plugin package name.
    pub plugin: u16,
}

/// A session's handles: inline for the usual zero or one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Handles {
    #[default]
    Empty,
    One(Handle),
    // Boxed: a pointer, not a Vec, keeps every session 8 bytes smaller.
    #[allow(clippy::box_collection)]
    Many(Box<Vec<Handle>>),
}

impl Handles {
    pub fn insert(&mut self, id: u64, plugin: u16) {
        let h = Handle { id, plugin };
        match self {
            Handles::Empty => *self = Handles::One(h),
            Handles::One(existing) if existing.id == id => *existing = h,
            Handles::One(existing) => *self = Handles::Many(Box::new(vec![*existing, h])),
            Handles::Many(v) => {
                if let Some(e) = v.iter_mut().find(|e| e.id == id) {
                    *e = h;
                } else {
                    v.push(h);
                }
            }
        }
    }

    pub fn remove(&mut self, id: u64) {
        match self {
            Handles::One(h) if h.id == id => *self = Handles::Empty,
            Handles::Many(v) => {
                v.retain(|h| h.id != id);
                match v.len() {
                    0 => *self = Handles::Empty,
                    1 => *self = Handles::One(v[0]),
                    _ => {}
                }
            }
            _ => {}
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Handle> {
        let slice: &[Handle] = match self {
            Handles::Empty => &[],
            Handles::One(h) => std::slice::from_ref(h),
            Handles::Many(v) => v,
        };
        slice.iter()
    }
}

#[derive(Debug, Clone)]
pub struct Session {
    /// The transport instance it is (or, when its state says it is gone,
    /// was last) bound to; None when unknown.
    pub transport: Option<TransportKey>,
    pub created: i64,
    pub last_event: i64,
    pub state: State,
    pub handles: Handles,
}

impl Session {
    pub fn new(transport: Option<TransportKey>, created: i64) -> Session {
        Session {
            transport,
            created,
            last_event: created,
            state: State::Live,
            handles: Handles::Empty,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_grow_and_shrink() {
        let mut h = Handles::default();
        h.insert(1, 0);
        h.insert(2, 1);
        h.insert(2, 1);
        assert_eq!(h.iter().count(), 2);
        h.remove(1);
        assert_eq!(h, Handles::One(Handle { id: 2, plugin: 1 }));
        h.remove(2);
        assert_eq!(h, Handles::Empty);
        h.remove(3);
        assert_eq!(h, Handles::Empty);
    }

    #[test]
    fn transport_keys() {
        assert_eq!(TransportKey::new(0, "42").id_string(), "42");
        assert_eq!(TransportKey::new(0, "42"), TransportKey::new(0, "42"));
        assert_ne!(TransportKey::new(0, "42"), TransportKey::new(1, "42"));
        assert!(
            TransportKey::new(0, "0x2a")
                .id_string()
                .starts_with("hashed:")
        );
    }

    #[test]
    fn state_is_small() {
        // A claimed session's window costs no byte more than a disconnect's.
        assert_eq!(std::mem::size_of::<State>(), 16);
    }

    #[test]
    fn session_is_small() {
        // The tracker's memory target is <= 256 bytes per live session, map
        // overhead included; the record itself must stay well under that.
        assert!(
            std::mem::size_of::<Session>() <= 80,
            "{}",
            std::mem::size_of::<Session>()
        );
    }
}

/// The sessions bound to one transport instance: inline for the usual one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    One(u64),
    // Boxed: a pointer, not a Vec, keeps the index 8 bytes a transport smaller.
    #[allow(clippy::box_collection)]
    Many(Box<Vec<u64>>),
}

impl Bound {
    pub fn push(&mut self, sid: u64) {
        match self {
            Bound::One(first) => *self = Bound::Many(Box::new(vec![*first, sid])),
            Bound::Many(v) => v.push(sid),
        }
    }

    /// Removes `sid`; true when none is left.
    pub fn remove(&mut self, sid: u64) -> bool {
        match self {
            Bound::One(only) => *only == sid,
            Bound::Many(v) => {
                v.retain(|s| *s != sid);
                v.is_empty()
            }
        }
    }

    pub fn into_vec(self) -> Vec<u64> {
        match self {
            Bound::One(s) => vec![s],
            Bound::Many(v) => *v,
        }
    }
}
