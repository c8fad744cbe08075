//! Where a capability keeps its data: the backends Nimbus knows, which
//! capability takes which, and the one resolver every way of naming a
//! backend goes through.
//!
//! A backend is named two ways:
//! - as settings (`backend`, `url`, `path`): a manifest's host-interface
//!   `config` and the host's plugin defaults;
//! - as one string (`memory`, a directory, `redis://…`, `nats://…`):
//!   `.wash/config.yaml`'s `dev.keyvalue` and friends, and `nimbus serve
//!   --keyvalue` and friends.
//!
//! Both land on a [`BackendChoice`], checked against [`CAPABILITY_BACKENDS`],
//! the one table of which capability takes which backend. The capability
//! crates open the choice (and say which cargo feature a backend needs);
//! the project config and the CLI only ever hand strings here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A kind of backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// The host's memory: gone when the host stops (the dev default).
    Memory,
    /// Files on the host.
    Filesystem,
    /// A Redis server.
    Redis,
    /// A NATS server (JetStream key-value, object store, or core messaging).
    Nats,
}

impl BackendKind {
    /// The name settings use (`backend: redis`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Filesystem => "filesystem",
            Self::Redis => "redis",
            Self::Nats => "nats",
        }
    }

    /// How the one-string form writes it, for messages.
    pub const fn shorthand(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Filesystem => "a directory path",
            Self::Redis => "redis://…",
            Self::Nats => "nats://…",
        }
    }

    /// The kind a `backend` setting or a URL scheme names.
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "memory" | "in-memory" => Self::Memory,
            "filesystem" | "fs" | "file" | "redb" => Self::Filesystem,
            "redis" | "rediss" => Self::Redis,
            "nats" | "tls" => Self::Nats,
            _ => return None,
        })
    }
}

/// The backends of one capability.
#[derive(Debug)]
pub struct CapabilityBackends {
    /// The capability's plugin id (`keyvalue`); host defaults are keyed by it.
    pub capability: &'static str,
    /// How messages name it (`key-value`).
    pub display: &'static str,
    /// The kinds it takes, the default (memory) first.
    pub kinds: &'static [BackendKind],
    /// What a directory given as the one-string form holds for it: the
    /// entry under that directory its filesystem backend's `path` names.
    pub directory_entry: &'static str,
    /// What its filesystem `path` is, for messages.
    pub path_is: &'static str,
}

/// `wasi:keyvalue`'s backends.
pub const KEYVALUE: CapabilityBackends = CapabilityBackends {
    capability: "keyvalue",
    display: "key-value",
    kinds: &[
        BackendKind::Memory,
        BackendKind::Filesystem,
        BackendKind::Redis,
        BackendKind::Nats,
    ],
    directory_entry: "keyvalue.redb",
    path_is: "the database file",
};

/// `wasi:blobstore`'s backends.
pub const BLOBSTORE: CapabilityBackends = CapabilityBackends {
    capability: "blobstore",
    display: "blobstore",
    kinds: &[
        BackendKind::Memory,
        BackendKind::Filesystem,
        BackendKind::Nats,
    ],
    directory_entry: "blobstore",
    path_is: "its root directory",
};

/// `wasmcloud:messaging`'s backends.
pub const MESSAGING: CapabilityBackends = CapabilityBackends {
    capability: "messaging",
    display: "messaging",
    kinds: &[BackendKind::Memory, BackendKind::Nats],
    // It keeps no files: neither is ever used.
    directory_entry: "messaging",
    path_is: "",
};

/// Which capability takes which backend: the one table.
pub const CAPABILITY_BACKENDS: &[CapabilityBackends] = &[KEYVALUE, BLOBSTORE, MESSAGING];

/// The backends of `capability`, if it has any.
pub fn backends_of(capability: &str) -> Option<&'static CapabilityBackends> {
    CAPABILITY_BACKENDS
        .iter()
        .find(|entry| entry.capability == capability)
}

/// A backend and where it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BackendChoice {
    /// The host's memory (one store per workload).
    Memory,
    /// Files at `path` (a database file or a root directory).
    Filesystem {
        /// Where.
        path: PathBuf,
    },
    /// A Redis server (`redis://` or `rediss://`).
    Redis {
        /// Server URL.
        url: String,
    },
    /// A NATS server (`nats://` or `tls://`).
    Nats {
        /// Server URL.
        url: String,
    },
}

/// Why a backend could not be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// No capability by that name has backends.
    #[error("no capability named `{0}` has backends")]
    UnknownCapability(String),
    /// `backend` (or a URL's scheme) names no backend kind.
    #[error("unknown {display} backend `{name}` (expected {expected})")]
    Unknown {
        /// The capability, as messages name it.
        display: &'static str,
        /// What was written.
        name: String,
        /// The kinds it takes.
        expected: String,
    },
    /// A kind the capability does not take.
    #[error("{capability} cannot use {shorthand} (`{text}`); use one of: {expected}")]
    NotAccepted {
        /// The capability's id.
        capability: &'static str,
        /// The kind, as the one-string form writes it.
        shorthand: &'static str,
        /// What was written.
        text: String,
        /// The kinds it takes.
        expected: String,
    },
    /// A URL that is not a backend's (`http://…`).
    #[error("`{text}` is not a backend {capability} supports (one of: {expected})")]
    NotABackend {
        /// The capability's id.
        capability: &'static str,
        /// What was written.
        text: String,
        /// The kinds it takes.
        expected: String,
    },
    /// The kind needs a `url` or `path` that is not there.
    #[error("the {kind} {display} backend needs `{key}` ({hint})")]
    Missing {
        /// The capability, as messages name it.
        display: &'static str,
        /// The kind's name.
        kind: &'static str,
        /// `url` or `path`.
        key: &'static str,
        /// What it should be.
        hint: String,
    },
    /// An empty one-string form.
    #[error("empty {0} backend")]
    Empty(&'static str),
    /// A `url` without a scheme, where the scheme must say the kind.
    #[error("the {0} backend's `url` has no scheme (such as redis:// or nats://)")]
    NoScheme(&'static str),
    /// A kind this build left out.
    #[error(
        "the {kind} {display} backend is not in this build of nimbus (rebuild it with the cargo feature `{feature}`)"
    )]
    NotBuilt {
        /// The capability, as messages name it.
        display: &'static str,
        /// The kind's name.
        kind: &'static str,
        /// The cargo feature that builds it.
        feature: &'static str,
    },
}

impl CapabilityBackends {
    fn expected_names(&self) -> String {
        list(self.kinds.iter().map(|k| k.name()), "or")
    }

    fn expected_shorthands(&self) -> String {
        self.kinds
            .iter()
            .map(|k| k.shorthand())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The kind a bare `HOST:PORT` means: the only one reached by URL.
    fn sole_network_kind(&self) -> Option<BackendKind> {
        let mut network = self
            .kinds
            .iter()
            .filter(|k| matches!(k, BackendKind::Redis | BackendKind::Nats));
        match (network.next(), network.next()) {
            (Some(kind), None) => Some(*kind),
            _ => None,
        }
    }

    /// Reads `backend` with `url` or `path`. Without `backend`, a `url`'s
    /// scheme decides (a bare `HOST:PORT` is the capability's one network
    /// kind, when it has only one), else a `path` means the filesystem (for
    /// a capability that keeps files), else memory.
    pub fn from_settings(
        &self,
        settings: &BTreeMap<String, String>,
    ) -> Result<BackendChoice, BackendError> {
        self.resolve(settings, |_| None)
    }

    /// The kind the settings name, checked against the kinds this
    /// capability takes.
    fn kind_of(&self, settings: &BTreeMap<String, String>) -> Result<BackendKind, BackendError> {
        let url = settings.get("url").map(|u| u.trim());
        let name = match settings
            .get("backend")
            .map(|b| b.trim().to_ascii_lowercase())
        {
            Some(name) => name,
            None => match url {
                Some(url) => match (url.split_once("://"), self.sole_network_kind()) {
                    (Some((scheme, _)), _) => scheme.to_ascii_lowercase(),
                    (None, Some(kind)) => kind.name().to_string(),
                    // Never echoed: a URL may carry credentials.
                    (None, None) => return Err(BackendError::NoScheme(self.display)),
                },
                None if settings.contains_key("path")
                    && self.kinds.contains(&BackendKind::Filesystem) =>
                {
                    "filesystem".into()
                }
                None => "memory".into(),
            },
        };
        BackendKind::from_name(&name)
            .filter(|kind| self.kinds.contains(kind))
            .ok_or_else(|| BackendError::Unknown {
                display: self.display,
                name,
                expected: self.expected_names(),
            })
    }

    /// [`from_settings`](Self::from_settings) in a build that may have
    /// left kinds out: `missing_feature` says which cargo feature a kind
    /// needs when this build lacks it, and such a kind is refused naming it
    /// (before its settings are checked, so the first thing said is what
    /// matters).
    pub fn resolve(
        &self,
        settings: &BTreeMap<String, String>,
        missing_feature: impl Fn(BackendKind) -> Option<&'static str>,
    ) -> Result<BackendChoice, BackendError> {
        let kind = self.kind_of(settings)?;
        if let Some(feature) = missing_feature(kind) {
            return Err(self.not_built(kind, feature));
        }
        let url = settings.get("url").map(|u| u.trim().to_string());
        let path = settings.get("path").map(PathBuf::from);
        let missing = |key: &'static str, hint: String| BackendError::Missing {
            display: self.display,
            kind: kind.name(),
            key,
            hint,
        };
        Ok(match kind {
            BackendKind::Memory => BackendChoice::Memory,
            BackendKind::Filesystem => BackendChoice::Filesystem {
                path: path.ok_or_else(|| missing("path", self.path_is.into()))?,
            },
            BackendKind::Redis => BackendChoice::Redis {
                url: url.ok_or_else(|| missing("url", "redis://HOST:PORT".into()))?,
            },
            BackendKind::Nats => BackendChoice::Nats {
                url: url.ok_or_else(|| missing("url", "nats://HOST:PORT".into()))?,
            },
        })
    }

    /// Parses the one-string form: `memory`, `redis://…`, `nats://…`, or
    /// anything else without a scheme as a directory.
    pub fn parse_shorthand(&self, text: &str) -> Result<BackendChoice, BackendError> {
        let text = text.trim();
        let choice = if text == "memory" {
            BackendChoice::Memory
        } else if text.starts_with("redis://") || text.starts_with("rediss://") {
            BackendChoice::Redis { url: text.into() }
        } else if text.starts_with("nats://") || text.starts_with("tls://") {
            BackendChoice::Nats { url: text.into() }
        } else if text.contains("://") {
            return Err(BackendError::NotABackend {
                capability: self.capability,
                text: text.into(),
                expected: self.expected_shorthands(),
            });
        } else if text.is_empty() {
            return Err(BackendError::Empty(self.capability));
        } else {
            BackendChoice::Filesystem { path: text.into() }
        };
        let kind = choice.kind();
        if self.kinds.contains(&kind) {
            Ok(choice)
        } else {
            Err(BackendError::NotAccepted {
                capability: self.capability,
                shorthand: kind.shorthand(),
                text: text.into(),
                expected: self.expected_shorthands(),
            })
        }
    }

    /// The settings for a one-string choice: a directory is resolved
    /// against `base` and the capability's data goes to its entry there.
    pub fn settings_for(&self, choice: &BackendChoice, base: &Path) -> BTreeMap<String, String> {
        let mut settings = BTreeMap::new();
        settings.insert("backend".to_string(), choice.kind().name().to_string());
        match choice {
            BackendChoice::Memory => {}
            BackendChoice::Filesystem { path } => {
                let path = base.join(path).join(self.directory_entry);
                settings.insert("path".into(), path.display().to_string());
            }
            BackendChoice::Redis { url } | BackendChoice::Nats { url } => {
                settings.insert("url".into(), url.clone());
            }
        }
        settings
    }

    /// The error for a kind this build left out, naming its cargo feature.
    pub fn not_built(&self, kind: BackendKind, feature: &'static str) -> BackendError {
        BackendError::NotBuilt {
            display: self.display,
            kind: kind.name(),
            feature,
        }
    }

    /// Why a choice made by hand (not through [`resolve`](Self::resolve),
    /// as tools and tests do) cannot be opened: its kind is left out of
    /// this build, or the capability does not take it.
    pub fn refuse(
        &self,
        kind: BackendKind,
        missing_feature: impl Fn(BackendKind) -> Option<&'static str>,
    ) -> BackendError {
        match missing_feature(kind) {
            Some(feature) => self.not_built(kind, feature),
            None => BackendError::NotAccepted {
                capability: self.capability,
                shorthand: kind.shorthand(),
                text: kind.name().to_string(),
                expected: self.expected_shorthands(),
            },
        }
    }
}

// Written back as its one-string form (a project config shown or saved).
impl serde::Serialize for BackendChoice {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.shorthand())
    }
}

impl BackendChoice {
    /// Its kind.
    pub fn kind(&self) -> BackendKind {
        match self {
            Self::Memory => BackendKind::Memory,
            Self::Filesystem { .. } => BackendKind::Filesystem,
            Self::Redis { .. } => BackendKind::Redis,
            Self::Nats { .. } => BackendKind::Nats,
        }
    }

    /// The one-string form (`memory`, the directory, the URL).
    pub fn shorthand(&self) -> String {
        match self {
            Self::Memory => "memory".into(),
            Self::Filesystem { path } => path.display().to_string(),
            Self::Redis { url } | Self::Nats { url } => url.clone(),
        }
    }
}

/// Parses the one-string form for the capability `capability`.
pub fn parse_shorthand(capability: &str, text: &str) -> Result<BackendChoice, BackendError> {
    backends_of(capability)
        .ok_or_else(|| BackendError::UnknownCapability(capability.to_string()))?
        .parse_shorthand(text)
}

/// `a, b or c`.
fn list<'a>(items: impl Iterator<Item = &'a str>, last: &str) -> String {
    let items: Vec<&str> = items.collect();
    match items.split_last() {
        None => String::new(),
        Some((only, [])) => (*only).to_string(),
        Some((tail, head)) => format!("{} {last} {tail}", head.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn keyvalue() -> &'static CapabilityBackends {
        &KEYVALUE
    }

    #[test]
    fn settings_name_a_backend_by_kind_url_scheme_or_path() {
        let kv = keyvalue();
        assert_eq!(kv.from_settings(&settings(&[])), Ok(BackendChoice::Memory));
        assert_eq!(
            kv.from_settings(&settings(&[("url", " redis://127.0.0.1:6379 ")])),
            Ok(BackendChoice::Redis {
                url: "redis://127.0.0.1:6379".into()
            })
        );
        assert_eq!(
            kv.from_settings(&settings(&[("path", "kv.db")])),
            Ok(BackendChoice::Filesystem {
                path: "kv.db".into()
            })
        );
        assert_eq!(
            kv.from_settings(&settings(&[("backend", " NATS "), ("url", "tls://n:4222")])),
            Ok(BackendChoice::Nats {
                url: "tls://n:4222".into()
            })
        );
        assert_eq!(
            kv.from_settings(&settings(&[("backend", "nats")]))
                .unwrap_err()
                .to_string(),
            "the nats key-value backend needs `url` (nats://HOST:PORT)"
        );
        assert_eq!(
            kv.from_settings(&settings(&[("backend", "etcd")]))
                .unwrap_err()
                .to_string(),
            "unknown key-value backend `etcd` (expected memory, filesystem, redis or nats)"
        );
    }

    #[test]
    fn a_url_names_the_kind_even_where_one_kind_is_the_default() {
        // A blobstore url of the wrong kind is refused at once (it used to
        // become a NATS client that never connected).
        assert_eq!(
            BLOBSTORE
                .from_settings(&settings(&[("url", "redis://r:6379")]))
                .unwrap_err()
                .to_string(),
            "unknown blobstore backend `redis` (expected memory, filesystem or nats)"
        );
        // A path means files only where the capability keeps files.
        assert_eq!(
            MESSAGING.from_settings(&settings(&[("path", "/tmp/x")])),
            Ok(BackendChoice::Memory)
        );
        // A url whose kind cannot be told is never echoed back (credentials).
        let error = KEYVALUE
            .from_settings(&settings(&[("url", "user:secret@cache:6379")]))
            .unwrap_err()
            .to_string();
        assert!(!error.contains("secret"), "{error}");
        assert_eq!(
            error,
            "the key-value backend's `url` has no scheme (such as redis:// or nats://)"
        );
    }

    #[test]
    fn a_kind_a_capability_does_not_take_is_unknown_to_it() {
        let messaging = &MESSAGING;
        assert_eq!(
            messaging
                .from_settings(&settings(&[("url", "redis://r:6379")]))
                .unwrap_err()
                .to_string(),
            "unknown messaging backend `redis` (expected memory or nats)"
        );
        assert_eq!(
            messaging.from_settings(&settings(&[("url", "127.0.0.1:4222")])),
            Ok(BackendChoice::Nats {
                url: "127.0.0.1:4222".into()
            })
        );
        assert_eq!(
            messaging
                .from_settings(&settings(&[("backend", "kafka")]))
                .unwrap_err()
                .to_string(),
            "unknown messaging backend `kafka` (expected memory or nats)"
        );
    }

    #[test]
    fn the_one_string_form_is_checked_per_capability() {
        assert_eq!(
            parse_shorthand("keyvalue", "data/kv"),
            Ok(BackendChoice::Filesystem {
                path: "data/kv".into()
            })
        );
        assert_eq!(
            parse_shorthand("blobstore", "redis://x")
                .unwrap_err()
                .to_string(),
            "blobstore cannot use redis://… (`redis://x`); use one of: memory, a directory path, nats://…"
        );
        assert_eq!(
            parse_shorthand("keyvalue", "http://x")
                .unwrap_err()
                .to_string(),
            "`http://x` is not a backend keyvalue supports (one of: memory, a directory path, redis://…, nats://…)"
        );
        assert_eq!(
            parse_shorthand("messaging", " ").unwrap_err(),
            BackendError::Empty("messaging")
        );
        assert_eq!(
            parse_shorthand("cache", "memory").unwrap_err().to_string(),
            "no capability named `cache` has backends"
        );
    }

    #[test]
    fn a_directory_holds_each_capabilitys_entry_and_round_trips() {
        let base = Path::new("/project");
        let dir = parse_shorthand("keyvalue", "data").unwrap();
        let kv = keyvalue();
        let written = kv.settings_for(&dir, base);
        assert_eq!(
            written,
            settings(&[
                ("backend", "filesystem"),
                ("path", "/project/data/keyvalue.redb")
            ])
        );
        assert_eq!(
            kv.from_settings(&written),
            Ok(BackendChoice::Filesystem {
                path: "/project/data/keyvalue.redb".into()
            })
        );
        let blobs = &BLOBSTORE;
        assert_eq!(
            blobs.settings_for(&dir, base)["path"],
            "/project/data/blobstore"
        );
        for text in ["memory", "nats://127.0.0.1:4222"] {
            let choice = parse_shorthand("blobstore", text).unwrap();
            assert_eq!(choice.shorthand(), text);
            assert_eq!(
                blobs.from_settings(&blobs.settings_for(&choice, base)),
                Ok(choice)
            );
        }
    }

    #[test]
    fn a_left_out_kind_names_its_feature_in_one_line() {
        let without_redis = |kind| (kind == BackendKind::Redis).then_some("redis");
        let expected = "the redis key-value backend is not in this build of nimbus (rebuild it with the cargo feature `redis`)";
        let error = keyvalue()
            .resolve(&settings(&[("url", "redis://r:6379")]), without_redis)
            .unwrap_err();
        assert_eq!(error.to_string(), expected);
        assert_eq!(
            keyvalue()
                .refuse(BackendKind::Redis, without_redis)
                .to_string(),
            expected
        );
        // A left-out kind is said first, before what its settings lack.
        assert_eq!(
            keyvalue()
                .resolve(&settings(&[("backend", "redis")]), without_redis)
                .unwrap_err()
                .to_string(),
            expected
        );
        // Other kinds are untouched by the missing one.
        assert_eq!(
            keyvalue().resolve(&settings(&[("url", "nats://n:4222")]), without_redis),
            Ok(BackendChoice::Nats {
                url: "nats://n:4222".into()
            })
        );
        // A kind the capability does not take, chosen by hand.
        assert_eq!(
            MESSAGING.refuse(BackendKind::Redis, |_| None).to_string(),
            "messaging cannot use redis://… (`redis`); use one of: memory, nats://…"
        );
    }
}
