//! `nimbus new`: start a project from a template embedded in the binary
//! (Rust, TypeScript or Python: `--lang`), from a local directory, or from
//! a git repository (`--git URL [--subfolder PATH]`).
//!
//! Embedded templates live under `templates/LANGUAGE/NAME`; a language's
//! `_common` folder holds the files all its templates share (the Python
//! HTTP helper, TypeScript's build setup), written first so a template's
//! own file of the same name wins. Files are copied with `{{project-name}}`
//! replaced by the project's name and `{{crate_name}}` by its underscore
//! form; a file named `gitignore` at the template root becomes `.gitignore`
//! (a real `.gitignore` inside this repository would apply to the template
//! sources themselves).

use anyhow::{Context as _, bail, ensure};
use clap::{Args, ValueEnum};
use include_dir::{Dir, include_dir};
use std::path::{Path, PathBuf};

static TEMPLATES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/templates");

/// The folder of a language's shared template files.
const COMMON: &str = "_common";

/// The languages with embedded templates; each has the same template names
/// answering the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Language {
    /// Rust with wstd or wit-bindgen, built by cargo.
    Rust,
    /// TypeScript with the Fetch API, built by componentize-js.
    #[value(alias = "ts")]
    Typescript,
    /// Python, built by componentize-py.
    #[value(alias = "py")]
    Python,
}

impl Language {
    const ALL: [Language; 3] = [Language::Rust, Language::Typescript, Language::Python];

    /// Its folder under `templates/`, and its name on the command line.
    fn name(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::Typescript => "typescript",
            Language::Python => "python",
        }
    }
}

/// Arguments of `nimbus new`.
#[derive(Args)]
pub(crate) struct NewCommand {
    /// The template: one of the embedded ones (see `--list`), or, with
    /// `--path`/`--git`, ignored.
    template: Option<String>,
    /// The project name and directory (default: the template name).
    name: Option<String>,
    /// The language of the embedded template.
    #[arg(long, value_enum, default_value = "rust")]
    lang: Language,
    /// List the embedded templates, by language.
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
            for language in Language::ALL {
                outln!("{}:", language.name())?;
                for (name, summary) in embedded_templates(language) {
                    outln!("  {name:<18} {summary}")?;
                }
            }
            return Ok(());
        }
        let language = self.lang;
        let external = self.path.is_some() || self.git.is_some();
        // With an external template the one positional argument is the name.
        let (template, name) = if external {
            (None, self.name.clone().or_else(|| self.template.clone()))
        } else {
            let Some(template) = self.template.clone() else {
                bail!(
                    "name a template: {} (or use --path / --git)",
                    embedded_names(language).join(", ")
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

        let made = self.make(template.as_deref(), language, &target, &vars);
        if made.is_err() {
            // Nothing half-made is left behind.
            let _ = std::fs::remove_dir_all(&target);
        }
        made?;
        outln!("Created {}", target.display())?;
        outln!("Next:\n  cd {}\n  nimbus dev", target.display())?;
        Ok(())
    }

    /// Writes the project into `target` from the template chosen.
    fn make(
        &self,
        template: Option<&str>,
        language: Language,
        target: &Path,
        vars: &Vars,
    ) -> anyhow::Result<()> {
        let mut checkout = None;
        match (template, &self.path, &self.git) {
            (Some(template), None, None) => {
                let dir = embedded_template(language, template)?;
                if let Some(common) = TEMPLATES.get_dir(Path::new(language.name()).join(COMMON)) {
                    write_embedded(common, common.path(), target, vars)?;
                }
                write_embedded(dir, dir.path(), target, vars)?;
            }
            (_, Some(path), None) => {
                let root = match &self.subfolder {
                    Some(sub) => path.join(sub),
                    None => path.clone(),
                };
                copy_dir(&root, target, vars)?;
            }
            (_, None, Some(url)) => {
                let temp = tempfile::tempdir().context("cannot create a temporary directory")?;
                clone(url, temp.path())?;
                let root = match &self.subfolder {
                    Some(sub) => temp.path().join(sub),
                    None => temp.path().to_path_buf(),
                };
                copy_dir(&root, target, vars)?;
                checkout = Some(temp);
            }
            _ => unreachable!("clap keeps --path and --git apart"),
        }
        drop(checkout);
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

fn embedded_names(language: Language) -> Vec<String> {
    embedded_templates(language)
        .into_iter()
        .map(|(n, _)| n)
        .collect()
}

/// The embedded template `name` of `language`; unknown names say which
/// exist, and which other language has it.
fn embedded_template(language: Language, name: &str) -> anyhow::Result<&'static Dir<'static>> {
    // One plain folder name: not `.`, `..`, a path, or the shared files.
    let plain = matches!(
        Path::new(name).components().collect::<Vec<_>>().as_slice(),
        [std::path::Component::Normal(only)] if *only == name
    );
    let lookup = |language: Language| {
        (plain && name != COMMON)
            .then(|| TEMPLATES.get_dir(Path::new(language.name()).join(name)))
            .flatten()
    };
    if let Some(dir) = lookup(language) {
        return Ok(dir);
    }
    let elsewhere: Vec<&str> = Language::ALL
        .into_iter()
        .filter(|other| lookup(*other).is_some())
        .map(Language::name)
        .collect();
    if elsewhere.is_empty() {
        bail!(
            "no template named `{name}`; available in {}: {}",
            language.name(),
            embedded_names(language).join(", ")
        );
    }
    bail!(
        "no {} template named `{name}`; it exists for {} (`--lang {}`)",
        language.name(),
        elsewhere.join(", "),
        elsewhere[0]
    );
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

/// A language's embedded templates with their description ([`summary`] of
/// the README).
fn embedded_templates(language: Language) -> Vec<(String, String)> {
    let Some(root) = TEMPLATES.get_dir(language.name()) else {
        return Vec::new();
    };
    let mut list: Vec<(String, String)> = root
        .dirs()
        .filter(|dir| dir.path().file_name().is_some_and(|n| n != COMMON))
        .map(|dir| {
            let name = dir
                .path()
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
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

/// The largest file a template directory may hold.
const MAX_TEMPLATE_FILE_BYTES: u64 = 16 << 20;

fn copy_dir(root: &Path, target: &Path, vars: &Vars) -> anyhow::Result<()> {
    ensure!(
        root.exists(),
        "template directory `{}` does not exist",
        root.display()
    );
    ensure!(
        root.is_dir(),
        "template directory `{}` is not a directory",
        root.display()
    );
    // A project made inside its own template would be copied into itself.
    // The target's nearest existing ancestor says where it will be, links
    // resolved.
    let inside = std::path::absolute(target)
        .ok()
        .zip(std::fs::canonicalize(root).ok())
        .is_some_and(|(target, root)| {
            let existing = target
                .ancestors()
                .skip(1)
                .find_map(|a| std::fs::canonicalize(a).ok());
            existing.is_some_and(|existing| existing.starts_with(&root))
        });
    ensure!(
        !inside,
        "`{}` is inside the template directory `{}`: create the project somewhere else",
        target.display(),
        root.display()
    );
    fn walk(
        dir: &Path,
        root: &Path,
        resolved_root: &Path,
        target: &Path,
        vars: &Vars,
    ) -> anyhow::Result<()> {
        for entry in
            std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?
        {
            let entry = entry?;
            let path = entry.path();
            let file_type = entry.file_type()?;
            if entry.file_name() == ".git" || entry.file_name() == "target" {
                continue;
            }
            let relative = path.strip_prefix(root).unwrap_or(&path);
            if file_type.is_dir() {
                walk(&path, root, resolved_root, target, vars)?;
            } else if file_type.is_file() {
                let contents =
                    nimbus_model::files::read_bounded_blocking(&path, MAX_TEMPLATE_FILE_BYTES)?;
                write_file(&target.join(output_name(relative)), &contents, vars)?;
            } else if let Some(resolved) = linked_file_inside(&path, resolved_root) {
                // A link to a file of the template itself is copied as that
                // file, read where it resolved; any other link is not
                // followed (a template must not reach outside itself, nor
                // loop).
                let contents =
                    nimbus_model::files::read_bounded_blocking(&resolved, MAX_TEMPLATE_FILE_BYTES)?;
                write_file(&target.join(output_name(relative)), &contents, vars)?;
            } else if file_type.is_symlink() {
                eprintln!(
                    "warning: skipped `{}`: a link to a directory, to nothing, or to outside the template",
                    relative.display()
                );
            }
        }
        Ok(())
    }
    let resolved_root = std::fs::canonicalize(root)
        .with_context(|| format!("cannot resolve `{}`", root.display()))?;
    walk(root, root, &resolved_root, target, vars)
}

/// Where `path`, a symbolic link, resolves, when that is a regular file
/// the template copies: inside `resolved_root` (itself resolved) and not
/// under the `.git` or `target` it skips.
fn linked_file_inside(path: &Path, resolved_root: &Path) -> Option<PathBuf> {
    let resolved = std::fs::canonicalize(path).ok()?;
    let inside = resolved.strip_prefix(resolved_root).ok()?;
    let skipped = inside
        .components()
        .any(|part| part.as_os_str() == ".git" || part.as_os_str() == "target");
    (!skipped && resolved.is_file()).then_some(resolved)
}

/// The longest a template clone may take.
const CLONE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// Clones `url` into `into` with git, bounded: a server that stops sending
/// (under 1 KB/s for 30 s over HTTP) fails the clone, and the whole clone
/// gets [`CLONE_TIMEOUT`].
fn clone(url: &str, into: &Path) -> anyhow::Result<()> {
    use std::io::Read as _;
    let mut child = std::process::Command::new("git")
        .args([
            "-c",
            "http.lowSpeedLimit=1000",
            "-c",
            "http.lowSpeedTime=30",
        ])
        .args(["clone", "--depth", "1", "--quiet", "--", url])
        .arg(into)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("cannot run git (is it installed?)")?;
    // Read while it runs, so a chatty git never blocks on a full pipe.
    let mut stderr_pipe = child.stderr.take();
    let reader = std::thread::spawn(move || {
        // Only the end is kept: the last line says why git failed.
        let mut tail = Vec::new();
        let mut chunk = [0u8; 8192];
        while let Some(Ok(n @ 1..)) = stderr_pipe.as_mut().map(|pipe| pipe.read(&mut chunk)) {
            tail.extend_from_slice(&chunk[..n]);
            if tail.len() > 64 * 1024 {
                tail.drain(..tail.len() - 64 * 1024);
            }
        }
        String::from_utf8_lossy(&tail).into_owned()
    });
    let deadline = std::time::Instant::now() + CLONE_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().context("cannot wait for git")? {
            break status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "cannot clone `{url}`: not done within {} s",
                CLONE_TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let stderr = reader.join().unwrap_or_default();
    if !status.success() {
        // git's own verdict, else its last word (a remote's message).
        let reason = stderr
            .lines()
            .find_map(|line| line.strip_prefix("fatal: "))
            .or_else(|| stderr.lines().last())
            .unwrap_or("unknown error")
            .trim();
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
        for language in Language::ALL {
            for (name, description) in embedded_templates(language) {
                assert!(!description.is_empty(), "{name}");
                assert!(!description.contains(['[', '`']), "{name}: {description}");
                assert!(description.contains("Nimbus"), "{name}: {description}");
            }
        }
    }

    /// A template's files, its language's shared ones included.
    fn files_of(language: Language, name: &str) -> Vec<PathBuf> {
        fn walk(dir: &Dir<'_>, files: &mut Vec<PathBuf>) {
            for entry in dir.entries() {
                match entry {
                    include_dir::DirEntry::Dir(sub) => walk(sub, files),
                    include_dir::DirEntry::File(file) => files.push(
                        file.path()
                            .strip_prefix(dir_root(file.path()))
                            .unwrap()
                            .into(),
                    ),
                }
            }
        }
        // `LANGUAGE/NAME/…` → `LANGUAGE/NAME`.
        fn dir_root(path: &Path) -> PathBuf {
            path.iter().take(2).collect()
        }
        let mut files = Vec::new();
        for dir in [COMMON, name] {
            if let Some(dir) = TEMPLATES.get_dir(Path::new(language.name()).join(dir)) {
                walk(dir, &mut files);
            }
        }
        files
    }

    #[test]
    fn every_embedded_template_has_the_required_files() {
        let everywhere = [
            "http-hello-world",
            "http-client",
            "http-handler",
            "http-kv-counter",
        ];
        let rust_only = ["http-blobstore", "http-middleware", "http-postgres"];
        for language in Language::ALL {
            let names = embedded_names(language);
            for required in everywhere {
                assert!(
                    names.contains(&required.to_string()),
                    "{language:?} lacks {required}"
                );
            }
            if language == Language::Rust {
                for required in rust_only {
                    assert!(names.contains(&required.to_string()), "missing {required}");
                }
            }
            let toolchain_files: &[&str] = match language {
                Language::Rust => &["Cargo.toml"],
                Language::Typescript => &["package.json", "tsconfig.json", "src/index.ts"],
                Language::Python => &["requirements.txt", "app.py", "wasi_http.py"],
            };
            for name in names {
                let files = files_of(language, &name);
                for file in [
                    "README.md",
                    "gitignore",
                    ".nimbus/config.yaml",
                    "wit/world.wit",
                ]
                .iter()
                .chain(toolchain_files)
                {
                    assert!(
                        files.contains(&PathBuf::from(file)),
                        "{}/{name} lacks {file}",
                        language.name()
                    );
                }
            }
        }
    }

    #[test]
    fn a_template_of_another_language_is_pointed_to() {
        let error = embedded_template(Language::Python, "http-postgres")
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "no python template named `http-postgres`; it exists for rust (`--lang rust`)"
        );
        let error = embedded_template(Language::Typescript, "_common")
            .unwrap_err()
            .to_string();
        assert!(
            error
                .starts_with("no template named `_common`; available in typescript: http-client, "),
            "{error}"
        );
        for odd in [
            "../rust/http-handler",
            ".",
            "",
            "./http-handler",
            "http-handler/",
        ] {
            assert!(
                embedded_template(Language::Typescript, odd).is_err(),
                "`{odd}` was taken"
            );
        }
    }

    #[test]
    fn a_templates_links_to_its_own_files_are_copied_and_no_other_link_is_followed() {
        use std::os::unix::fs::symlink;
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "not for the project").unwrap();
        let template = tempfile::tempdir().unwrap();
        let root = template.path();
        std::fs::create_dir(root.join("docs")).unwrap();
        std::fs::write(root.join("docs/guide.md"), "{{project-name}} guide").unwrap();
        symlink("docs/guide.md", root.join("README.md")).unwrap();
        symlink(outside.path().join("secret"), root.join("stolen")).unwrap();
        symlink("docs", root.join("more-docs")).unwrap();
        symlink("nowhere", root.join("dangling")).unwrap();
        std::fs::create_dir(root.join(".git")).unwrap();
        std::fs::write(root.join(".git/config"), "url = https://token@example").unwrap();
        symlink(".git/config", root.join("git-config")).unwrap();
        let project = tempfile::tempdir().unwrap();
        let target = project.path().join("demo");
        copy_dir(root, &target, &Vars::new("demo")).unwrap();
        assert_eq!(
            std::fs::read_to_string(target.join("README.md")).unwrap(),
            "demo guide"
        );
        assert!(!target.join("README.md").is_symlink());
        for skipped in ["stolen", "more-docs", "dangling", "git-config", ".git"] {
            assert!(!target.join(skipped).exists(), "{skipped} was copied");
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
