//! Kubernetes `resource.Quantity` (placeholder, being written).
pub fn format_binary_bytes(bytes: u64) -> String {
    bytes.to_string()
}
