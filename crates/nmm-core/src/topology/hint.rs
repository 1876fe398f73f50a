//! Topology hints as the hint providers hand them to the Topology Manager.

use crate::bitmask::NumaMask;
use std::collections::BTreeMap;

/// `TopologyHint`: a NUMA affinity (`None` = any node / no preference) and whether the
/// provider prefers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TopologyHint {
    pub affinity: Option<NumaMask>,
    pub preferred: bool,
}

impl TopologyHint {
    pub const NONE: TopologyHint = TopologyHint {
        affinity: None,
        preferred: false,
    };

    pub fn new(mask: NumaMask, preferred: bool) -> Self {
        TopologyHint {
            affinity: Some(mask),
            preferred,
        }
    }
}

/// What one provider answered for a container or a pod. `None` is a nil map (no
/// preference at all); within the map a `None` list means "no preference for this
/// resource" and an empty list means "this resource cannot be satisfied".
pub type ProviderHints = Option<BTreeMap<String, Option<Vec<TopologyHint>>>>;

/// A provider's answer on a large machine: lists may be described rather than listed.
pub type LargeHints = Option<crate::vecmap::VecMap<Option<super::family::LargeList>>>;

/// The explicit answer in the large-machine shape.
pub fn to_large(h: ProviderHints) -> LargeHints {
    h.map(|m| {
        m.into_iter()
            .map(|(k, v)| (k, v.map(super::family::LargeList::Explicit)))
            .collect()
    })
}
