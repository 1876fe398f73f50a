//! takeByTopology (placeholder, being written).
