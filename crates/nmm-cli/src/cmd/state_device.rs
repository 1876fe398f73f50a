//! `nmm state show|verify` for the Device Manager's checkpoint
//! (`device-plugins/kubelet_internal_checkpoint`): which pod's container holds which device
//! of which resource on which NUMA node, the registered devices (and which are free), and
//! the checksum, verified as kubelet v1.32 verifies it. A thin renderer over
//! `nmm_core::diagnose::checkpoint::read_device_checkpoint`.

use super::state::{write_structured, Style};
use crate::cmd::Output;
use crate::render::new_table;
use anyhow::Result;
use nmm_core::diagnose::checkpoint::{read_device_checkpoint, DeviceReport};
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;

fn numa_text(by_numa: &std::collections::BTreeMap<i64, Vec<String>>) -> String {
    by_numa
        .iter()
        .map(|(n, ids)| {
            let node = if *n < 0 {
                "none".to_string()
            } else {
                n.to_string()
            };
            format!("{node}: {}", ids.join(","))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The report as JSON (`-o json|yaml`).
pub(crate) fn report_json(file: &Path, r: &DeviceReport) -> Value {
    json!({
        "file": file.display().to_string(),
        "kind": "device",
        "checksum": {"ok": true, "stored": r.checksum},
        "podDevices": r.holdings.iter().map(|h| json!({
            "podUID": h.pod_uid,
            "containerName": h.container,
            "resourceName": h.resource,
            "deviceIDs": h.devices,
            "numaNodes": h.by_numa.iter()
                .map(|(n, ids)| (n.to_string(), json!(ids)))
                .collect::<serde_json::Map<_, _>>(),
        })).collect::<Vec<_>>(),
        "registeredDevices": r.registered.iter().map(|(res, ids)| (res.clone(), json!({
            "healthy": ids,
            "free": r.free(res),
        }))).collect::<serde_json::Map<_, _>>(),
    })
}

fn corrupt(file: &Path, msg: &str, style: Style, err: &mut dyn Write) -> Result<i32> {
    writeln!(
        err,
        "{}: {} is corrupt ({msg}); nothing is shown (nmm never repairs a checkpoint).",
        style.bad("corrupt"),
        file.display()
    )?;
    writeln!(
        err,
        "  what happens: kubelet v1.32 logs the error and starts the Device Manager without the file: \
         devices held by running pods count as free until their containers are admitted again."
    )?;
    Ok(1)
}

/// `nmm state show` of a device checkpoint.
pub(crate) fn show(
    file: &Path,
    bytes: &[u8],
    fmt: Output,
    style: Style,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<i32> {
    let r = match read_device_checkpoint(bytes) {
        Ok(r) => r,
        Err(msg) => return corrupt(file, &msg, style, err),
    };
    if fmt != Output::Table {
        write_structured(out, &report_json(file, &r), fmt)?;
        return Ok(0);
    }
    writeln!(
        out,
        "{} {} (device manager, checksum {} {})",
        style.bold("checkpoint"),
        file.display(),
        r.checksum,
        style.good("verified")
    )?;
    if r.holdings.is_empty() {
        writeln!(out, "no container holds a device")?;
    } else {
        let mut t = new_table(&["POD UID", "CONTAINER", "RESOURCE", "DEVICES", "NUMA NODE"]);
        for h in &r.holdings {
            t.add_row(vec![
                h.pod_uid.clone(),
                h.container.clone(),
                h.resource.clone(),
                h.devices.join(","),
                numa_text(&h.by_numa),
            ]);
        }
        writeln!(out, "{t}")?;
    }
    writeln!(out, "{}", style.bold("registered devices (healthy)"))?;
    let mut t = new_table(&["RESOURCE", "HEALTHY", "FREE"]);
    for (res, ids) in &r.registered {
        t.add_row(vec![res.clone(), ids.join(","), r.free(res).join(",")]);
    }
    writeln!(out, "{t}")?;
    Ok(0)
}

/// `nmm state verify` of a device checkpoint: the checksum (kubelet v1.32 validates no
/// more of this file at start: devices of pods that are gone are cleaned up later).
pub(crate) fn verify(
    file: &Path,
    bytes: &[u8],
    fmt: Output,
    style: Style,
    out: &mut dyn Write,
) -> Result<i32> {
    let result = read_device_checkpoint(bytes);
    let (ok, msg) = match &result {
        Ok(r) => (true, format!("checksum {} matches the content", r.checksum)),
        Err(e) => (
            false,
            format!(
                "{e}; kubelet v1.32 starts the Device Manager without this file (devices held by \
                 running pods count as free)"
            ),
        ),
    };
    if fmt != Output::Table {
        let v = json!({
            "file": file.display().to_string(),
            "kind": "device",
            "result": if ok { "ok" } else { "corrupt" },
            "checksum": {"ok": ok, "messages": [msg]},
            "restartValidation": Value::Null,
            "differences": [],
            "advice": [],
        });
        write_structured(out, &v, fmt)?;
    } else {
        writeln!(out, "{} {}", style.bold("verify"), file.display())?;
        if ok {
            writeln!(out, "  {}: {msg}", style.good("checksum"))?;
            writeln!(out, "{}", style.good("OK"))?;
        } else {
            writeln!(out, "  {}: {msg}", style.bad("corrupt"))?;
            writeln!(out, "{}", style.bad("CORRUPT"))?;
        }
    }
    Ok(if ok { 0 } else { 1 })
}
