//! Resolving the named `configs:` and `secrets:` sources of a project into
//! values, with the guardrails that keep secrets from leaking.
//!
//! A source is any of `inline` values, a `file`, a `dir` (one file per key)
//! and `fromEnv` variables, resolved in that order with later values
//! winning, as wash resolves them.
//!
//! Guardrails, each enforced here and tested:
//! - a `file` or `dir` source must resolve inside the project root after
//!   canonicalization (symlinks followed): `../` escapes and links pointing
//!   outside are refused;
//! - a secrets file readable by group or others is refused (mode must allow
//!   only the owner: 0600 or 0400);
//! - a secrets file that git does not ignore gives a loud warning naming the
//!   `.gitignore` line to add;
//! - secret values are read straight into [`Secret`] and never appear in an
//!   error message (a malformed line is reported by number only).

use crate::config::{ProjectConfig, Source};
use nimbus_model::NamedSources;
use nimbus_model::secret::Secret;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A source that could not be resolved.
#[derive(Debug, thiserror::Error)]
#[error("{kind} source `{name}`: {problem}")]
pub struct SourceError {
    /// `config` or `secret`.
    pub kind: &'static str,
    /// The source's name.
    pub name: String,
    /// What is wrong.
    pub problem: SourceProblem,
}

/// What is wrong with one source. No variant holds a value read from a
/// source, so none can print a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceProblem {
    /// A source with none of `inline`, `file`, `dir`, `fromEnv`.
    #[error("names no values: write `inline`, `file`, `dir` or `fromEnv`")]
    Empty,
    /// A `dir` source with more entries than are read.
    #[error("`{}` holds more than {limit} entries", dir.display())]
    TooManyFiles {
        /// The directory, as the config names it.
        dir: PathBuf,
        /// The most entries read.
        limit: usize,
    },
    /// A `dir` source whose files add up to more than is read.
    #[error("the files of `{}` hold more than {limit} bytes", dir.display())]
    TooLarge {
        /// The directory, as the config names it.
        dir: PathBuf,
        /// The most bytes read.
        limit: u64,
    },
    /// A file of a `dir` source whose name is not a key.
    #[error(
        "`{}`: a file's name is its key: letters, digits, `_`, `.`, `-`, not starting with a digit",
        file.display()
    )]
    InvalidKeyFile {
        /// The file, under the directory the config names.
        file: PathBuf,
    },
    /// `fromEnv` names a variable that is not set.
    #[error("environment variable `{0}` is not set")]
    UnsetVariable(String),
    /// A `file` source or its project could not be found or resolved.
    #[error(transparent)]
    Place(#[from] PlaceError),
    /// A secrets file others may read.
    #[error("`{}` is readable by group or others (mode {mode:04o}); run `chmod 600 {}`", file.display(), file.display())]
    NotPrivate {
        /// The file, as the config names it.
        file: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file could not be read (too large, not a regular file, not UTF-8).
    #[error(transparent)]
    Read(#[from] nimbus_model::files::FileError),
    /// The file's contents are not values.
    #[error("`{}`: {error}", file.display())]
    Values {
        /// The file, as the config names it.
        file: PathBuf,
        /// What is wrong, by line or key.
        error: ValuesError,
    },
}

/// Why a file named by the project config cannot be used where it is.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    /// The project directory cannot be canonicalized.
    #[error("cannot resolve the project root: {0}")]
    ProjectRoot(std::io::Error),
    /// The file does not exist or cannot be canonicalized.
    #[error("`{}`: {error}", file.display())]
    Unresolvable {
        /// The file, as the config names it.
        file: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A file of a `dir` source resolves outside that directory (a symlink).
    #[error(
        "`{}` resolves to {}, outside `{}`; a directory source reads only its own files",
        file.display(),
        resolved.display(),
        dir.display()
    )]
    OutsideDir {
        /// The file, under the directory the config names.
        file: PathBuf,
        /// Where it resolves to.
        resolved: PathBuf,
        /// The directory, as the config names it.
        dir: PathBuf,
    },
    /// The file resolves outside the project (`../`, a symlink).
    #[error(
        "`{}` resolves to {}, outside the project root {}; files must live inside the project",
        file.display(),
        resolved.display(),
        root.display()
    )]
    OutsideProject {
        /// The file, as the config names it.
        file: PathBuf,
        /// Where it resolves to.
        resolved: PathBuf,
        /// The project root.
        root: PathBuf,
    },
}

/// Why a values file did not parse. Never holds a value, nor any part of a
/// line that is not a valid `KEY=VALUE` (it may be a pasted secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValuesError {
    /// A NUL byte on this line.
    #[error("line {0} contains a NUL byte")]
    Nul(usize),
    /// A YAML or JSON file that is not a map (with the line, when known).
    #[error("not a map of keys to values{}", line.map(|l| format!(" (line {l})")).unwrap_or_default())]
    NotAMap {
        /// Where the parser stopped.
        line: Option<usize>,
    },
    /// A YAML or JSON value that is a list or a map.
    #[error("key `{0}` is not a string, number or boolean")]
    NotAScalar(String),
    /// A line without `=`.
    #[error("line {0} is not KEY=VALUE (it has no `=`)")]
    NoEquals(usize),
    /// A line whose text before `=` is not a key.
    #[error(
        "line {0} has no valid key before `=` (letters, digits, `_`, `.`, `-`, not starting with a digit)"
    )]
    InvalidKey(usize),
    /// A line of only `=` after the first: base64 padding.
    #[error("line {0} looks like a pasted value (it has `==`), not KEY=VALUE")]
    PastedValue(usize),
    /// `KEY=` with nothing after the `=`, whose key looks like base64 text
    /// with its padding rather than a name (see `looks_like_pasted_base64`).
    #[error(
        "line {0} looks like a pasted value (text ending in `=`), not KEY=VALUE; write an empty value as KEY=\"\""
    )]
    PastedKey(usize),
    /// A key set on two lines.
    #[error("key `{key}` is set twice, on lines {first} and {again}")]
    Duplicate {
        /// The key.
        key: String,
        /// Where it was first set.
        first: usize,
        /// Where it was set again.
        again: usize,
    },
}

/// Something the user should fix that does not stop the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning(pub String);

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Resolves every named source of `config`, reading files relative to
/// `project_dir` and the environment from `env` (pass `std::env::vars()`).
pub fn resolve(
    config: &ProjectConfig,
    project_dir: &Path,
    env: &BTreeMap<String, String>,
) -> Result<(NamedSources, Vec<Warning>), SourceError> {
    let mut warnings = Vec::new();
    let mut sources = NamedSources::default();
    for (name, source) in &config.configs {
        let values = read_source(Kind::Config, name, source, project_dir, env, &mut warnings)?;
        sources.configs.insert(name.clone(), values);
    }
    for (name, source) in &config.secrets {
        let values = read_source(Kind::Secret, name, source, project_dir, env, &mut warnings)?;
        sources.secrets.insert(
            name.clone(),
            values
                .into_iter()
                .map(|(k, v)| (k, Secret::new(v)))
                .collect(),
        );
    }
    Ok((sources, warnings))
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Config,
    Secret,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Secret => "secret",
        }
    }
}

fn read_source(
    kind: Kind,
    name: &str,
    source: &Source,
    project_dir: &Path,
    env: &BTreeMap<String, String>,
    warnings: &mut Vec<Warning>,
) -> Result<BTreeMap<String, String>, SourceError> {
    let error = |problem: SourceProblem| SourceError {
        kind: kind.word(),
        name: name.to_string(),
        problem,
    };
    if source.is_empty() {
        return Err(error(SourceProblem::Empty));
    }
    // wash's order: inline, file, dir, environment; later values win.
    let mut values = source.inline.clone();
    if !source.inline.is_empty() && kind == Kind::Secret {
        warnings.push(Warning(format!(
            "secret source `{name}` is written inline in the config file; \
             prefer `file` (kept out of git) or `fromEnv`"
        )));
    }
    if let Some(file) = &source.file {
        let path = inside_project(project_dir, file).map_err(|e| error(e.into()))?;
        if kind == Kind::Secret
            && let Some(warning) = git_ignore_warning(project_dir, &path, name)
        {
            warnings.push(warning);
        }
        let text = read_source_text(kind, &path, file).map_err(error)?;
        values.extend(parse_values(&text, &path).map_err(|e| {
            error(SourceProblem::Values {
                file: file.clone(),
                error: e,
            })
        })?);
    }
    if let Some(dir) = &source.dir {
        values.extend(read_dir_source(kind, name, dir, project_dir, warnings).map_err(error)?);
    }
    for pattern in &source.from_env {
        if let Some(prefix) = pattern.strip_suffix('*') {
            let matching: Vec<_> = env.iter().filter(|(k, _)| k.starts_with(prefix)).collect();
            if matching.is_empty() {
                warnings.push(Warning(format!(
                    "{} source `{name}`: no environment variable starts with `{prefix}`",
                    kind.word()
                )));
            }
            values.extend(matching.into_iter().map(|(k, v)| (k.clone(), v.clone())));
        } else {
            let value = env
                .get(pattern)
                .ok_or_else(|| error(SourceProblem::UnsetVariable(pattern.clone())))?;
            values.insert(pattern.clone(), value.clone());
        }
    }
    Ok(values)
}

/// The most entries a `dir` source may hold (dotfiles counted).
const MAX_DIR_ENTRIES: usize = 1024;

/// The most bytes a `dir` source reads in all.
const MAX_DIR_BYTES: u64 = 16 << 20;

/// A `dir` source: one file per key (the file's name), its contents the
/// value; dotfiles and subdirectories are skipped. Each name must be a
/// valid key, each file must stay inside the directory (a symlink out of it
/// is refused, never skipped in silence), and for secrets be private. The
/// whole directory is bounded in entries and in bytes.
fn read_dir_source(
    kind: Kind,
    name: &str,
    dir: &Path,
    project_dir: &Path,
    warnings: &mut Vec<Warning>,
) -> Result<BTreeMap<String, String>, SourceProblem> {
    let project_root = std::fs::canonicalize(project_dir).map_err(PlaceError::ProjectRoot)?;
    let root = inside_root(&project_root, dir)?;
    let unreadable = |error| PlaceError::Unresolvable {
        file: dir.to_path_buf(),
        error,
    };
    let mut names = Vec::new();
    for (count, entry) in std::fs::read_dir(&root).map_err(unreadable)?.enumerate() {
        if count >= MAX_DIR_ENTRIES {
            return Err(SourceProblem::TooManyFiles {
                dir: dir.to_path_buf(),
                limit: MAX_DIR_ENTRIES,
            });
        }
        let file_name = entry.map_err(unreadable)?.file_name();
        let shown = dir.join(&file_name);
        let Some(key) = file_name.to_str().map(str::to_string) else {
            return Err(SourceProblem::InvalidKeyFile { file: shown });
        };
        if key.starts_with('.') {
            continue;
        }
        names.push((key, shown));
    }
    names.sort();
    if kind == Kind::Secret
        && let Some(warning) = git_ignore_warning(project_dir, &root, name)
    {
        warnings.push(warning);
    }
    let mut values = BTreeMap::new();
    let mut total = 0u64;
    for (key, shown) in names {
        let path = inside_root(&project_root, &shown)?;
        if path.is_dir() {
            continue;
        }
        if !path.starts_with(&root) {
            return Err(PlaceError::OutsideDir {
                file: shown,
                resolved: path,
                dir: dir.to_path_buf(),
            }
            .into());
        }
        if !valid_key(&key) {
            return Err(SourceProblem::InvalidKeyFile { file: shown });
        }
        let text = read_source_text(kind, &path, &shown)?;
        total += text.len() as u64;
        if total > MAX_DIR_BYTES {
            return Err(SourceProblem::TooLarge {
                dir: dir.to_path_buf(),
                limit: MAX_DIR_BYTES,
            });
        }
        // A trailing newline is the editor's, not the value's.
        let value = text.strip_suffix('\n').unwrap_or(&text);
        let value = value.strip_suffix('\r').unwrap_or(value);
        values.insert(key, value.to_string());
    }
    Ok(values)
}

/// `file` resolved against the project, refused unless it stays inside.
pub fn inside_project(project_dir: &Path, file: &Path) -> Result<PathBuf, PlaceError> {
    let root = std::fs::canonicalize(project_dir).map_err(PlaceError::ProjectRoot)?;
    inside_root(&root, file)
}

/// [`inside_project`] for a project root already canonicalized.
fn inside_root(root: &Path, file: &Path) -> Result<PathBuf, PlaceError> {
    let joined = root.join(file);
    let resolved = std::fs::canonicalize(&joined).map_err(|error| PlaceError::Unresolvable {
        file: file.to_path_buf(),
        error,
    })?;
    if !resolved.starts_with(root) {
        return Err(PlaceError::OutsideProject {
            file: file.to_path_buf(),
            resolved,
            root: root.to_path_buf(),
        });
    }
    Ok(resolved)
}

/// One source file's text: private if it holds secrets, bounded, and a
/// regular file (a FIFO or a device named here must not hang or flood the CLI).
fn read_source_text(kind: Kind, path: &Path, shown: &Path) -> Result<String, SourceProblem> {
    if kind == Kind::Secret {
        check_private(path, shown)?;
    }
    Ok(nimbus_model::files::read_text_bounded(
        path,
        MAX_SOURCE_FILE_BYTES,
    )?)
}

#[cfg(unix)]
fn check_private(path: &Path, shown: &Path) -> Result<(), SourceProblem> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|error| PlaceError::Unresolvable {
            file: shown.to_path_buf(),
            error,
        })?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(SourceProblem::NotPrivate {
            file: shown.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path, _shown: &Path) -> Result<(), SourceProblem> {
    Ok(())
}

/// A warning when `path` sits in a git work tree and git does not ignore it.
fn git_ignore_warning(project_dir: &Path, path: &Path, name: &str) -> Option<Warning> {
    let root = std::fs::canonicalize(project_dir).ok()?;
    let relative = path.strip_prefix(&root).ok()?;
    let status = std::process::Command::new("git")
        .arg("-C")
        .arg(&root)
        .args(["check-ignore", "-q", "--"])
        .arg(relative)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .ok()?;
    // 0: ignored; 1: not ignored; 128: not a git work tree (nothing to warn about).
    (status.code() == Some(1)).then(|| {
        Warning(format!(
            "SECRETS FILE NOT IGNORED BY GIT: secret source `{name}` reads `{}`, which git would commit; \
             add this line to {}: /{}",
            relative.display(),
            root.join(".gitignore").display(),
            relative.display()
        ))
    })
}

/// The largest config or secrets file read.
const MAX_SOURCE_FILE_BYTES: u64 = 1 << 20;

/// Parses `KEY=VALUE` lines, or YAML/JSON by extension. Values never appear
/// in the returned error, nor does any part of a line that is not a valid
/// `KEY=VALUE` (it may be a pasted secret).
pub fn parse_values(text: &str, path: &Path) -> Result<BTreeMap<String, String>, ValuesError> {
    // Editors on Windows start UTF-8 files with a byte-order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if let Some(line) = text.lines().position(|l| l.contains('\0')) {
        return Err(ValuesError::Nul(line + 1));
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if matches!(ext, "yaml" | "yml" | "json") {
        let map: BTreeMap<String, serde_yaml_ng::Value> =
            serde_yaml_ng::from_str(text).map_err(|e| ValuesError::NotAMap {
                line: e.location().map(|l| l.line()),
            })?;
        return map
            .into_iter()
            .map(|(k, v)| match v {
                serde_yaml_ng::Value::String(s) => Ok((k, s)),
                serde_yaml_ng::Value::Number(n) => Ok((k, n.to_string())),
                serde_yaml_ng::Value::Bool(b) => Ok((k, b.to_string())),
                _ => Err(ValuesError::NotAScalar(k)),
            })
            .collect();
    }
    let mut values = BTreeMap::new();
    let mut first_line: BTreeMap<String, usize> = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err(ValuesError::NoEquals(number));
        };
        let key = key.trim();
        if !valid_key(key) {
            return Err(ValuesError::InvalidKey(number));
        }
        if !value.is_empty() && value.chars().all(|c| c == '=') {
            // `abc==`: base64 padding, not an assignment (`K==v` is one).
            return Err(ValuesError::PastedValue(number));
        }
        if value.is_empty() && looks_like_pasted_base64(key) {
            // `cGFzc3dvcmQ=`: one `=` of padding, which would otherwise make
            // a key of the pasted text, shown by `nimbus config show`.
            return Err(ValuesError::PastedKey(number));
        }
        if let Some(first) = first_line.insert(key.to_string(), number) {
            return Err(ValuesError::Duplicate {
                key: key.to_string(),
                first,
                again: number,
            });
        }
        let value = value.trim();
        let value = ['"', '\'']
            .iter()
            .find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
            .unwrap_or(value);
        values.insert(key.to_string(), value.to_string());
    }
    Ok(values)
}

/// Whether the key of a `KEY=` line with nothing after the `=` is more
/// likely a pasted base64 value (`cGFzc3dvcmQ=`, where the `=` is padding)
/// than a name set to the empty string (`FOO=`, `apiV2Key=`, `log-level=`).
///
/// A line of base64 with one `=` of padding parses as a valid key and an
/// empty value; `nimbus config show` would then print the key, the pasted
/// (maybe secret) text. Such a key has the shape of padded base64: its
/// length plus the one `=` is a multiple of four, it is at least 11
/// characters long (8 bytes encoded), it mixes lower case, upper case and
/// digits, and it has no `_`, `.` or `-` (names join words with those;
/// base64 has none of them). A name of that shape is rare; it can be set
/// to the empty value as `KEY=""`. The error names only the line, never its
/// text.
fn looks_like_pasted_base64(key: &str) -> bool {
    key.len() >= 11
        && key.len() % 4 == 3
        && key.chars().all(|c| c.is_ascii_alphanumeric())
        && key.chars().any(|c| c.is_ascii_lowercase())
        && key.chars().any(|c| c.is_ascii_uppercase())
        && key.chars().any(|c| c.is_ascii_digit())
}

/// A key as environment variables and config names spell them.
fn valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_config;

    const SECRET: &str = "p4ssw0rd-do-not-leak";

    fn project() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    fn config(text: &str) -> ProjectConfig {
        parse_config(text, Path::new("config.yaml")).unwrap().0
    }

    /// The error of resolving `text` in `dir` with an empty environment.
    fn resolve_err(text: &str, dir: &Path) -> String {
        resolve(&config(text), dir, &BTreeMap::new())
            .unwrap_err()
            .to_string()
    }

    fn write_private(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }

    #[test]
    fn reads_env_files_yaml_inline_and_environment() {
        let dir = project();
        write_private(
            &dir.path().join("db.env"),
            &format!("# comment\nexport DB_USER=admin\nDB_PASSWORD=\"{SECRET}\"\n"),
        );
        std::fs::write(dir.path().join("app.yaml"), "MODE: fast\nRETRIES: 3\n").unwrap();
        let env: BTreeMap<String, String> = [
            ("APP_A".to_string(), "1".to_string()),
            ("APP_B".to_string(), "2".to_string()),
            ("TOKEN".to_string(), "t".to_string()),
        ]
        .into();
        let cfg = config(
            "configs:\n  app: { file: app.yaml }\n  inl: { inline: { K: v } }\n  pre: { fromEnv: 'APP_*' }\n\
             secrets:\n  db: { file: db.env }\n  tok: { fromEnv: TOKEN }\n",
        );
        let (sources, _) = resolve(&cfg, dir.path(), &env).unwrap();
        assert_eq!(sources.configs["app"]["RETRIES"], "3");
        assert_eq!(sources.configs["inl"]["K"], "v");
        assert_eq!(sources.configs["pre"].len(), 2);
        assert_eq!(sources.secrets["db"]["DB_PASSWORD"].expose(), SECRET);
        assert_eq!(sources.secrets["db"]["DB_USER"].expose(), "admin");
        assert_eq!(sources.secrets["tok"]["TOKEN"].expose(), "t");
        assert!(!format!("{sources:?}").contains(SECRET));
    }

    #[test]
    fn dot_dot_escape_is_refused() {
        let outer = project();
        let dir = outer.path().join("proj");
        std::fs::create_dir(&dir).unwrap();
        write_private(&outer.path().join("outside.env"), "A=b\n");
        let err = resolve_err("secrets:\n  s: { file: ../outside.env }\n", &dir);
        assert!(err.contains("outside the project root"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn symlink_pointing_outside_is_refused() {
        let outer = project();
        let dir = outer.path().join("proj");
        std::fs::create_dir(&dir).unwrap();
        write_private(&outer.path().join("real.env"), "A=b\n");
        std::os::unix::fs::symlink(outer.path().join("real.env"), dir.join("link.env")).unwrap();
        let err = resolve_err("configs:\n  s: { file: link.env }\n", &dir);
        assert!(err.contains("outside the project root"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn group_or_world_readable_secrets_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = project();
        let path = dir.path().join("s.env");
        write_private(&path, &format!("K={SECRET}\n"));
        for mode in [0o644, 0o640, 0o604] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = resolve_err("secrets:\n  s: { file: s.env }\n", dir.path());
            assert!(err.contains("chmod 600"), "{mode:o}: {err}");
            assert!(!err.contains(SECRET));
        }
        for mode in [0o600, 0o400] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            resolve(
                &config("secrets:\n  s: { file: s.env }\n"),
                dir.path(),
                &BTreeMap::new(),
            )
            .unwrap();
        }
    }

    #[test]
    fn secrets_file_not_ignored_by_git_warns_with_the_line_to_add() {
        let dir = project();
        let git = |args: &[&str]| {
            std::process::Command::new("git")
                .arg("-C")
                .arg(dir.path())
                .args(args)
                .output()
        };
        if git(&["init", "-q"])
            .map(|o| !o.status.success())
            .unwrap_or(true)
        {
            panic!("git is needed for this test and `git init` failed");
        }
        write_private(&dir.path().join("secrets/db.env"), "K=v\n");
        let cfg = config("secrets:\n  db: { file: secrets/db.env }\n");
        let (_, warnings) = resolve(&cfg, dir.path(), &BTreeMap::new()).unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].0.contains("/secrets/db.env"), "{}", warnings[0]);
        std::fs::write(dir.path().join(".gitignore"), "/secrets/\n").unwrap();
        let (_, warnings) = resolve(&cfg, dir.path(), &BTreeMap::new()).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn malformed_secret_file_error_does_not_echo_values() {
        let dir = project();
        write_private(&dir.path().join("s.env"), &format!("{SECRET}\n"));
        let err = resolve_err("secrets:\n  s: { file: s.env }\n", dir.path());
        assert!(err.contains("line 1 is not KEY=VALUE"), "{err}");
        assert!(!err.contains(SECRET));
    }

    /// The `.env` parser's edges: a byte-order mark is not part of the
    /// first key; a key set twice names both lines; NUL, pasted base64 and
    /// keys that are not names are refused without echoing the line; a
    /// FIFO or device is refused at once instead of hanging.
    #[test]
    fn env_files_are_read_strictly_and_never_echo_values() {
        let dir = project();
        write_private(&dir.path().join("bom.env"), "\u{feff}FIRST=1\nSECOND=2\n");
        let cfg = config("secrets:\n  s: { file: bom.env }\n");
        let (sources, _) = resolve(&cfg, dir.path(), &BTreeMap::new()).unwrap();
        assert_eq!(sources.secrets["s"]["FIRST"].expose(), "1");

        let cases = [
            (
                format!("A=1\nB=2\nA={SECRET}\n"),
                "key `A` is set twice, on lines 1 and 3",
            ),
            (format!("A=1\nB={SECRET}\0\n"), "line 2 contains a NUL byte"),
            (
                "cDRzc3cwcmQtZG8tbm90LWxlYWs==\n".to_string(),
                "line 1 looks like a pasted value",
            ),
            (
                "A=1\ncGFzc3dvcmQ=\n".to_string(),
                "line 2 looks like a pasted value",
            ),
            (format!("{SECRET}+/x=1\n"), "line 1 has no valid key"),
            (format!("{SECRET}\n"), "line 1 is not KEY=VALUE"),
        ];
        for (text, expected) in cases {
            write_private(&dir.path().join("s.env"), &text);
            let err = resolve_err("secrets:\n  s: { file: s.env }\n", dir.path());
            assert!(err.contains(expected), "{text:?} => {err}");
            assert!(!err.contains(SECRET) && !err.contains("cGFzc3dv"), "{err}");
        }

        #[cfg(unix)]
        {
            let fifo = dir.path().join("fifo.env");
            rustix_mkfifo(&fifo);
            let err = resolve_err("configs:\n  c: { file: fifo.env }\n", dir.path());
            assert!(err.contains("not a regular file"), "{err}");
        }
    }

    /// `KEY=` sets the empty string after any name, but a line that looks
    /// like base64 with one `=` of padding is refused, by its number alone;
    /// `KEY=""` is the way to an empty value after a key of that shape.
    #[test]
    fn an_empty_value_is_refused_only_after_padded_base64() {
        let parse = |text: &str| parse_values(text, Path::new("s.env"));
        for accepted in [
            "FOO=",
            "foo_bar=",
            "export FOO=",
            "QUJD=",
            "myVar1=",
            "apiV2Key=",
            "a.b=",
            "log-level=",
            "cGFzc3dvcmQ=\"\"",
        ] {
            let values = parse(accepted).unwrap_or_else(|e| panic!("{accepted:?}: {e}"));
            assert_eq!(
                values.values().next().map(String::as_str),
                Some(""),
                "{accepted:?}"
            );
        }
        // "password" and "secretToken123", base64 with one `=` of padding.
        for refused in [
            "cGFzc3dvcmQ=",
            "FOO=1\ncGFzc3dvcmQ=",
            "c2VjcmV0VG9rZW4xMjM=",
        ] {
            let err = parse(refused).unwrap_err();
            assert!(
                matches!(err, ValuesError::PastedKey(_)),
                "{refused:?}: {err}"
            );
            let shown = err.to_string();
            assert!(shown.contains("looks like a pasted value"), "{shown}");
            assert!(
                !shown.contains("cGFz") && !shown.contains("c2Vj"),
                "{shown}"
            );
        }
        assert!(matches!(
            parse("FOO=1\ncGFzc3dvcmQ="),
            Err(ValuesError::PastedKey(2))
        ));
    }

    #[cfg(unix)]
    fn rustix_mkfifo(path: &Path) {
        let status = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .expect("mkfifo runs");
        assert!(status.success());
    }

    /// wash's forms: one source may combine `inline`, `file`, `dir` and a
    /// `fromEnv` list, resolved in that order, later values winning.
    #[test]
    fn sources_combine_inline_file_dir_and_environment_in_wash_order() {
        let dir = project();
        std::fs::write(dir.path().join("app.env"), "A=file\nB=file\nC=file\n").unwrap();
        std::fs::create_dir(dir.path().join("app.d")).unwrap();
        std::fs::write(dir.path().join("app.d/B"), "dir\n").unwrap();
        std::fs::write(dir.path().join("app.d/D"), "dir").unwrap();
        std::fs::write(dir.path().join("app.d/.hidden"), "no").unwrap();
        let env: BTreeMap<String, String> = [
            ("C".to_string(), "env".to_string()),
            ("E".to_string(), "env".to_string()),
        ]
        .into();
        let cfg = config(
            "configs:\n  app:\n    inline: { A: inline, Z: inline }\n    file: app.env\n    dir: app.d\n    fromEnv: [C, E]\n",
        );
        let (sources, warnings) = resolve(&cfg, dir.path(), &env).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let app = &sources.configs["app"];
        let got: Vec<(&str, &str)> = app.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            got,
            [
                ("A", "file"),
                ("B", "dir"),
                ("C", "env"),
                ("D", "dir"),
                ("E", "env"),
                ("Z", "inline")
            ]
        );
    }

    #[test]
    fn secret_dirs_are_checked_file_by_file_and_empty_sources_refused() {
        let dir = project();
        std::fs::create_dir(dir.path().join("s.d")).unwrap();
        write_private(&dir.path().join("s.d/TOKEN"), SECRET);
        let cfg = config("secrets:\n  s: { dir: s.d }\n");
        let (sources, _) = resolve(&cfg, dir.path(), &BTreeMap::new()).unwrap();
        assert_eq!(sources.secrets["s"]["TOKEN"].expose(), SECRET);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let open = std::fs::Permissions::from_mode(0o644);
            std::fs::set_permissions(dir.path().join("s.d/TOKEN"), open).unwrap();
            let err = resolve_err("secrets:\n  s: { dir: s.d }\n", dir.path());
            assert!(err.contains("chmod 600 s.d/TOKEN"), "{err}");
            assert!(!err.contains(SECRET), "{err}");
        }
        let err = resolve_err("configs:\n  c: {}\n", dir.path());
        assert_eq!(
            err,
            "config source `c`: names no values: write `inline`, `file`, `dir` or `fromEnv`"
        );
    }

    #[cfg(unix)]
    #[test]
    fn dir_sources_refuse_escapes_bad_names_fifos_and_floods() {
        let dir = project();
        let d = dir.path().join("c.d");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(dir.path().join("elsewhere.txt"), "x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere.txt"), d.join("LINK")).unwrap();
        let err = resolve_err("configs:\n  c: { dir: c.d }\n", dir.path());
        assert!(err.contains("outside `c.d`"), "{err}");
        std::fs::remove_file(d.join("LINK")).unwrap();

        std::fs::write(d.join("my key"), "x").unwrap();
        let err = resolve_err("configs:\n  c: { dir: c.d }\n", dir.path());
        assert!(
            err.contains("`c.d/my key`: a file's name is its key"),
            "{err}"
        );
        std::fs::remove_file(d.join("my key")).unwrap();

        // A FIFO fails at once (regular files only); it never blocks.
        rustix_mkfifo(&d.join("PIPE"));
        let err = resolve_err("configs:\n  c: { dir: c.d }\n", dir.path());
        assert!(err.contains("not a regular file"), "{err}");
        std::fs::remove_file(d.join("PIPE")).unwrap();

        for i in 0..=MAX_DIR_ENTRIES {
            std::fs::write(d.join(format!(".hidden{i}")), "").unwrap();
        }
        let err = resolve_err("configs:\n  c: { dir: c.d }\n", dir.path());
        assert!(err.contains("holds more than 1024 entries"), "{err}");
    }

    #[test]
    fn missing_env_variable_is_an_error() {
        let err = resolve_err("secrets:\n  s: { fromEnv: NOPE_NOT_SET }\n", Path::new("."));
        assert_eq!(
            err,
            "secret source `s`: environment variable `NOPE_NOT_SET` is not set"
        );
    }
}
