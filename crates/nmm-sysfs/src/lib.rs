//! sysfs topology reader (placeholder, being written).
