//! One module per subcommand, each a clap struct with an `execute()`.

pub(crate) mod inspect;
pub(crate) mod serve;

use anyhow::Context as _;
use std::path::Path;

/// Reads a component file, turning every way it can be wrong into one
/// clear sentence.
pub(crate) fn read_component(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    nimbus_runtime::artifact::validate_component_bytes(&bytes)
        .with_context(|| format!("`{}`", path.display()))?;
    Ok(bytes)
}
