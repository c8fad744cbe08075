//! A workload's long-lived service: one component exporting `wasi:cli/run`
//! (P2 or P3), started when the workload is published and stopped with it.
//!
//! The supervisor runs `run` in a fresh store. A clean return (or
//! `exit(0)`) ends the service; a trap, an error result or a non-zero exit
//! is a failure, after which the service is started again with exponential
//! backoff (100 ms, doubling, at most 30 s) until `maxRestarts` restarts
//! have been spent. Each run starts from a fresh instance, so a restarted
//! service does not see the state of the failed one.
//!
//! The workload's other components reach the service over the workload's
//! virtual loopback network ([`crate::loopback`]) or through the plugins
//! they share (key-value, messaging, blobstore).

use crate::wasi::{ComponentEnv, StoreState};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio_util::task::AbortOnDropHandle;
use wasmtime::component::InstancePre;

use nimbus_model::status::{ServiceState, ServiceStatus};

/// How the service's `run` export is called.
#[derive(Clone)]
pub enum Command {
    /// A P2 `wasi:cli/run`.
    P2(wasmtime_wasi::p2::bindings::CommandPre<StoreState>),
    /// A P3 `wasi:cli/run`.
    P3(wasmtime_wasi::p3::bindings::CommandPre<StoreState>),
}

impl Command {
    /// The component's `wasi:cli/run` export, if it has one.
    pub fn new(pre: &InstancePre<StoreState>) -> Option<Self> {
        if let Ok(p3) = wasmtime_wasi::p3::bindings::CommandPre::new(pre.clone()) {
            return Some(Self::P3(p3));
        }
        wasmtime_wasi::p2::bindings::CommandPre::new(pre.clone())
            .ok()
            .map(Self::P2)
    }

    /// One run in a fresh store: `Ok` for a successful end (or exit status
    /// 0), `Err` with how it ended otherwise.
    async fn run(
        &self,
        engine: &wasmtime::Engine,
        env: &Arc<ComponentEnv>,
    ) -> Result<(), ServiceEnd> {
        let outcome = async {
            let mut store = env.new_store(engine)?;
            match self {
                Self::P2(pre) => {
                    let command = pre.instantiate_async(&mut store).await?;
                    command.wasi_cli_run().call_run(&mut store).await
                }
                Self::P3(pre) => {
                    let command = pre.instantiate_async(&mut store).await?;
                    store
                        .run_concurrent(async move |store| {
                            command.wasi_cli_run().call_run(store).await
                        })
                        .await?
                }
            }
        }
        .await;
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(())) => Err(ServiceEnd::RunFailed),
            Err(error) => match error.downcast_ref::<wasmtime_wasi::I32Exit>() {
                Some(wasmtime_wasi::I32Exit(0)) => Ok(()),
                Some(wasmtime_wasi::I32Exit(code)) => Err(ServiceEnd::Exit(*code)),
                None => Err(ServiceEnd::Trap(format!("{error:#}"))),
            },
        }
    }
}

/// How one run of a service ended other than successfully.
#[derive(Debug, thiserror::Error)]
enum ServiceEnd {
    /// `wasi:cli/run` returned its error.
    #[error("`run` returned an error")]
    RunFailed,
    /// The guest called `exit` with a non-zero status.
    #[error("exited with status {0}")]
    Exit(i32),
    /// It trapped, or could not be instantiated (the whole chain).
    #[error("{0}")]
    Trap(String),
}

/// A workload's service and its supervisor.
pub struct Service {
    /// What each supervisor run needs; cloned into the task at start.
    supervisor: Supervisor,
    task: Mutex<Option<AbortOnDropHandle<()>>>,
}

impl Service {
    /// A service running `command` in stores of `engine` made from `env`,
    /// restarted up to its restart limit; it starts when published.
    pub fn new(
        command: Command,
        engine: wasmtime::Engine,
        env: Arc<ComponentEnv>,
        max_restarts: u64,
    ) -> Self {
        Self {
            supervisor: Supervisor {
                command,
                engine,
                env,
                max_restarts,
                status: Arc::new(Mutex::new(ServiceStatus {
                    state: ServiceState::Pending,
                    restarts: 0,
                    last_error: None,
                })),
            },
            task: Mutex::new(None),
        }
    }

    /// What the service is doing now.
    pub fn status(&self) -> ServiceStatus {
        lock(&self.supervisor.status).clone()
    }

    /// Starts the supervisor (once); must run inside the tokio runtime.
    pub fn start(&self) {
        let mut task = lock(&self.task);
        if task.is_none() {
            let run = self.supervisor.clone().supervise();
            let metrics = self.supervisor.env.metrics.clone();
            let budget = self.supervisor.env.cpu_charge();
            *task = Some(AbortOnDropHandle::new(crate::metrics::spawn_metered(
                metrics.as_ref(),
                budget,
                run,
            )));
        }
    }

    /// Stops the service: its instance is dropped wherever it is, and its
    /// virtual listeners close with it.
    pub fn stop(&self) {
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
        let mut status = lock(&self.supervisor.status);
        if matches!(
            status.state,
            ServiceState::Running | ServiceState::Restarting | ServiceState::Pending
        ) {
            status.state = ServiceState::Stopped;
        }
        tracing::info!(workload = %self.supervisor.env.workload, "service stopped");
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data; a panic elsewhere cannot leave it half-written.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The delay before restart number `restart` (1-based).
fn backoff(restart: u64) -> Duration {
    let doublings = restart.saturating_sub(1).min(16) as u32;
    Duration::from_millis(100)
        .saturating_mul(2u32.saturating_pow(doublings))
        .min(Duration::from_secs(30))
}

#[derive(Clone)]
struct Supervisor {
    command: Command,
    engine: wasmtime::Engine,
    env: Arc<ComponentEnv>,
    max_restarts: u64,
    status: Arc<Mutex<ServiceStatus>>,
}

impl Supervisor {
    async fn supervise(self) {
        let workload = self.env.workload.clone();
        let mut restarts = 0;
        loop {
            lock(&self.status).state = ServiceState::Running;
            tracing::info!(%workload, restarts, "service started");
            let error = match self.command.run(&self.engine, &self.env).await {
                Ok(()) => {
                    lock(&self.status).state = ServiceState::Exited;
                    tracing::info!(%workload, "service exited");
                    return;
                }
                Err(error) => error,
            };
            let give_up = restarts >= self.max_restarts;
            {
                let mut status = lock(&self.status);
                status.last_error = Some(error.to_string());
                status.state = if give_up {
                    ServiceState::Failed
                } else {
                    ServiceState::Restarting
                };
            }
            if give_up {
                tracing::error!(%workload, %error, restarts, "service failed; no restarts left (maxRestarts)");
                return;
            }
            restarts += 1;
            let delay = backoff(restarts);
            tracing::warn!(%workload, %error, restart = restarts, delay_ms = delay.as_millis() as u64, "service failed; restarting");
            lock(&self.status).restarts = restarts;
            tokio::time::sleep(delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_up_to_thirty_seconds() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(4), Duration::from_millis(800));
        assert_eq!(backoff(10), Duration::from_secs(30));
        assert_eq!(backoff(u64::MAX), Duration::from_secs(30));
    }
}
