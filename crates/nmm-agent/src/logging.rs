//! Logs: `tracing` events, written by `tracing-subscriber` to stderr, one line per event,
//! with an RFC 3339 UTC timestamp and a level. Text by default, JSON lines with
//! `--log-format json`; the level filter comes from `--log-level`, else `RUST_LOG`, else
//! `info` (the syntax is `tracing-subscriber`'s `EnvFilter`: `debug`,
//! `info,nmm_agent::nri=debug`, ...).
//!
//! Every admission decision is one event per container the Topology Manager decided for
//! ([`admission`]): pod, uid, container, verdict, reason, the merged hint and the CPUs.

use anyhow::{anyhow, Result};
use nmm_core::explain::hint_text as explain_hint;
use nmm_core::node::AdmitResult;
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;
use tracing_subscriber::EnvFilter;

/// How log lines look.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `2026-12-04T03:12:04.123456Z  INFO nmm_agent::nri: registered with containerd 2.0`
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `fields` (with `message`).
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("unknown log format {s:?}; use text or json")),
        }
    }
}

/// The filter: `level` (the `--log-level` flag) when given, else `RUST_LOG`, else `info`.
pub fn filter(level: Option<&str>) -> Result<EnvFilter> {
    match level {
        Some(l) => EnvFilter::try_new(l).map_err(|e| {
            anyhow!("--log-level {l:?}: {e}; write error, warn, info, debug or trace (or a RUST_LOG filter such as info,nmm_agent::nri=debug)")
        }),
        None => match std::env::var("RUST_LOG") {
            Ok(v) if !v.trim().is_empty() => EnvFilter::try_new(&v).map_err(|e| {
                anyhow!("RUST_LOG={v:?}: {e}; unset it or write e.g. info or info,nmm_agent=debug")
            }),
            _ => Ok(EnvFilter::new("info")),
        },
    }
}

/// A duplicate of the stderr file descriptor. `nmm` may hold `std::io::stderr()`'s lock
/// for a whole command; writing to the duplicate never waits on it. Each event is
/// formatted first and written with one `write_all`, so lines from threads never mix.
fn stderr_file() -> Result<std::fs::File> {
    use std::os::fd::AsFd;
    let fd = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| anyhow!("cannot duplicate stderr for the logs: {e}"))?;
    Ok(std::fs::File::from(fd))
}

/// Installs the process-wide subscriber writing to stderr. A second call (tests that run
/// several agents in one process) keeps the first subscriber and returns `Ok`.
pub fn init(format: LogFormat, level: Option<&str>) -> Result<()> {
    let filter = filter(level)?;
    init_writer(format, filter, Mutex::new(stderr_file()?))
}

/// [`init`] with any writer (tests).
pub fn init_writer<W>(format: LogFormat, filter: EnvFilter, writer: Mutex<W>) -> Result<()>
where
    W: Write + Send + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false);
    let r = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(false).try_init(),
    };
    // Already set: keep it.
    let _ = r;
    Ok(())
}

/// One event per container the decision covered: pod (`namespace/name`), uid,
/// container, verdict (`admitted` / `rejected`), reason (the kubelet's, empty when
/// admitted), the merged hint (`{0} preferred`, `any`), the exclusive CPUs and the admission time. A pod rejected before any
/// container got a hint (pod scope), or decided under Topology Manager policy `none`
/// (no hints), is one event with container `-` and the pod's merge (or hint `none`).
pub fn admission(pod: &str, r: &AdmitResult, elapsed: Duration) {
    let verdict = if r.admitted { "admitted" } else { "rejected" };
    let reason = r.reason.as_deref().unwrap_or("");
    let micros = elapsed.as_micros() as u64;
    let mut logged = false;
    for (i, t) in r.trace.containers.iter().enumerate() {
        let hint = t
            .merge
            .as_ref()
            .map(|m| explain_hint(&m.hint))
            .or_else(|| r.trace.pod_merge.as_ref().map(|m| explain_hint(&m.hint)))
            .or_else(|| t.affinity.as_ref().map(explain_hint));
        let decided = t.affinity.is_some() || t.merge.is_some() || t.failed_provider.is_some();
        if !decided {
            // Admission stopped before this container, or policy none (no hints).
            continue;
        }
        let cpus = r
            .containers
            .get(i)
            .filter(|c| c.name == t.name)
            .map(|c| c.cpus.to_string())
            .unwrap_or_default();
        // A container decided fine still fails with its pod when a later one fails.
        let container_verdict =
            if t.failed_provider.is_some() || t.merge.as_ref().is_some_and(|m| !m.admit) {
                "rejected"
            } else {
                verdict
            };
        tracing::info!(
            target: "nmm_agent::admission",
            pod,
            uid = %r.uid,
            container = %t.name,
            verdict = container_verdict,
            reason,
            hint = hint.as_deref().unwrap_or("none"),
            cpus = %cpus,
            duration_us = micros,
            "admission {verdict}"
        );
        logged = true;
    }
    if !logged {
        let hint = r
            .trace
            .pod_merge
            .as_ref()
            .map(|m| explain_hint(&m.hint))
            .unwrap_or_else(|| "none".to_string());
        tracing::info!(
            target: "nmm_agent::admission",
            pod,
            uid = %r.uid,
            container = "-",
            verdict,
            reason,
            hint = %hint,
            cpus = "",
            duration_us = micros,
            "admission {verdict}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn formats_parse() {
        assert_eq!("json".parse::<LogFormat>().unwrap(), LogFormat::Json);
        assert_eq!("text".parse::<LogFormat>().unwrap(), LogFormat::Text);
        assert!("xml"
            .parse::<LogFormat>()
            .unwrap_err()
            .contains("text or json"));
    }

    #[test]
    fn bad_levels_name_the_flag() {
        assert!(filter(Some("debug")).is_ok());
        assert!(filter(Some("info,nmm_agent::nri=debug")).is_ok());
        let e = filter(Some("nmm=[")).unwrap_err().to_string();
        assert!(e.starts_with("--log-level \"nmm=[\""), "{e}");
    }

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A rejected and an admitted pod give one JSON event each, with the fields named
    /// in the module documentation (a scoped subscriber: the global one stays free).
    #[test]
    fn admission_events_carry_the_decision() {
        let buf = Buf::default();
        let sub = tracing_subscriber::fmt()
            .json()
            .with_writer(Mutex::new(buf.clone()))
            .with_env_filter(EnvFilter::new("info"))
            .finish();
        let mut node = nmm_core::node::Node::start(
            crate::testkit::machine(),
            crate::testkit::kubelet_config(),
            Default::default(),
        )
        .unwrap();
        let ok = crate::testkit::pod("u1", "web", &[("app", "2", "1Gi", None)], &[]);
        let bad = crate::testkit::pod("u2", "big", &[("app", "9", "1Gi", None)], &[]);
        tracing::subscriber::with_default(sub, || {
            for p in [&ok, &bad] {
                let info = nmm_core::pod::PodInfo::from_pod(p, false).unwrap();
                let r = node.admit(&info).unwrap();
                admission(&crate::agent::pod_key(p), &r, Duration::from_micros(42));
            }
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        let f = &lines[0]["fields"];
        assert_eq!(f["pod"], "default/web");
        assert_eq!(f["container"], "app");
        assert_eq!(f["verdict"], "admitted");
        assert_eq!(f["reason"], "");
        assert_eq!(f["hint"], "{0} preferred");
        assert!(!f["cpus"].as_str().unwrap().is_empty(), "{f}");
        assert_eq!(lines[0]["level"], "INFO");
        let f = &lines[1]["fields"];
        assert_eq!(f["pod"], "default/big");
        assert_eq!(f["verdict"], "rejected");
        assert_eq!(f["reason"], "TopologyAffinityError");
        assert!(lines[1]["timestamp"].as_str().unwrap().ends_with('Z'));
    }
}
