//! Application state shared with listeners, looked up by type.

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::Mutex;

use crate::util::FastMap;

/// A map from a type to one value of that type: what `State<T>` reads.
#[derive(Default)]
pub struct StateMap {
    values: FastMap<TypeId, (&'static str, Box<dyn Any + Send + Sync>)>,
    /// A probe (`StateMap::probe`): the types asked about.
    asked: Option<Mutex<Vec<TypeId>>>,
}

impl StateMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores `value`, replacing any earlier value of the same type.
    pub fn insert<T: Clone + Send + Sync + 'static>(&mut self, value: T) {
        self.values.insert(
            TypeId::of::<T>(),
            (std::any::type_name::<T>(), Box::new(value)),
        );
    }

    /// The value of type `T`, if one was stored.
    pub fn get<T: 'static>(&self) -> Option<&T> {
        self.values
            .get(&TypeId::of::<T>())
            .and_then(|(_, v)| v.downcast_ref::<T>())
    }

    /// Whether a value of type `T` was stored.
    pub fn contains<T: 'static>(&self) -> bool {
        if let Some(asked) = &self.asked {
            crate::util::lock(asked).push(TypeId::of::<T>());
            return true;
        }
        self.values.contains_key(&TypeId::of::<T>())
    }

    /// An empty map that answers yes to every [`StateMap::contains`] and
    /// remembers the types asked about: run listeners' start-up checks
    /// against it to learn which state they need (the app starts the
    /// embedded Schema Registry only for listeners that read Avro).
    #[cfg(feature = "avro")]
    pub(crate) fn probe() -> Self {
        Self {
            values: FastMap::default(),
            asked: Some(Mutex::new(Vec::new())),
        }
    }

    /// On a probe: whether a `T` was asked about.
    #[cfg(feature = "avro")]
    pub(crate) fn was_asked<T: 'static>(&self) -> bool {
        self.asked
            .as_ref()
            .is_some_and(|a| crate::util::lock(a).contains(&TypeId::of::<T>()))
    }
}

impl fmt::Debug for StateMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.values.values().map(|(name, _)| name))
            .finish()
    }
}
