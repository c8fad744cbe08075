//! `spec.autoscaling` of a `WorkloadDeployment` or `WorkloadReplicaSet`
//! (Nimbus's, after Kubernetes' HorizontalPodAutoscaler): keep the replicas
//! between `minReplicas` and `maxReplicas` so each carries about its
//! target, in requests per second (`targetRequestsPerSecond`) or guest CPU
//! (`targetCpu`, cores as `cpuLimit` writes them: `0.5`, `500m`), from the
//! figures hosts already report. Scaling up is immediate; scaling down
//! waits out `scaleDownStabilizationSeconds` (the highest recommendation
//! in that window wins), and a load within 10% of the target changes
//! nothing, so a steady load never flaps. With `minReplicas: 0` a
//! deployment that served no request for `scaleToZeroAfterSeconds` scales
//! to zero: stopped everywhere, its routes kept, and the next request to a
//! host that ran it starts it there again.
//!
//! ```
//! use nimbus_model::autoscaling::Autoscaling;
//! let policy: Autoscaling = serde_json::from_str(
//!     r#"{"minReplicas": 1, "maxReplicas": 5, "targetRequestsPerSecond": 50}"#,
//! ).unwrap();
//! assert_eq!(policy.check(), Ok(()));
//! // 180 req/s at 50 per replica: 4 replicas.
//! assert_eq!(policy.recommend(2, Some(180.0), None), Some(4));
//! ```

use crate::CpuLimit;
use serde::{Deserialize, Serialize};

/// The load within which no change is made: 10% of the target (as
/// Kubernetes' HPA tolerates).
pub const TOLERANCE: f64 = 0.1;

/// The most replicas autoscaling may ask for.
pub const MAX_REPLICAS: u32 = 10_000;

/// How a replicated workload scales with its load.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Autoscaling {
    /// Never fewer; 0 lets an idle deployment scale to zero.
    #[serde(default = "one")]
    pub min_replicas: u32,
    /// Never more.
    pub max_replicas: u32,
    /// Requests per second each replica should carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_requests_per_second: Option<f64>,
    /// Guest CPU each replica should use, in cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_cpu: Option<CpuLimit>,
    /// How long the load must stay lower before replicas are removed.
    #[serde(default = "five_minutes")]
    pub scale_down_stabilization_seconds: u32,
    /// With `minReplicas: 0`, how long without a request before it scales
    /// to zero.
    #[serde(default = "five_minutes")]
    pub scale_to_zero_after_seconds: u32,
}

fn one() -> u32 {
    1
}

fn five_minutes() -> u32 {
    300
}

impl Autoscaling {
    /// Its rules: a target, `minReplicas <= maxReplicas`, `1 <= maxReplicas <=`
    /// [`MAX_REPLICAS`], a positive finite request target. The error is
    /// `(field, message)`.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.max_replicas == 0 {
            return Err(("maxReplicas", "must be at least 1".into()));
        }
        if self.max_replicas < self.min_replicas {
            return Err((
                "maxReplicas",
                format!(
                    "{} is less than minReplicas {}",
                    self.max_replicas, self.min_replicas
                ),
            ));
        }
        if self.max_replicas > MAX_REPLICAS {
            return Err((
                "maxReplicas",
                format!("{} is more than {MAX_REPLICAS}", self.max_replicas),
            ));
        }
        match (self.target_requests_per_second, self.target_cpu) {
            (None, None) => Err((
                "targetRequestsPerSecond",
                "give a target: targetRequestsPerSecond, targetCpu, or both".into(),
            )),
            (Some(rps), _) if !(rps.is_finite() && rps > 0.0) => Err((
                "targetRequestsPerSecond",
                format!("{rps} is not a positive number"),
            )),
            _ => Ok(()),
        }
    }

    /// Whether an idle deployment scales to zero (`minReplicas: 0`).
    pub fn scales_to_zero(&self) -> bool {
        self.min_replicas == 0
    }

    /// `replicas` kept within `minReplicas..=maxReplicas`.
    pub fn clamp(&self, replicas: u32) -> u32 {
        replicas.clamp(self.min_replicas, self.max_replicas.max(self.min_replicas))
    }

    /// The targets per replica, as a user reads them: `50 req/s and 500m CPU`.
    pub fn targets_text(&self) -> String {
        let mut targets = Vec::new();
        if let Some(rps) = self.target_requests_per_second {
            targets.push(format!("{rps} req/s"));
        }
        if let Some(cpu) = self.target_cpu {
            targets.push(format!("{cpu} CPU"));
        }
        targets.join(" and ")
    }

    /// The replicas the load asks for, given `current` replicas and the
    /// whole deployment's requests per second and guest CPU cores (each
    /// `None` when not known): the larger of what each target asks, within
    /// min and max; `current` when the load is within [`TOLERANCE`] of the
    /// target; `None` when no figure with a target is known.
    pub fn recommend(
        &self,
        current: u32,
        requests_per_second: Option<f64>,
        cpu_cores: Option<f64>,
    ) -> Option<u32> {
        let wanted = |total: f64, target: f64| -> u32 {
            let current = f64::from(current.max(1));
            let ratio = total / current / target;
            if (ratio - 1.0).abs() <= TOLERANCE {
                current as u32
            } else {
                // Bounded before the cast: a huge load asks for the max.
                (total / target).ceil().clamp(0.0, f64::from(MAX_REPLICAS)) as u32
            }
        };
        let by_requests = self
            .target_requests_per_second
            .zip(requests_per_second)
            .map(|(target, total)| wanted(total, target));
        let by_cpu = self
            .target_cpu
            .zip(cpu_cores)
            .map(|(target, total)| wanted(total, target.cores()));
        let wanted = by_requests.into_iter().chain(by_cpu).max()?;
        Some(self.clamp(wanted))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(target_rps: Option<f64>, target_cpu: Option<&str>) -> Autoscaling {
        Autoscaling {
            min_replicas: 1,
            max_replicas: 10,
            target_requests_per_second: target_rps,
            target_cpu: target_cpu.map(|c| c.parse().unwrap()),
            scale_down_stabilization_seconds: 300,
            scale_to_zero_after_seconds: 300,
        }
    }

    #[test]
    fn recommends_what_the_load_asks_within_bounds() {
        let rps = policy(Some(20.0), None);
        assert_eq!(rps.recommend(1, Some(100.0), None), Some(5));
        assert_eq!(rps.recommend(5, Some(0.0), None), Some(1));
        assert_eq!(rps.recommend(1, Some(1e12), None), Some(10));
        // Within 10% of the target: no change, either way.
        assert_eq!(rps.recommend(3, Some(65.0), None), Some(3));
        assert_eq!(rps.recommend(3, Some(55.0), None), Some(3));
        // No figure: no recommendation.
        assert_eq!(rps.recommend(3, None, Some(1.0)), None);
        // CPU: 1.5 cores at 250m each.
        let cpu = policy(None, Some("250m"));
        assert_eq!(cpu.recommend(2, None, Some(1.5)), Some(6));
        // Both: the larger.
        let both = policy(Some(100.0), Some("500m"));
        assert_eq!(both.recommend(1, Some(150.0), Some(2.0)), Some(4));
    }

    #[test]
    fn bad_policies_name_their_field() {
        let mut p = policy(Some(10.0), None);
        p.min_replicas = 0;
        assert_eq!(p.check(), Ok(()), "scales to zero");
        assert!(p.scales_to_zero());
        let mut p = policy(Some(10.0), None);
        p.max_replicas = 0;
        assert_eq!(p.check().unwrap_err().0, "maxReplicas");
        p.min_replicas = 3;
        p.max_replicas = 2;
        assert_eq!(p.check().unwrap_err().0, "maxReplicas");
        assert_eq!(
            policy(None, None).check().unwrap_err().0,
            "targetRequestsPerSecond"
        );
        assert!(policy(Some(-1.0), None).check().is_err());
        assert!(policy(Some(f64::NAN), None).check().is_err());
        assert_eq!(policy(Some(10.0), None).clamp(50), 10);
    }
}
