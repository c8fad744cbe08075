//! `nimbus new`: start a project from a template embedded in the binary,
//! from a local directory, or from a git repository (`--git URL
//! [--subfolder PATH]`).
//!
//! Files are copied with `{{project-name}}` replaced by the project's name
//! and `{{crate_name}}` by its underscore form; a file named `gitignore` at
//! the template root becomes `.gitignore` (a real `.gitignore` inside this
//! repository would apply to the template sources themselves).

use anyhow::{Context as _, bail, ensure};
use clap::Args;
use include_dir::{Dir, include_dir};
use std::path::{Path, PathBuf};

static TEMPLATES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/templates");

/// Arguments of `nimbus new`.
#[derive(Args)]
pub(crate) struct NewCommand {
    /// The template: one of the embedded ones (see `--list`), or, with
    /// `--path`/`--git`, ignored.
    template: Option<String>,
    /// The project name and directory (default: the template name).
    name: Option<String>,
    /// List the embedded templates.
    #[arg(long)]
    list: bool,
    /// Use the template in this local directory.
    #[arg(long, conflicts_with = "git")]
    path: Option<PathBuf>,
    /// Use the template in this git repository.
    #[arg(long)]
    git: Option<String>,
    /// With `--git` (or `--path`): the template's folder inside it.
    #[arg(long)]
    subfolder: Option<PathBuf>,
    /// Create the project inside this directory (default: the current one).
    #[arg(long, default_value = ".")]
    output: PathBuf,
}

impl NewCommand {
    pub(crate) fn execute(self) -> anyhow::Result<()> {
        if self.list {
            for (name, summary) in embedded_templates() {
                outln!("{name:<18} {summary}")?;
            }
            return Ok(());
        }
        let external = self.path.is_some() || self.git.is_some();
        // With an external template the one positional argument is the name.
        let (template, name) = if external {
            (None, self.name.clone().or_else(|| self.template.clone()))
        } else {
            let Some(template) = self.template.clone() else {
                bail!(
                    "name a template: {} (or use --path / --git)",
                    embedded_names().join(", ")
                );
            };
            let name = self.name.clone().unwrap_or_else(|| template.clone());
            (Some(template), Some(name))
        };
        let name = name.context("name the project: `nimbus new --git URL NAME`")?;
        validate_name(&name)?;
        let target = self.output.join(&name);
        ensure!(
            !target.exists(),
            "`{}` already exists; pick another name or remove it",
            target.display()
        );
        let vars = Vars::new(&name);

        let mut checkout = None;
        match (&template, &self.path, &self.git) {
            (Some(template), None, None) => {
                let dir = TEMPLATES.get_dir(template.as_str()).with_context(|| {
                    format!(
                        "no template named `{template}`; available: {}",
                        embedded_names().join(", ")
                    )
                })?;
                write_embedded(dir, Path::new(template), &target, &vars)?;
            }
            (_, Some(path), None) => {
                let root = match &self.subfolder {
                    Some(sub) => path.join(sub),
                    None => path.clone(),
                };
                copy_dir(&root, &target, &vars)?;
            }
            (_, None, Some(url)) => {
                let temp = tempfile::tempdir().context("cannot create a temporary directory")?;
                clone(url, temp.path())?;
                let root = match &self.subfolder {
                    Some(sub) => temp.path().join(sub),
                    None => temp.path().to_path_buf(),
                };
                copy_dir(&root, &target, &vars)?;
                checkout = Some(temp);
            }
            _ => unreachable!("clap keeps --path and --git apart"),
        }
        drop(checkout);
        outln!("Created {}", target.display())?;
        outln!("Next:\n  cd {}\n  nimbus dev", target.display())?;
        Ok(())
    }
}

/// Placeholder values.
struct Vars {
    project_name: String,
    crate_name: String,
}

impl Vars {
    fn new(name: &str) -> Self {
        Self {
            project_name: name.to_string(),
            crate_name: name.replace('-', "_"),
        }
    }

    fn apply(&self, text: &str) -> String {
        text.replace("{{project-name}}", &self.project_name)
            .replace("{{crate_name}}", &self.crate_name)
    }
}

fn validate_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && !name.contains("--");
    ensure!(
        ok,
        "`{name}` is not a valid project name: use lower-case letters, digits and single dashes, starting with a letter"
    );
    Ok(())
}

fn embedded_names() -> Vec<String> {
    embedded_templates().into_iter().map(|(n, _)| n).collect()
}

/// The first sentence of a README's first paragraph after the title, as
/// plain text (links and code marks dropped): a template's description.
fn summary(readme: &str) -> String {
    let paragraph: Vec<&str> = readme
        .lines()
        .skip(1)
        .map(str::trim)
        .skip_while(|l| l.is_empty())
        .take_while(|l| !l.is_empty())
        .collect();
    let text = paragraph.join(" ");
    let sentence = match text.find(". ") {
        Some(end) => &text[..end],
        None => text.trim_end_matches('.'),
    };
    // `[text](url)` → `text`, then no code marks.
    let mut plain = String::with_capacity(sentence.len());
    let mut rest = sentence;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find("](") else {
            break;
        };
        let Some(end) = rest[open + close..].find(')') else {
            break;
        };
        plain.push_str(&rest[..open]);
        plain.push_str(&rest[open + 1..open + close]);
        rest = &rest[open + close + end + 1..];
    }
    plain.push_str(rest);
    plain.replace('`', "")
}

/// Embedded templates with their description ([`summary`] of the README).
fn embedded_templates() -> Vec<(String, String)> {
    let mut list: Vec<(String, String)> = TEMPLATES
        .dirs()
        .map(|dir| {
            let name = dir.path().to_string_lossy().into_owned();
            let summary = dir
                .get_file(dir.path().join("README.md"))
                .and_then(|f| f.contents_utf8())
                .map(summary)
                .unwrap_or_default();
            (name, summary)
        })
        .collect();
    list.sort();
    list
}

fn output_name(relative: &Path) -> PathBuf {
    if relative == Path::new("gitignore") {
        PathBuf::from(".gitignore")
    } else {
        relative.to_path_buf()
    }
}

fn write_embedded(dir: &Dir<'_>, prefix: &Path, target: &Path, vars: &Vars) -> anyhow::Result<()> {
    for entry in dir.entries() {
        match entry {
            include_dir::DirEntry::Dir(sub) => write_embedded(sub, prefix, target, vars)?,
            include_dir::DirEntry::File(file) => {
                let relative = file.path().strip_prefix(prefix).unwrap_or(file.path());
                write_file(&target.join(output_name(relative)), file.contents(), vars)?;
            }
        }
    }
    Ok(())
}

fn write_file(path: &Path, contents: &[u8], vars: &Vars) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let contents = match std::str::from_utf8(contents) {
        Ok(text) => vars.apply(text).into_bytes(),
        Err(_) => contents.to_vec(),
    };
    std::fs::write(path, contents).with_context(|| format!("cannot write {}", path.display()))
}

fn copy_dir(root: &Path, target: &Path, vars: &Vars) -> anyhow::Result<()> {
    ensure!(
        root.is_dir(),
        "template directory `{}` does not exist",
        root.display()
    );
    fn walk(dir: &Path, root: &Path, target: &Path, vars: &Vars) -> anyhow::Result<()> {
        for entry in
            std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?
        {
            let entry = entry?;
            let path = entry.path();
            let file_type = entry.file_type()?;
            if entry.file_name() == ".git" || entry.file_name() == "target" {
                continue;
            }
            if file_type.is_dir() {
                walk(&path, root, target, vars)?;
            } else if file_type.is_file() {
                let relative = path.strip_prefix(root).unwrap_or(&path);
                let contents = std::fs::read(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                write_file(&target.join(output_name(relative)), &contents, vars)?;
            }
            // Symlinks are skipped: a template must not point outside itself.
        }
        Ok(())
    }
    walk(root, root, target, vars)
}

fn clone(url: &str, into: &Path) -> anyhow::Result<()> {
    let output = std::process::Command::new("git")
        .args(["clone", "--depth", "1", "--quiet", "--", url])
        .arg(into)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .context("cannot run git (is it installed?)")?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let reason = stderr.lines().last().unwrap_or("unknown error").trim();
        bail!("cannot clone `{url}`: {reason}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_descriptions_are_whole_plain_sentences() {
        assert_eq!(
            summary(
                "# t\n\nA thing for Nimbus, written in Rust\nwith [`wstd`](https://docs.rs/wstd). More.\n"
            ),
            "A thing for Nimbus, written in Rust with wstd"
        );
        for (name, description) in embedded_templates() {
            assert!(!description.is_empty(), "{name}");
            assert!(!description.contains(['[', '`']), "{name}: {description}");
            assert!(description.contains("Nimbus"), "{name}: {description}");
        }
    }

    #[test]
    fn every_embedded_template_has_the_required_files() {
        let names = embedded_names();
        for required in [
            "http-hello-world",
            "http-client",
            "http-handler",
            "http-kv-counter",
            "http-blobstore",
            "http-middleware",
            "http-postgres",
        ] {
            assert!(names.contains(&required.to_string()), "missing {required}");
        }
        for name in names {
            for file in [
                "README.md",
                "gitignore",
                ".nimbus/config.yaml",
                "wit/world.wit",
                "Cargo.toml",
            ] {
                let path = Path::new(&name).join(file);
                assert!(TEMPLATES.get_file(&path).is_some(), "{}", path.display());
            }
        }
    }

    #[test]
    fn names_are_checked() {
        for bad in ["", "Demo", "1demo", "de mo", "demo-", "de--mo", "../x"] {
            assert!(validate_name(bad).is_err(), "accepted `{bad}`");
        }
        validate_name("demo-2").unwrap();
    }
}
