//! What `nimbus dev` watches, and whether a file event is a change.
//!
//! Each local project is watched for what its build reads: the sources the
//! toolchain reported (cargo's dep-info), its `Cargo.toml`/`Cargo.lock`, its
//! `wit/` folder, and its `watch:` globs; a build the toolchain does not
//! describe (a custom command before or without dep-info, every TypeScript
//! or Python build) falls back to every file of the project that git does
//! not ignore. Never watched: the toolchain's outputs and installs (target
//! dirs, the cargo home, `node_modules`, `.venv`), git-ignored paths,
//! nimbus's own output files (a redirected stdout or stderr, `--log-file`)
//! and the directories components write into (volumes, filesystem
//! backends).
//!
//! An event is only a hint: a path counts as changed when its content
//! differs from what the last build saw, so touching a file, an editor
//! rewriting it unchanged, or cargo writing `Cargo.lock` reloads nothing,
//! and an idle project never reloads.

use globset::{Glob, GlobSet, GlobSetBuilder};
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use notify::Watcher as _;
use std::collections::{BTreeSet, HashMap};
use std::hash::Hasher as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Directories whose contents never rebuild, wherever they are: build
/// outputs, VCS data, dependencies, editors' state.
const IGNORED_DIRS: [&str; 8] = [
    "target",
    ".git",
    "node_modules",
    ".venv",
    "__pycache__",
    "gen",
    ".idea",
    ".vscode",
];

/// Lock files the toolchains write themselves during a build (cargo, npm's
/// install before a TypeScript build): what they wrote is what the next
/// build starts from, not an edit.
const LOCK_FILES: [&str; 2] = ["Cargo.lock", "package-lock.json"];

/// Most directories walked per project when the whole project is watched.
const MAX_WALKED_DIRS: usize = 20_000;

/// Files larger than this are compared by size and modification time only.
const MAX_HASHED_BYTES: u64 = 8 << 20;

/// What a file's content was when a build started: `None` when absent.
type Fingerprint = Option<(u64, u64)>;

/// What settled events call for.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Changes {
    /// A config file (the project's, a component project's, a source's)
    /// changed: reload the config, then rebuild everything.
    pub(super) config: bool,
    /// Indexes of the local projects whose inputs changed.
    pub(super) projects: BTreeSet<usize>,
}

impl Changes {
    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        !self.config && self.projects.is_empty()
    }
}

/// One local project's watch state.
struct ProjectWatch {
    dir: PathBuf,
    /// Exact files the build read (dep-info, manifests, WIT files).
    files: BTreeSet<PathBuf>,
    /// `watch:` globs, relative to `dir`.
    globs: GlobSet,
    /// No dep-info (no good build yet, another toolchain, or the last
    /// build failed and may now read files it never read): any file under
    /// `dir` that is not ignored counts.
    whole_tree: bool,
    /// The project's WIT folder.
    wit_dir: PathBuf,
    /// Paths that never count (shared with the set, plus the component
    /// file the build writes).
    excluded: Vec<PathBuf>,
    /// `.gitignore` files of the project, deepest last.
    gitignores: Vec<Gitignore>,
    /// Directories watched for this project.
    dirs: BTreeSet<PathBuf>,
    /// Content of every known input when the last build started.
    seen: HashMap<PathBuf, Fingerprint>,
}

/// The watcher and what each event means.
pub(super) struct WatchSet {
    watcher: notify::RecommendedWatcher,
    watched: BTreeSet<PathBuf>,
    projects: Vec<ProjectWatch>,
    /// Config files: a change reloads the config.
    config_files: BTreeSet<PathBuf>,
    /// Paths (files or directories) that never count.
    excluded: Vec<PathBuf>,
    cargo_home: Option<PathBuf>,
    /// Paths an event named since the last [`WatchSet::take_changes`].
    pending: BTreeSet<PathBuf>,
    /// The watcher lost events (its queue overflowed): compare everything.
    rescan_all: bool,
}

impl WatchSet {
    /// A watcher sending its events to `events`.
    pub(super) fn new(
        events: tokio::sync::mpsc::UnboundedSender<notify::Event>,
    ) -> anyhow::Result<Self> {
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if let Ok(event) = event {
                let _ = events.send(event);
            }
        })
        .map_err(|e| anyhow::anyhow!("cannot watch the project for changes: {e}"))?;
        let cargo_home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| dirs::home_dir().map(|h| h.join(".cargo")))
            .and_then(|p| std::fs::canonicalize(p).ok());
        Ok(Self {
            watcher,
            watched: BTreeSet::new(),
            projects: Vec::new(),
            config_files: BTreeSet::new(),
            excluded: Vec::new(),
            cargo_home,
            pending: BTreeSet::new(),
            rescan_all: false,
        })
    }

    /// Sets the projects (index order is the caller's), config files and
    /// excluded paths; forgets what earlier builds read.
    pub(super) fn configure(
        &mut self,
        projects: &[nimbus_project::local::LocalProject],
        config_files: impl IntoIterator<Item = PathBuf>,
        excluded: impl IntoIterator<Item = PathBuf>,
    ) {
        self.excluded = excluded
            .into_iter()
            .map(|p| std::fs::canonicalize(&p).unwrap_or(p))
            .collect();
        self.config_files = config_files
            .into_iter()
            .map(|p| std::fs::canonicalize(&p).unwrap_or(p))
            .collect();
        self.projects = projects
            .iter()
            .map(|project| ProjectWatch {
                dir: project.dir.clone(),
                files: BTreeSet::new(),
                globs: build_globs(&project.watch),
                whole_tree: true,
                wit_dir: project.wit.dir(&project.dir),
                excluded: self.excluded.clone(),
                gitignores: Vec::new(),
                dirs: BTreeSet::new(),
                seen: HashMap::new(),
            })
            .collect();
        for index in 0..self.projects.len() {
            self.rescan(index);
        }
        self.sync_watches();
    }

    /// Records what project `index`'s inputs are as its build starts.
    pub(super) fn before_build(&mut self, index: usize) {
        let project = &mut self.projects[index];
        project.seen = project
            .known_inputs()
            .into_iter()
            .map(|path| {
                let fingerprint = fingerprint(&path);
                (path, fingerprint)
            })
            .collect();
    }

    /// Takes in what project `index`'s build read (`component`'s dep-info)
    /// and returns whether an input was written while it ran (then the
    /// build may have missed the edit: build again). Files first learnt of
    /// now are recorded as they are.
    pub(super) fn after_build(
        &mut self,
        index: usize,
        component: Option<&Path>,
        started: SystemTime,
    ) -> bool {
        let reported = component
            .map(nimbus_project::component_build::sources_read)
            .unwrap_or_default();
        let target_root = component.and_then(target_root);
        let cargo_home = self.cargo_home.clone();
        let project = &mut self.projects[index];
        // The build's own output is never an input (a custom command may
        // write it into the project).
        project.excluded = self.excluded.clone();
        project
            .excluded
            .extend(component.map(|c| std::fs::canonicalize(c).unwrap_or_else(|_| c.into())));
        project.files = reported
            .into_iter()
            .filter(|path| {
                // Dependencies from the registry and generated code are
                // the toolchain's, not the user's.
                !cargo_home
                    .as_ref()
                    .is_some_and(|home| path.starts_with(home))
                    && !target_root
                        .as_ref()
                        .is_some_and(|root| path.starts_with(root))
            })
            .collect();
        project.whole_tree = project.files.is_empty();
        self.rescan(index);
        let project = &mut self.projects[index];
        for lock in LOCK_FILES {
            let lock = project.dir.join(lock);
            let lock_now = fingerprint(&lock);
            project.seen.insert(lock, lock_now);
        }
        let mut written_meanwhile = false;
        for path in project.known_inputs() {
            if project.seen.contains_key(&path) {
                continue;
            }
            let fingerprint = fingerprint(&path);
            if std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .is_ok_and(|modified| modified > started)
            {
                tracing::debug!("{} was written during the build", path.display());
                written_meanwhile = true;
            }
            project.seen.insert(path, fingerprint);
        }
        self.sync_watches();
        written_meanwhile
    }

    /// Project `index`'s build failed: until one succeeds, any file of the
    /// project counts (the fix may be a file the last good build never read,
    /// such as a new module).
    pub(super) fn build_failed(&mut self, index: usize) {
        if !self.projects[index].whole_tree {
            self.projects[index].whole_tree = true;
            self.rescan(index);
            self.sync_watches();
        }
    }

    /// Notes the paths an event names (nothing is read yet).
    pub(super) fn note(&mut self, event: &notify::Event) {
        use notify::EventKind;
        if event.need_rescan() {
            self.rescan_all = true;
        }
        if matches!(event.kind, EventKind::Access(_) | EventKind::Other) {
            return;
        }
        self.pending.extend(event.paths.iter().cloned());
    }

    /// What the paths noted since the last call changed.
    pub(super) fn take_changes(&mut self) -> Changes {
        let mut changes = Changes::default();
        let mut pending = std::mem::take(&mut self.pending);
        if std::mem::take(&mut self.rescan_all) {
            tracing::debug!("the watcher lost events: comparing every input");
            for project in &self.projects {
                pending.extend(project.known_inputs());
            }
            changes.config = true;
        }
        // A new directory of a project watched whole: watch it, and look at
        // what it already holds (its files' events may have come before the
        // watch).
        let new_dirs: Vec<PathBuf> = pending.iter().filter(|p| p.is_dir()).cloned().collect();
        for dir in new_dirs {
            for index in 0..self.projects.len() {
                let project = &self.projects[index];
                let whole = project.whole_tree || !project.globs.is_empty();
                if whole && dir.starts_with(&project.dir) && !project.dirs.contains(&dir) {
                    self.rescan(index);
                    self.sync_watches();
                    pending.extend(files_under(&dir));
                }
            }
        }
        for path in pending {
            if self.excluded.iter().any(|e| path.starts_with(e)) {
                continue;
            }
            if self.config_files.iter().any(|c| path.starts_with(c)) {
                changes.config = true;
                continue;
            }
            for (index, project) in self.projects.iter().enumerate() {
                if project.is_input(&path) && project.changed(&path) {
                    tracing::debug!("{} changed", path.display());
                    changes.projects.insert(index);
                }
            }
        }
        changes
    }

    /// Walks project `index` again for its directories and `.gitignore`s.
    fn rescan(&mut self, index: usize) {
        let project = &mut self.projects[index];
        let (dirs, gitignores) = walk(
            &project.dir,
            &project.wit_dir,
            &project.excluded,
            project.whole_tree || !project.globs.is_empty(),
        );
        project.gitignores = gitignores;
        project.dirs = dirs;
        // The parents of files read outside the project (path dependencies).
        let outside: Vec<PathBuf> = project
            .files
            .iter()
            .filter_map(|f| f.parent())
            .map(Path::to_path_buf)
            .collect();
        project.dirs.extend(outside);
    }

    /// Watches every directory some project needs and stops watching the
    /// rest; config files' directories too.
    fn sync_watches(&mut self) {
        let mut wanted: BTreeSet<PathBuf> = self
            .projects
            .iter()
            .flat_map(|p| p.dirs.iter().cloned())
            .collect();
        // A config file's folder; a `dir:` source's folder itself too.
        wanted.extend(self.config_files.iter().flat_map(|f| {
            let own = f.is_dir().then(|| f.clone());
            f.parent().map(Path::to_path_buf).into_iter().chain(own)
        }));
        for gone in self
            .watched
            .difference(&wanted)
            .cloned()
            .collect::<Vec<_>>()
        {
            let _ = self.watcher.unwatch(&gone);
            self.watched.remove(&gone);
        }
        for dir in wanted {
            if self.watched.contains(&dir) || !dir.is_dir() {
                continue;
            }
            match self
                .watcher
                .watch(&dir, notify::RecursiveMode::NonRecursive)
            {
                Ok(()) => {
                    self.watched.insert(dir);
                }
                Err(error) => {
                    tracing::warn!("cannot watch {}: {error}", dir.display());
                }
            }
        }
    }

    /// How many directories are watched (for `--verbose`).
    pub(super) fn watched_dirs(&self) -> usize {
        self.watched.len()
    }
}

impl ProjectWatch {
    /// Every input known without an event: reported files, manifests, WIT
    /// files and the files the globs match.
    fn known_inputs(&self) -> BTreeSet<PathBuf> {
        let mut inputs = self.files.clone();
        for name in ["Cargo.toml", "Cargo.lock"] {
            inputs.insert(self.dir.join(name));
        }
        for dir in &self.dirs {
            if !dir.starts_with(&self.dir) {
                continue;
            }
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if entry.file_type().is_ok_and(|t| t.is_file()) && self.is_input(&path) {
                    inputs.insert(path);
                }
            }
        }
        inputs
    }

    /// Whether `path` is something this project's build reads.
    fn is_input(&self, path: &Path) -> bool {
        if self.excluded.iter().any(|e| path.starts_with(e)) {
            return false;
        }
        if self.files.contains(path) {
            return true;
        }
        let Ok(relative) = path.strip_prefix(&self.dir) else {
            return false;
        };
        if relative.as_os_str().is_empty() {
            return false;
        }
        if relative.components().any(|c| {
            IGNORED_DIRS
                .iter()
                .any(|d| c.as_os_str() == std::ffi::OsStr::new(d))
        }) || self.ignored(path)
        {
            return false;
        }
        if relative == Path::new("Cargo.toml")
            || relative == Path::new("Cargo.lock")
            || path.starts_with(&self.wit_dir)
            || self.globs.is_match(relative)
        {
            return true;
        }
        self.whole_tree && !is_editor_file(path) && !is_document(path)
    }

    /// Whether git ignores `path` (under this project): the deepest
    /// `.gitignore` with an opinion decides, as in git.
    fn ignored(&self, path: &Path) -> bool {
        let is_dir = path.is_dir();
        for gitignore in self.gitignores.iter().rev() {
            let Ok(relative) = path.strip_prefix(gitignore.path()) else {
                continue;
            };
            let matched = gitignore.matched_path_or_any_parents(relative, is_dir);
            if matched.is_ignore() {
                return true;
            }
            if matched.is_whitelist() {
                return false;
            }
        }
        false
    }

    /// Whether `path` differs from what the last build saw.
    fn changed(&self, path: &Path) -> bool {
        match self.seen.get(path) {
            Some(seen) => *seen != fingerprint(path),
            // Unknown so far: a new file. A directory is no change itself
            // (its files' own events are).
            None => path.is_file(),
        }
    }
}

/// The `watch:` globs; a malformed one was refused when the config loaded
/// (`Project::load`), so one that fails here is skipped with a warning.
fn build_globs(patterns: &[String]) -> GlobSet {
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        match Glob::new(pattern) {
            Ok(glob) => {
                builder.add(glob);
            }
            Err(error) => tracing::warn!("`watch` glob `{pattern}` skipped: {error}"),
        }
    }
    builder.build().unwrap_or_else(|_| GlobSet::empty())
}

/// The project's directories (all of them when `all_dirs`, else the root,
/// `.nimbus`, `.wash` and `wit/`), and its `.gitignore` matchers, outermost
/// first. Skips what git ignores and the toolchains' output directories.
fn walk(
    root: &Path,
    wit_dir: &Path,
    excluded: &[PathBuf],
    all_dirs: bool,
) -> (BTreeSet<PathBuf>, Vec<Gitignore>) {
    let mut dirs = BTreeSet::new();
    let mut gitignores = Vec::new();
    // The enclosing repository's `.gitignore`s apply too (a project inside
    // a monorepo), as does its `info/exclude`.
    for ancestor in root.ancestors() {
        let file = ancestor.join(".gitignore");
        if ancestor != root && file.is_file() {
            gitignores.push(Gitignore::new(file).0);
        }
        if ancestor.join(".git").exists() {
            let mut exclude = GitignoreBuilder::new(ancestor);
            exclude.add(ancestor.join(".git/info/exclude"));
            if let Ok(matcher) = exclude.build() {
                gitignores.push(matcher);
            }
            break;
        }
    }
    let excluded = excluded.to_vec();
    let walker = ignore::WalkBuilder::new(root)
        .hidden(false)
        .require_git(false)
        .git_global(false)
        .filter_entry(move |entry| {
            !IGNORED_DIRS
                .iter()
                .any(|d| entry.file_name() == std::ffi::OsStr::new(d))
                && !excluded.iter().any(|e| entry.path().starts_with(e))
        })
        .build();
    for entry in walker.flatten() {
        let path = entry.path();
        let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
        if is_dir {
            let relative = path.strip_prefix(root).unwrap_or(path);
            let wanted = all_dirs
                || relative.as_os_str().is_empty()
                || relative.starts_with(".nimbus")
                || relative.starts_with(".wash")
                || path.starts_with(wit_dir);
            if wanted {
                dirs.insert(path.to_path_buf());
                if dirs.len() >= MAX_WALKED_DIRS {
                    tracing::warn!(
                        "{} has more than {MAX_WALKED_DIRS} directories: watching only the first; set `build.watch` to narrow it",
                        root.display()
                    );
                    break;
                }
            }
        } else if entry.file_name() == ".gitignore" {
            let (matcher, _) = Gitignore::new(path);
            gitignores.push(matcher);
        }
    }
    // Outermost first, so the deepest is checked first (iterated reversed).
    gitignores.sort_by_key(|g| g.path().components().count());
    (dirs, gitignores)
}

/// Files under `dir` (bounded), for a directory that just appeared.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    ignore::WalkBuilder::new(dir)
        .hidden(false)
        .require_git(false)
        .build()
        .flatten()
        .filter(|e| e.file_type().is_some_and(|t| t.is_file()))
        .map(|e| e.into_path())
        .take(MAX_WALKED_DIRS)
        .collect()
}

/// The target directory a cargo-built component sits in
/// (`…/target/wasm32-wasip2/release/app.wasm` → `…/target`).
fn target_root(component: &Path) -> Option<PathBuf> {
    component
        .ancestors()
        .find(|a| {
            a.file_name()
                .is_some_and(|n| n == nimbus_project::component_build::WASM_TARGET)
        })
        .and_then(Path::parent)
        .map(Path::to_path_buf)
}

/// An editor's swap, backup or lock file.
fn is_editor_file(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    name.ends_with('~')
        || name.starts_with(".#")
        || name.ends_with(".swp")
        || name.ends_with(".swx")
        || name == "4913"
}

/// Prose no build reads (where the toolchain does not say what it read).
fn is_document(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    name.ends_with(".md")
        || name.ends_with(".log")
        || matches!(name.as_str(), "license" | "licence" | "notice")
}

/// A file's size and content hash (size and modification time for big
/// files); `None` when it cannot be read.
fn fingerprint(path: &Path) -> Fingerprint {
    let metadata = std::fs::metadata(path).ok()?;
    if !metadata.is_file() {
        return None;
    }
    let len = metadata.len();
    if len > MAX_HASHED_BYTES {
        let modified = metadata
            .modified()
            .ok()?
            .duration_since(SystemTime::UNIX_EPOCH)
            .ok()?;
        return Some((len, modified.as_nanos() as u64));
    }
    let bytes = nimbus_host::files::read_bounded_blocking(path, MAX_HASHED_BYTES).ok()?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    hasher.write(&bytes);
    Some((len, hasher.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nimbus_project::local::LocalProject;

    fn project(dir: &Path, watch: &[&str]) -> LocalProject {
        LocalProject {
            component: None,
            dir: std::fs::canonicalize(dir).unwrap(),
            build: Default::default(),
            watch: watch.iter().map(|s| s.to_string()).collect(),
            wit: Default::default(),
            config_files: Vec::new(),
        }
    }

    fn event(path: &Path) -> notify::Event {
        notify::Event::new(notify::EventKind::Modify(notify::event::ModifyKind::Any))
            .add_path(path.to_path_buf())
    }

    fn set(root: &Path, watch: &[&str], excluded: Vec<PathBuf>) -> WatchSet {
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let mut set = WatchSet::new(tx).unwrap();
        set.configure(&[project(root, watch)], Vec::new(), excluded);
        set.before_build(0);
        set
    }

    fn changes(set: &mut WatchSet, paths: &[PathBuf]) -> Changes {
        for path in paths {
            set.note(&event(path));
        }
        set.take_changes()
    }

    #[test]
    fn without_dep_info_only_unignored_sources_that_changed_count() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        for (path, text) in [
            ("src/main.rs", "fn main() {}"),
            (".gitignore", "data/\n*.log\n"),
            ("README.md", "# app"),
            ("data/blob", "x"),
            ("target/wasm32-wasip2/release/app.wasm", "x"),
        ] {
            std::fs::create_dir_all(root.join(path).parent().unwrap()).unwrap();
            std::fs::write(root.join(path), text).unwrap();
        }
        let mut set = set(&root, &[], Vec::new());
        // Written again with the same content: nothing changed.
        std::fs::write(root.join("src/main.rs"), "fn main() {}").unwrap();
        std::fs::write(root.join("dev.log"), "a line").unwrap();
        std::fs::write(root.join("README.md"), "# app, edited").unwrap();
        std::fs::write(root.join("data/blob"), "y").unwrap();
        let noise = [
            "src/main.rs",
            "dev.log",
            "README.md",
            "data/blob",
            "target/wasm32-wasip2/release/app.wasm",
        ]
        .map(|p| root.join(p));
        assert!(changes(&mut set, &noise).is_empty());
        std::fs::write(root.join("src/main.rs"), "fn main() { }").unwrap();
        assert_eq!(
            changes(&mut set, &[root.join("src/main.rs")]).projects,
            BTreeSet::from([0])
        );
    }

    #[test]
    fn with_dep_info_only_what_the_build_read_and_the_globs_count() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let component = root.join("target/wasm32-wasip2/release/app.wasm");
        std::fs::create_dir_all(component.parent().unwrap()).unwrap();
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::create_dir_all(root.join("static")).unwrap();
        std::fs::write(root.join("src/main.rs"), "a").unwrap();
        std::fs::write(root.join("src/unused.rs"), "a").unwrap();
        std::fs::write(root.join("static/index.html"), "a").unwrap();
        std::fs::write(
            component.with_extension("d"),
            format!(
                "{}: {} {}\n",
                component.display(),
                root.join("src/main.rs").display(),
                root.join("target/wasm32-wasip2/release/build/out/gen.rs")
                    .display()
            ),
        )
        .unwrap();
        let mut set = set(&root, &["static/**"], Vec::new());
        let started = SystemTime::now();
        assert!(!set.after_build(0, Some(&component), started));
        set.before_build(0);
        for path in ["src/main.rs", "src/unused.rs", "static/index.html"] {
            std::fs::write(root.join(path), "b").unwrap();
        }
        assert!(changes(&mut set, &[root.join("src/unused.rs")]).is_empty());
        assert_eq!(
            changes(&mut set, &[root.join("src/main.rs")]).projects,
            BTreeSet::from([0])
        );
        assert_eq!(
            changes(&mut set, &[root.join("static/index.html")]).projects,
            BTreeSet::from([0])
        );
    }

    #[test]
    fn after_a_failed_build_a_new_file_counts_and_the_output_never_does() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let component = root.join("out/app.wasm");
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::create_dir_all(root.join("out")).unwrap();
        std::fs::write(root.join("src/main.rs"), "mod new;").unwrap();
        std::fs::write(&component, "wasm").unwrap();
        std::fs::write(
            component.with_extension("d"),
            format!(
                "{}: {}\n",
                component.display(),
                root.join("src/main.rs").display()
            ),
        )
        .unwrap();
        let mut set = set(&root, &[], Vec::new());
        assert!(!set.after_build(0, Some(&component), SystemTime::now()));
        // Rewritten by the next build: the output is not an input.
        std::fs::write(&component, "other wasm").unwrap();
        assert!(changes(&mut set, std::slice::from_ref(&component)).is_empty());
        // The build read only main.rs; it fails, and the fix is a new file.
        set.before_build(0);
        set.build_failed(0);
        std::fs::write(root.join("src/new.rs"), "pub fn f() {}").unwrap();
        assert_eq!(
            changes(&mut set, &[root.join("src/new.rs")]).projects,
            BTreeSet::from([0])
        );
        // A directory appearing is not a change by itself; the files it
        // holds when its event is seen are.
        std::fs::create_dir_all(root.join("src/empty")).unwrap();
        assert!(changes(&mut set, &[root.join("src/empty")]).is_empty());
        std::fs::create_dir_all(root.join("src/more")).unwrap();
        std::fs::write(root.join("src/more/x.rs"), "").unwrap();
        assert_eq!(
            changes(&mut set, &[root.join("src/more")]).projects,
            BTreeSet::from([0])
        );
    }

    #[test]
    fn excluded_paths_and_config_files_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(root.join(".nimbus")).unwrap();
        std::fs::write(root.join(".nimbus/config.yaml"), "").unwrap();
        std::fs::write(root.join("out.txt"), "").unwrap();
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let mut set = WatchSet::new(tx).unwrap();
        set.configure(
            &[project(&root, &[])],
            [root.join(".nimbus/config.yaml")],
            [root.join("out.txt")],
        );
        set.before_build(0);
        std::fs::write(root.join("out.txt"), "written by nimbus").unwrap();
        assert!(changes(&mut set, &[root.join("out.txt")]).is_empty());
        let config = changes(&mut set, &[root.join(".nimbus/config.yaml")]);
        assert!(config.config && config.projects.is_empty(), "{config:?}");
    }
}
