//! The flags that set up the one component `nimbus serve COMPONENT.wasm`
//! runs without a manifest, as `wasmtime serve` and `spin up` take them.
//!
//! Each flag is parsed as clap reads it (a bad value is clap's one-line
//! error naming the flag) into the field a workload manifest would set, so
//! a component served with flags runs as the same workload written out
//! would, through the same validation when the host starts it:
//!
//! | flag | what it sets |
//! |---|---|
//! | `--env KEY=VALUE`, `--env KEY` | `localResources.environment.config` (bare `KEY`: nimbus's own value) |
//! | `--config KEY=VALUE` | `localResources.config`, what `wasi:config/store` serves |
//! | `--allow-host HOST` | `localResources.allowedHosts` (checked as the manifest's entries are) |
//! | `--dir HOST[::GUEST]`, `--dir-rw …` | a `hostPath` volume and its `volumeMounts` entry, read-only or writable |
//! | `--memory-limit SIZE` | `localResources.memoryLimitMb` |
//! | `--timeout DURATION` | `localResources.timeoutMs`, the request deadline |
//!
//! Given with a manifest they are refused ([`ComponentFlags::first_given`]):
//! the manifest is the one place its workloads' settings live.

use crate::commands::cluster::parse_duration;
use clap::Args;
use nimbus_model::{HostPathVolume, Volume, VolumeMount, WorkloadSpec};
use std::collections::BTreeSet;
use std::path::Path;

/// Settings for the component `nimbus serve` runs without a manifest.
#[derive(Args, Debug, Default)]
#[command(
    next_help_heading = "Component settings (a component file only; a manifest sets its own)"
)]
pub(crate) struct ComponentFlags {
    /// Set an environment variable of the component: `KEY=VALUE`, or `KEY`
    /// alone to pass on nimbus's own value (repeatable; the last value of a
    /// key wins). The component sees no other variables.
    #[arg(long = "env", value_name = "KEY[=VALUE]", value_parser = parse_env)]
    env: Vec<KeyValue>,
    /// A value `wasi:config/store` serves the component: `KEY=VALUE`
    /// (repeatable; the last value of a key wins).
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_config)]
    config: Vec<KeyValue>,
    /// A host the component's outgoing HTTP may reach, written as an
    /// `allowedHosts` entry: `api.example.com`, `*.example.com`,
    /// `host:port` or `*` (repeatable; with none, outgoing HTTP is denied).
    #[arg(long = "allow-host", value_name = "HOST", value_parser = parse_allowed_host)]
    allow_host: Vec<String>,
    /// Mount a host directory read-only: `HOST::GUEST`, or `HOST` alone at
    /// its own absolute path (repeatable).
    #[arg(long = "dir", value_name = "HOST[::GUEST]", value_parser = parse_dir)]
    dir: Vec<DirMount>,
    /// Mount a host directory the component may write to, written as for
    /// `--dir` (repeatable).
    #[arg(long = "dir-rw", value_name = "HOST[::GUEST]", value_parser = parse_dir)]
    dir_rw: Vec<DirMount>,
    /// The component's linear-memory limit: `64M`, `1G`, `512MiB` or bytes
    /// (K, M, G and T are powers of 1024; a whole number of MiB). Default:
    /// 256 MiB.
    #[arg(long, value_name = "SIZE", value_parser = parse_memory_limit)]
    memory_limit: Option<i64>,
    /// The request deadline: `30s`, `500ms` or `2m`; a request still
    /// running then gets 504. Default: 60s.
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    timeout: Option<u64>,
}

/// One `KEY=VALUE` of `--env` or `--config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyValue {
    key: String,
    value: String,
}

/// One `--dir`: the host directory (absolute, symlinks resolved) and where
/// the guest sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DirMount {
    host: String,
    guest: String,
}

impl ComponentFlags {
    /// The first of these flags given, as written on the command line, with
    /// the manifest field that says the same; `None` when none is.
    pub(crate) fn first_given(&self) -> Option<(&'static str, &'static str)> {
        [
            (!self.env.is_empty(), "--env", "localResources.environment"),
            (!self.config.is_empty(), "--config", "localResources.config"),
            (
                !self.allow_host.is_empty(),
                "--allow-host",
                "localResources.allowedHosts",
            ),
            (
                !self.dir.is_empty(),
                "--dir",
                "volumes and localResources.volumeMounts",
            ),
            (
                !self.dir_rw.is_empty(),
                "--dir-rw",
                "volumes and localResources.volumeMounts",
            ),
            (
                self.memory_limit.is_some(),
                "--memory-limit",
                "localResources.memoryLimitMb",
            ),
            (
                self.timeout.is_some(),
                "--timeout",
                "localResources.timeoutMs",
            ),
        ]
        .into_iter()
        .find(|(given, ..)| *given)
        .map(|(_, flag, field)| (flag, field))
    }

    /// Sets what the flags say on every component of `spec` (a lone
    /// component's workload has one) and adds their volumes.
    pub(crate) fn apply(&self, spec: &mut WorkloadSpec) -> anyhow::Result<()> {
        let mounts: Vec<(&DirMount, bool)> = self
            .dir
            .iter()
            .map(|m| (m, false))
            .chain(self.dir_rw.iter().map(|m| (m, true)))
            .collect();
        let mut guest_paths = BTreeSet::new();
        for (mount, _) in &mounts {
            anyhow::ensure!(
                guest_paths.insert(mount.guest.as_str()),
                "two directories are mounted at `{}`; give each `--dir` its own guest path (HOST::GUEST)",
                mount.guest
            );
        }
        let names: Vec<String> = (0..mounts.len()).map(|i| format!("dir-{i}")).collect();
        for (name, (mount, _)) in names.iter().zip(&mounts) {
            spec.volumes.push(Volume {
                name: name.clone(),
                host_path: Some(HostPathVolume {
                    path: mount.host.clone(),
                }),
                empty_dir: None,
            });
        }
        for component in &mut spec.components {
            let resources = &mut component.local_resources;
            for KeyValue { key, value } in &self.env {
                resources
                    .environment
                    .config
                    .insert(key.clone(), value.clone());
            }
            for KeyValue { key, value } in &self.config {
                resources.config.insert(key.clone(), value.clone());
            }
            resources
                .allowed_hosts
                .extend(self.allow_host.iter().cloned());
            for (name, (mount, writable)) in names.iter().zip(&mounts) {
                resources.volume_mounts.push(VolumeMount {
                    name: name.clone(),
                    mount_path: mount.guest.clone(),
                    read_only: Some(!writable),
                });
            }
            if let Some(mib) = self.memory_limit {
                resources.memory_limit_mb = Some(mib);
            }
            if let Some(ms) = self.timeout {
                resources.timeout_ms = Some(ms);
            }
        }
        Ok(())
    }
}

/// `--env KEY=VALUE`, or `--env KEY` with nimbus's own value of `KEY`.
fn parse_env(text: &str) -> Result<KeyValue, String> {
    parse_env_with(text, own_var)
}

/// A variable of nimbus's own environment.
fn own_var(key: &str) -> Result<String, std::env::VarError> {
    std::env::var(key)
}

/// [`parse_env`] with the environment to read a bare `KEY` from.
fn parse_env_with(
    text: &str,
    lookup: impl Fn(&str) -> Result<String, std::env::VarError>,
) -> Result<KeyValue, String> {
    let (key, value) = match text.split_once('=') {
        Some((key, value)) => (key, Some(value)),
        None => (text, None),
    };
    if key.is_empty() {
        return Err(format!(
            "`{text}` names no variable (expected KEY=VALUE, or KEY to pass on nimbus's own)"
        ));
    }
    let value = match value {
        Some(value) => value.to_string(),
        None => lookup(key).map_err(|error| match error {
            std::env::VarError::NotPresent => format!(
                "`{key}` is not set in nimbus's environment; give its value as `{key}=VALUE`"
            ),
            std::env::VarError::NotUnicode(_) => {
                format!("`{key}` in nimbus's environment is not valid UTF-8")
            }
        })?,
    };
    Ok(KeyValue {
        key: key.to_string(),
        value,
    })
}

/// `--config KEY=VALUE`.
fn parse_config(text: &str) -> Result<KeyValue, String> {
    match text.split_once('=') {
        None => Err(format!("`{text}` has no `=` (expected KEY=VALUE)")),
        Some(("", _)) => Err(format!("`{text}` names no key (expected KEY=VALUE)")),
        Some((key, value)) => Ok(KeyValue {
            key: key.to_string(),
            value: value.to_string(),
        }),
    }
}

/// `--allow-host`: checked as a manifest's `allowedHosts` entry is, kept as
/// written.
fn parse_allowed_host(text: &str) -> Result<String, String> {
    nimbus_model::host_pattern::HostPattern::parse(text).map_err(|error| error.to_string())?;
    Ok(text.to_string())
}

/// `--dir HOST::GUEST` or `--dir HOST`: `HOST` must be a directory; the
/// guest path must be absolute, as a manifest's `mountPath` must.
fn parse_dir(text: &str) -> Result<DirMount, String> {
    let (host, guest) = match text.split_once("::") {
        Some((host, guest)) => (host, Some(guest)),
        None => (text, None),
    };
    if host.is_empty() {
        return Err(format!(
            "`{text}` names no host directory (expected HOST::GUEST or HOST)"
        ));
    }
    let metadata = std::fs::metadata(host).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => format!("`{host}` does not exist"),
        _ => format!("cannot read `{host}`: {error}"),
    })?;
    if !metadata.is_dir() {
        return Err(format!("`{host}` is not a directory"));
    }
    let resolved =
        std::fs::canonicalize(host).map_err(|error| format!("cannot resolve `{host}`: {error}"))?;
    let host_path = utf8(&resolved)?;
    let guest = match guest {
        None => host_path.clone(),
        Some("") => {
            return Err(format!(
                "`{text}` names no guest path (expected HOST::GUEST or HOST)"
            ));
        }
        Some(guest) if !guest.starts_with('/') => {
            return Err(format!(
                "guest path `{guest}` must be absolute, such as `/data`"
            ));
        }
        Some(guest) => guest.to_string(),
    };
    Ok(DirMount {
        host: host_path,
        guest,
    })
}

fn utf8(path: &Path) -> Result<String, String> {
    path.to_str()
        .map(str::to_string)
        .ok_or_else(|| format!("`{}` is not valid UTF-8", path.display()))
}

/// A size in bytes: digits, then an optional unit, any case: `B`, or `K`,
/// `M`, `G`, `T`, each alone or followed by `B` or `iB`, all powers of 1024
/// (as the manifest's `memoryLimitMb` counts MiB).
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    if digits.is_empty() {
        return Err(format!("`{text}` is not a size such as 64M, 1G or 512MiB"));
    }
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is too large"))?;
    let unit = unit.trim();
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(format!(
                "`{text}`: unknown unit `{unit}` (use K, M, G or T, or plain bytes)"
            ));
        }
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// `--memory-limit`: a size, in whole MiB, more than zero.
fn parse_memory_limit(text: &str) -> Result<i64, String> {
    const MIB: u64 = 1 << 20;
    let bytes = parse_size(text)?;
    if bytes == 0 {
        return Err(format!("`{text}` must be greater than zero"));
    }
    if bytes % MIB != 0 {
        return Err(format!(
            "`{text}` is not a whole number of MiB (the limit is kept in MiB); try {}M",
            bytes.div_ceil(MIB)
        ));
    }
    i64::try_from(bytes / MIB).map_err(|_| format!("`{text}` is too large"))
}

/// `--timeout`: a duration as `nimbus get --wait` takes it, in whole
/// milliseconds (the unit of the manifest's `timeoutMs`).
fn parse_timeout(text: &str) -> Result<u64, String> {
    let duration = parse_duration(text)?;
    let ms = u64::try_from(duration.as_millis()).map_err(|_| format!("`{text}` is too long"))?;
    if ms == 0 {
        return Err(format!(
            "`{text}` is shorter than 1ms, the smallest deadline"
        ));
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use nimbus_model::Workload;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        flags: ComponentFlags,
    }

    fn parse(args: &[&str]) -> Result<ComponentFlags, String> {
        Cli::try_parse_from(std::iter::once("nimbus").chain(args.iter().copied()))
            .map(|cli| cli.flags)
            .map_err(|error| error.to_string())
    }

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.into(),
        }
    }

    #[test]
    fn env_takes_a_value_or_nimbus_own() {
        let lookup = |key: &str| match key {
            "HOME" => Ok("/home/me".to_string()),
            _ => Err(std::env::VarError::NotPresent),
        };
        assert_eq!(parse_env_with("A=1", lookup), Ok(kv("A", "1")));
        assert_eq!(parse_env_with("A=", lookup), Ok(kv("A", "")));
        assert_eq!(parse_env_with("A=b=c", lookup), Ok(kv("A", "b=c")));
        assert_eq!(parse_env_with("HOME", lookup), Ok(kv("HOME", "/home/me")));
        let unset = parse_env_with("NOPE", lookup).unwrap_err();
        assert!(unset.contains("`NOPE` is not set"), "{unset}");
        assert!(
            parse_env_with("=x", lookup)
                .unwrap_err()
                .contains("names no variable")
        );
        assert!(
            parse_env_with("", lookup)
                .unwrap_err()
                .contains("names no variable")
        );
    }

    #[test]
    fn config_needs_a_key_and_an_equals_sign() {
        assert_eq!(parse_config("mode=fast"), Ok(kv("mode", "fast")));
        assert_eq!(parse_config("empty="), Ok(kv("empty", "")));
        assert!(parse_config("novalue").unwrap_err().contains("has no `=`"));
        assert!(parse_config("=x").unwrap_err().contains("names no key"));
    }

    #[test]
    fn allowed_hosts_are_checked_as_the_manifest_checks_them() {
        for good in [
            "*",
            "api.example.com",
            "*.example.com",
            "example.com:8443",
            "127.0.0.1",
        ] {
            assert_eq!(parse_allowed_host(good).as_deref(), Ok(good));
        }
        assert!(parse_allowed_host("*.").unwrap_err().contains("wildcard"));
        assert!(parse_allowed_host("a*b.com").is_err());
        assert!(parse_allowed_host("host:port").is_err());
        assert!(parse_allowed_host("").is_err());
    }

    #[test]
    fn dirs_are_host_directories_at_absolute_guest_paths() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().to_str().unwrap();
        let canonical = std::fs::canonicalize(dir.path())
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let mount = parse_dir(&format!("{host}::/data")).unwrap();
        assert_eq!(
            (mount.host.as_str(), mount.guest.as_str()),
            (canonical.as_str(), "/data")
        );
        let same = parse_dir(host).unwrap();
        assert_eq!(
            (same.host.as_str(), same.guest.as_str()),
            (canonical.as_str(), canonical.as_str())
        );

        assert!(
            parse_dir("::/x")
                .unwrap_err()
                .contains("names no host directory")
        );
        assert!(
            parse_dir(&format!("{host}::"))
                .unwrap_err()
                .contains("names no guest path")
        );
        assert!(
            parse_dir(&format!("{host}::data"))
                .unwrap_err()
                .contains("must be absolute")
        );
        let missing = dir.path().join("missing");
        let missing = missing.to_str().unwrap();
        assert!(parse_dir(missing).unwrap_err().contains("does not exist"));
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let file = file.to_str().unwrap();
        assert!(
            parse_dir(&format!("{file}::/f"))
                .unwrap_err()
                .contains("is not a directory")
        );
    }

    #[test]
    fn sizes_take_binary_units_in_any_case() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("1b"), Ok(1));
        assert_eq!(parse_size("2K"), Ok(2048));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("64mb"), Ok(64 << 20));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1 GiB"), Ok(1 << 30));
        assert_eq!(parse_size("2T"), Ok(2_u64 << 40));
        assert!(parse_size("12Q").unwrap_err().contains("unknown unit `Q`"));
        assert!(parse_size("M").unwrap_err().contains("not a size"));
        assert!(parse_size("1.5G").unwrap_err().contains("unknown unit"));
        assert!(parse_size("-1M").unwrap_err().contains("not a size"));
        assert!(
            parse_size("99999999999999999999")
                .unwrap_err()
                .contains("too large")
        );
        assert!(parse_size("99999999T").unwrap_err().contains("too large"));
    }

    #[test]
    fn memory_limits_are_whole_mib() {
        assert_eq!(parse_memory_limit("64M"), Ok(64));
        assert_eq!(parse_memory_limit("1G"), Ok(1024));
        assert_eq!(parse_memory_limit("512MiB"), Ok(512));
        assert_eq!(parse_memory_limit("67108864"), Ok(64));
        let partial = parse_memory_limit("1000000").unwrap_err();
        assert!(
            partial.contains("not a whole number of MiB") && partial.ends_with("try 1M"),
            "{partial}"
        );
        assert!(
            parse_memory_limit("0")
                .unwrap_err()
                .contains("greater than zero")
        );
        assert!(parse_memory_limit("12Q").is_err());
    }

    #[test]
    fn timeouts_are_whole_milliseconds() {
        assert_eq!(parse_timeout("30s"), Ok(30_000));
        assert_eq!(parse_timeout("500ms"), Ok(500));
        assert_eq!(parse_timeout("2m"), Ok(120_000));
        assert_eq!(parse_timeout("1.5s"), Ok(1500));
        assert!(
            parse_timeout("0.5ms")
                .unwrap_err()
                .contains("shorter than 1ms")
        );
        assert!(parse_timeout("0s").is_err());
        assert!(parse_timeout("5h").unwrap_err().contains("unknown unit"));
        assert!(
            parse_timeout("99999999999999999999999s")
                .unwrap_err()
                .contains("too long")
        );
    }

    #[test]
    fn bad_values_are_clap_errors_naming_the_flag() {
        for (args, needle) in [
            (&["--env", "=x"][..], "names no variable"),
            (&["--config", "novalue"], "has no `=`"),
            (&["--dir", "::/x"], "names no host directory"),
            (&["--memory-limit", "12Q"], "unknown unit `Q`"),
            (&["--timeout", "soon"], "not a duration"),
            (&["--allow-host", "*."], "wildcard"),
        ] {
            let error = parse(args).unwrap_err();
            let first = error.lines().next().unwrap_or_default();
            assert!(first.starts_with("error: invalid value"), "{error}");
            assert!(first.contains(args[0]) && first.contains(needle), "{error}");
        }
    }

    #[test]
    fn flags_map_onto_the_workload_a_manifest_would_write() {
        let data = tempfile::tempdir().unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let data_dir = format!("{}::/data", data.path().display());
        let scratch_dir = format!("{}::/scratch", scratch.path().display());
        let flags = parse(&[
            "--env",
            "A=1",
            "--env",
            "A=2",
            "--env",
            "B=x=y",
            "--config",
            "mode=fast",
            "--allow-host",
            "api.example.com",
            "--allow-host",
            "*.cdn.example.com:443",
            "--dir",
            &data_dir,
            "--dir-rw",
            &scratch_dir,
            "--memory-limit",
            "64M",
            "--timeout",
            "500ms",
        ])
        .unwrap();
        assert_eq!(
            flags.first_given(),
            Some(("--env", "localResources.environment"))
        );
        let mut workload =
            Workload::single_http_component("default", "app", "file:///app.wasm", "localhost");
        flags.apply(&mut workload.spec).unwrap();
        nimbus_model::validate_workload(&workload, "spec").unwrap();

        let resources = &workload.spec.components[0].local_resources;
        assert_eq!(
            resources.environment.config,
            [
                ("A".to_string(), "2".to_string()),
                ("B".to_string(), "x=y".to_string())
            ]
            .into()
        );
        assert_eq!(
            resources.config,
            [("mode".to_string(), "fast".to_string())].into()
        );
        assert_eq!(
            resources.allowed_hosts,
            ["api.example.com", "*.cdn.example.com:443"]
        );
        assert_eq!(resources.memory_limit_mb, Some(64));
        assert_eq!(resources.timeout_ms, Some(500));
        let mounts: Vec<(&str, &str, bool)> = resources
            .volume_mounts
            .iter()
            .map(|m| (m.name.as_str(), m.mount_path.as_str(), m.writable()))
            .collect();
        assert_eq!(
            mounts,
            [("dir-0", "/data", false), ("dir-1", "/scratch", true)]
        );
        let canonical = |dir: &tempfile::TempDir| {
            std::fs::canonicalize(dir.path())
                .unwrap()
                .display()
                .to_string()
        };
        let volumes: Vec<(&str, Option<&str>)> = workload
            .spec
            .volumes
            .iter()
            .map(|v| {
                (
                    v.name.as_str(),
                    v.host_path.as_ref().map(|h| h.path.as_str()),
                )
            })
            .collect();
        assert_eq!(
            volumes,
            [
                ("dir-0", Some(canonical(&data).as_str())),
                ("dir-1", Some(canonical(&scratch).as_str()))
            ]
        );
    }

    #[test]
    fn no_flags_leave_the_workload_as_it_was() {
        let flags = parse(&[]).unwrap();
        assert_eq!(flags.first_given(), None);
        let before =
            Workload::single_http_component("default", "app", "file:///app.wasm", "localhost");
        let mut after = before.clone();
        flags.apply(&mut after.spec).unwrap();
        assert_eq!(after, before);
    }

    #[test]
    fn each_flag_is_named_when_given() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().to_str().unwrap();
        for (args, flag) in [
            (&["--config", "a=b"][..], "--config"),
            (&["--allow-host", "*"], "--allow-host"),
            (&["--dir", host], "--dir"),
            (&["--dir-rw", host], "--dir-rw"),
            (&["--memory-limit", "1G"], "--memory-limit"),
            (&["--timeout", "1s"], "--timeout"),
        ] {
            let given = parse(args).unwrap().first_given().map(|(flag, _)| flag);
            assert_eq!(given, Some(flag));
        }
    }

    #[test]
    fn one_guest_path_takes_one_directory() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let flags = parse(&[
            "--dir",
            &format!("{}::/data", a.path().display()),
            "--dir-rw",
            &format!("{}::/data", b.path().display()),
        ])
        .unwrap();
        let mut workload =
            Workload::single_http_component("default", "app", "file:///app.wasm", "localhost");
        let error = flags.apply(&mut workload.spec).unwrap_err().to_string();
        assert!(
            error.contains("two directories are mounted at `/data`"),
            "{error}"
        );
    }
}
