//! `nimbus push` and `nimbus pull`: components to and from OCI registries
//! (the Wasm artifact layout), and the registry flags `serve` shares.

use anyhow::{Context as _, bail};
use clap::Args;
use nimbus_host::oci::{Credentials, PullPolicy, Registry, RegistrySettings};
use nimbus_host::secret::Secret;
use std::path::PathBuf;

/// How registries are reached.
#[derive(Args, Clone, Default)]
pub(crate) struct RegistryArgs {
    /// A registry (`host[:port]`) to use over plain HTTP; repeatable. Only
    /// the registries named here ever go without TLS.
    #[arg(long = "insecure-registry", value_name = "REGISTRY")]
    insecure: Vec<String>,
    /// User for every registry (default: the docker config's credentials).
    #[arg(long, requires = "password_stdin")]
    username: Option<String>,
    /// Read the password (or token) for `--username` from standard input.
    #[arg(long, requires = "username")]
    password_stdin: bool,
    // `--max-component-mb`.
    #[command(flatten)]
    pub(crate) limit: super::ComponentLimitArgs,
}

impl RegistryArgs {
    /// The runtime's registry settings these flags describe.
    pub(crate) fn settings(&self) -> anyhow::Result<RegistrySettings> {
        let credentials = match &self.username {
            Some(username) => {
                let mut password = String::new();
                std::io::stdin()
                    .read_line(&mut password)
                    .context("cannot read the password from standard input")?;
                let password = password.trim_end_matches(['\r', '\n']);
                if password.is_empty() {
                    bail!("--password-stdin: standard input held no password");
                }
                Some(Credentials {
                    username: username.clone(),
                    password: Secret::new(password),
                })
            }
            None => None,
        };
        Ok(RegistrySettings {
            insecure: self.insecure.clone(),
            credentials,
            max_layer_bytes: self.limit.bytes(),
            ..RegistrySettings::default()
        })
    }
}

/// Arguments of `nimbus push`.
#[derive(Args)]
pub(crate) struct PushCommand {
    /// Where to push, e.g. `registry.example.com/team/app:1.0`.
    reference: String,
    /// The component (`.wasm`).
    component: PathBuf,
    #[command(flatten)]
    registry: RegistryArgs,
}

impl PushCommand {
    pub(crate) fn execute(self) -> anyhow::Result<()> {
        let settings = self.registry.settings()?;
        let bytes =
            nimbus_host::files::read_bounded_blocking(&self.component, settings.max_layer_bytes)?;
        let registry = Registry::new(settings);
        let pushed = runtime()?.block_on(registry.push(&self.reference, bytes))?;
        outln!(
            "pushed {} (component {}); pin it as {}@{}",
            self.reference,
            pushed.digest,
            self.reference
                .rsplit_once(':')
                .filter(|(_, tag)| !tag.contains('/'))
                .map_or(self.reference.as_str(), |(name, _)| name),
            pushed.manifest_digest
        )?;
        Ok(())
    }
}

/// Arguments of `nimbus pull`.
#[derive(Args)]
pub(crate) struct PullCommand {
    /// What to pull, e.g. `registry.example.com/team/app:1.0` or `…@sha256:…`.
    reference: String,
    /// Where to write the component (default: the last path segment of the
    /// reference, without tag or digest, plus `.wasm`).
    #[arg(short, long)]
    output: Option<PathBuf>,
    #[command(flatten)]
    registry: RegistryArgs,
}

impl PullCommand {
    pub(crate) fn execute(self) -> anyhow::Result<()> {
        let registry = Registry::new(self.registry.settings()?);
        let pulled = runtime()?.block_on(registry.pull(&self.reference, PullPolicy::Always))?;
        let output = self.output.unwrap_or_else(|| {
            let name = self.reference.rsplit('/').next().unwrap_or("component");
            let name = name.split(['@', ':']).next().unwrap_or("component");
            PathBuf::from(format!("{name}.wasm"))
        });
        std::fs::write(&output, &pulled.bytes)
            .with_context(|| format!("cannot write `{}`", output.display()))?;
        outln!(
            "pulled {} ({}, {} bytes) into {}",
            self.reference,
            pulled.digest,
            pulled.bytes.len(),
            output.display()
        )?;
        Ok(())
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
