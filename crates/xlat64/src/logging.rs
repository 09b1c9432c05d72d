//! The daemon's log: `tracing` lines on stderr, filtered by `RUST_LOG`
//! when it is set, else by `[runtime] log-level`, which a reload changes
//! while running (a `tracing_subscriber` reload layer).

use std::sync::OnceLock;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// The filter in force, to replace on a reload; `None` when `RUST_LOG`
/// decides (it wins over the configuration).
static LEVEL: OnceLock<Option<reload::Handle<EnvFilter, Registry>>> = OnceLock::new();

/// Installs the log (once; later calls do nothing): `RUST_LOG` if set,
/// else `info` until [`set_level`] applies the configuration's level.
pub fn init() {
    let from_env = EnvFilter::try_from_default_env().ok();
    let fixed = from_env.is_some();
    let (filter, handle) = reload::Layer::new(from_env.unwrap_or_else(|| EnvFilter::new("info")));
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .try_init()
        .is_ok();
    let _ = LEVEL.set((installed && !fixed).then_some(handle));
}

/// Whether `level` is a valid `[runtime] log-level`: a level (`error`,
/// `warn`, `info`, `debug`, `trace`) or `RUST_LOG` directives
/// (`info,xlat64::dns64=debug`).
pub fn parse(level: &str) -> Result<EnvFilter, String> {
    EnvFilter::try_new(level).map_err(|e| format!("{level:?}: {e}"))
}

/// Applies `[runtime] log-level` (at start and on a reload); ignored, with
/// a note, when `RUST_LOG` decides.
pub fn set_level(level: &str) -> Result<(), String> {
    let filter = parse(level)?;
    match LEVEL.get() {
        Some(Some(handle)) => handle
            .reload(filter)
            .map_err(|e| format!("runtime.log-level: cannot change the log level: {e}")),
        _ => {
            tracing::info!("RUST_LOG is set: it decides what is logged, not runtime.log-level");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_directives_parse_and_junk_does_not() {
        assert!(parse("debug").is_ok());
        assert!(parse("info,xlat64::dns64=debug").is_ok());
        assert!(parse("info,xlat64=loud").is_err());
    }
}
