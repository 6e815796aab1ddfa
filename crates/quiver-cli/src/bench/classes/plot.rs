//! PNG output: completion-rate bars per class and latency box plots per class × scheme.

use std::path::Path;

use super::mix::ClassSpec;
use super::Summary;

/// Draws the figure to `path`.
pub fn draw(path: &Path, mix: &[ClassSpec], summaries: &[Summary]) -> anyhow::Result<()> {
    let _ = (path, mix, summaries);
    anyhow::bail!("PNG output is not implemented yet")
}
