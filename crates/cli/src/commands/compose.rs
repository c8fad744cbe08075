//! `nimbus compose`: a workload's component links made ahead of time, as ONE
//! component (wac composition) that runs anywhere a component runs.

use anyhow::{Context as _, bail};
use clap::Args;
use nimbus_host::compose::{self, Part};
use std::path::PathBuf;

/// Arguments of `nimbus compose`.
#[derive(Args)]
pub(crate) struct ComposeCommand {
    /// A workload manifest (`.yaml`); its first workload is composed.
    manifest: PathBuf,
    /// Where to write the composed component (`-`: standard output).
    #[arg(short, long)]
    output: PathBuf,
    /// The component to compose around (default: the one component that
    /// imports from the others and that none imports from).
    #[arg(long)]
    root: Option<String>,
    // `--max-component-mb`.
    #[command(flatten)]
    limit: super::ComponentLimitArgs,
}

impl ComposeCommand {
    pub(crate) fn execute(self) -> anyhow::Result<()> {
        let to_stdout = self.output.as_os_str() == "-";
        if !to_stdout && same_file(&self.output, &self.manifest) {
            bail!(
                "`{}` is the manifest being composed: write the component somewhere else",
                self.output.display()
            );
        }
        let documents = super::read_manifest(&self.manifest)?;
        let Some(workload) = documents.into_iter().next().map(|doc| doc.workload) else {
            bail!("`{}` holds no workload", self.manifest.display());
        };
        let mut sources = Vec::new();
        for component in &workload.spec.components {
            let bytes = super::read_workload_component(component, "composed", self.limit.bytes())?;
            sources.push((component.name.as_str(), bytes));
        }
        let parts: Vec<Part<'_>> = sources
            .iter()
            .map(|(name, bytes)| Part { name, bytes })
            .collect();
        let root = match self.root {
            Some(root) => root,
            None => {
                let roots = compose::roots(&parts)?;
                match roots.as_slice() {
                    [root] => root.clone(),
                    [] => bail!(
                        "no component of workload `{}` imports from another: there is nothing to compose",
                        workload.id()
                    ),
                    _ => bail!(
                        "several components import from the others ({}); choose one with --root",
                        roots.join(", ")
                    ),
                }
            }
        };
        let composition = compose::compose(&parts, &root)?;
        let summary = format!(
            "composed `{root}` with {} into {} ({} bytes)",
            composition
                .absorbed
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", "),
            if to_stdout {
                "standard output".to_string()
            } else {
                self.output.display().to_string()
            },
            composition.bytes.len()
        );
        if to_stdout {
            use std::io::Write as _;
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(&composition.bytes)
                .and_then(|()| stdout.flush())
            {
                // A reader that stopped early (`| head -c1`) is not an error.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                result => result.context("cannot write the component to standard output")?,
            }
            eprintln!("{summary}");
            return Ok(());
        }
        std::fs::write(&self.output, &composition.bytes)
            .with_context(|| format!("cannot write `{}`", self.output.display()))?;
        outln!("{summary}")?;
        Ok(())
    }
}

/// Whether `a` and `b` name one existing file (through links, `..` or
/// another spelling).
fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}
