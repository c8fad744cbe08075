//! Placement: from desired resources and what live hosts run, the commands
//! that close the gap. A pure function, so it is tested without NATS.
//!
//! Rules, per resource:
//! - only live hosts whose labels include every `hostSelector` pair count;
//! - replicas already placed on a matching host stay there (no churn);
//! - missing replicas go one at a time to the matching host with the fewest
//!   replicas of this resource, then the fewest replicas overall, so they
//!   spread across hosts first and share a host only when they must; a
//!   host new to the resource must have the memory it reserves free (its
//!   heartbeat says how much) and have sent its last heartbeat in time,
//!   and a host whose start of it just failed is passed over while that
//!   failure stands;
//! - excess replicas leave the host holding most of this resource (parked
//!   there, routes kept, if it scales to zero);
//! - a host running an older spec gets the new one (the host swaps it in
//!   atomically, the old version serving until the new one does); under a
//!   rolling update at most `in_flight` replicas are being replaced at
//!   once, counting those already in the middle of it (`replacing`), and
//!   always at least one host's worth, hosts taken in id order, so a
//!   rollout moves host by host and a host whose new version fails to
//!   start holds the rest back;
//! - anything a host runs that is no longer desired is stopped, and so is
//!   a parked copy that no longer would be woken as it is (the resource
//!   is gone, no longer scales to zero, changed its spec or its selector
//!   no longer matches the host).

use crate::api::Reservation;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A desired resource, reduced to what placement needs.
#[derive(Debug, Clone)]
pub(crate) struct Want<'a> {
    pub(crate) id: &'a str,
    pub(crate) spec_hash: &'a str,
    pub(crate) replicas: u32,
    pub(crate) selector: &'a BTreeMap<String, String>,
    /// Replicas that may be replaced at once (a rolling update), or `None`
    /// for all of them.
    pub(crate) in_flight: Option<u32>,
    /// Replicas in the middle of their replacement now (an update in
    /// flight, or one that failed and waits to be tried again).
    pub(crate) replacing: u32,
    /// What a host reserves for it (the memory and CPU the spec declares).
    pub(crate) need: Reservation,
    /// Hosts not to start it on anew (a start there just failed).
    pub(crate) avoid: BTreeSet<&'a str>,
    /// At zero replicas, park it where it runs rather than stop it (it
    /// scales to zero: its routes stay and a request starts it again).
    pub(crate) park_when_idle: bool,
}

/// What one live host runs: workload id → (spec hash, replicas).
#[derive(Debug, Clone)]
pub(crate) struct HostView<'a> {
    pub(crate) labels: &'a BTreeMap<String, String>,
    pub(crate) workloads: &'a BTreeMap<String, (String, u32)>,
    /// Workloads parked there: id → spec hash.
    pub(crate) parked: &'a BTreeMap<String, String>,
    /// Whether its last heartbeat came in time (a host that missed one is
    /// given nothing new).
    pub(crate) ready: bool,
    /// Memory still free to promise, or `None` without a budget.
    pub(crate) free_memory: Option<u64>,
    /// CPU still free to promise (millicores), or `None` without a budget.
    pub(crate) free_cpu: Option<u64>,
}

/// A command for one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Run `id` with `replicas` (start, resize or update).
    Start {
        host: String,
        id: String,
        replicas: u32,
    },
    /// Stop `id`; `park`: keep its routes, so a request starts it again
    /// (scaled to zero).
    Stop {
        host: String,
        id: String,
        park: bool,
    },
}

/// Placement's result: the actions, and per resource the target per host.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub(crate) actions: Vec<Action>,
    /// Resource id → (host → replicas) it should have.
    pub(crate) targets: HashMap<String, BTreeMap<String, u32>>,
    /// Resources short of replicas because no matching host had room for
    /// them, with what they need.
    pub(crate) no_room: HashMap<String, Reservation>,
}

fn matches(labels: &BTreeMap<String, String>, selector: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Computes the actions for `wants` over `hosts` (live hosts by id).
pub(crate) fn plan(wants: &[Want<'_>], hosts: &BTreeMap<String, HostView<'_>>) -> Plan {
    let mut load: HashMap<&str, u64> = hosts
        .iter()
        .map(|(id, h)| {
            (
                id.as_str(),
                h.workloads.values().map(|(_, r)| *r as u64).sum(),
            )
        })
        .collect();
    let mut free: HashMap<&str, (Option<u64>, Option<u64>)> = hosts
        .iter()
        .map(|(id, h)| (id.as_str(), (h.free_memory, h.free_cpu)))
        .collect();
    let mut plan = Plan::default();
    let wanted: HashMap<&str, &Want<'_>> = wants.iter().map(|w| (w.id, w)).collect();
    for want in wants {
        let matching: Vec<&str> = hosts
            .iter()
            .filter(|(_, h)| matches(h.labels, want.selector))
            .map(|(id, _)| id.as_str())
            .collect();
        // What a host reports is taken at most at what is wanted (plus
        // one, to be trimmed): a host cannot make the trim below run long.
        let most = want.replicas.saturating_add(1);
        let mut target: BTreeMap<String, u32> = matching
            .iter()
            .filter_map(|h| {
                let (_, replicas) = hosts[*h].workloads.get(want.id)?;
                Some((h.to_string(), (*replicas).min(most)))
            })
            .collect();
        let mut total = target
            .values()
            .fold(0u32, |sum, replicas| sum.saturating_add(*replicas));
        while total > want.replicas {
            let Some(host) = target
                .iter()
                .max_by_key(|(h, r)| (**r, load[h.as_str()], std::cmp::Reverse(h.as_str())))
                .map(|(h, _)| h.clone())
            else {
                break;
            };
            let count = target.get_mut(&host).expect("chosen from target");
            *count -= 1;
            if *count == 0 {
                target.remove(&host);
            }
            *load.get_mut(host.as_str()).expect("live host") -= 1;
            total -= 1;
        }
        while total < want.replicas {
            // A host holding it already takes another replica for nothing;
            // a new one must have room, and not have just failed it.
            let room = |h: &&&str| {
                let (memory, cpu) = free[**h];
                target.contains_key(**h)
                    || (hosts[**h].ready
                        && !want.avoid.contains(**h)
                        && want.need.shortfall(memory, cpu).is_none())
            };
            let Some(host) = matching
                .iter()
                .filter(room)
                .min_by_key(|h| (target.get(**h).copied().unwrap_or(0), load[**h], **h))
                .copied()
            else {
                let full = matching.iter().any(|h| {
                    hosts[*h].ready && !want.avoid.contains(*h) && !target.contains_key(*h)
                });
                if full {
                    plan.no_room.insert(want.id.to_string(), want.need);
                }
                break;
            };
            if !target.contains_key(host)
                && let Some((memory, cpu)) = free.get_mut(host)
            {
                if let Some(bytes) = memory {
                    *bytes = bytes.saturating_sub(want.need.memory_bytes);
                }
                if let Some(millis) = cpu {
                    *millis = millis.saturating_sub(want.need.cpu_millis);
                }
            }
            *target.entry(host.to_string()).or_default() += 1;
            *load.get_mut(host).expect("live host") += 1;
            total += 1;
        }
        let mut replacing = want.replacing;
        for (host_id, host) in hosts {
            let want_here = target.get(host_id).copied().unwrap_or(0);
            match host.workloads.get(want.id) {
                Some(_) if want_here == 0 => plan.actions.push(Action::Stop {
                    host: host_id.clone(),
                    id: want.id.to_string(),
                    park: want.park_when_idle && matches(host.labels, want.selector),
                }),
                Some((hash, replicas)) if *hash == want.spec_hash && *replicas == want_here => {}
                _ if want_here == 0 => {}
                Some((hash, replicas)) if *hash != want.spec_hash => {
                    // An update: within the rolling update's room.
                    let moving = (*replicas).max(want_here);
                    if let Some(room) = want.in_flight {
                        if replacing > 0 && replacing.saturating_add(moving) > room {
                            continue;
                        }
                        replacing = replacing.saturating_add(moving);
                    }
                    plan.actions.push(Action::Start {
                        host: host_id.clone(),
                        id: want.id.to_string(),
                        replicas: want_here,
                    });
                }
                _ => plan.actions.push(Action::Start {
                    host: host_id.clone(),
                    id: want.id.to_string(),
                    replicas: want_here,
                }),
            }
        }
        plan.targets.insert(want.id.to_string(), target);
    }
    for (host_id, host) in hosts {
        for id in host.workloads.keys() {
            if !wanted.contains_key(id.as_str()) {
                plan.actions.push(Action::Stop {
                    host: host_id.clone(),
                    id: id.clone(),
                    park: false,
                });
            }
        }
        for (id, hash) in host.parked {
            let wakes_as_is = wanted.get(id.as_str()).is_some_and(|want| {
                want.park_when_idle
                    && *hash == want.spec_hash
                    && matches(host.labels, want.selector)
            });
            if !wakes_as_is && !host.workloads.contains_key(id) {
                plan.actions.push(Action::Stop {
                    host: host_id.clone(),
                    id: id.clone(),
                    park: false,
                });
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        labels: BTreeMap<String, BTreeMap<String, String>>,
        runs: BTreeMap<String, BTreeMap<String, (String, u32)>>,
        /// Free memory of hosts with a budget.
        free: BTreeMap<String, u64>,
        /// Free CPU (millicores) of hosts with a budget.
        free_cpu: BTreeMap<String, u64>,
        /// What each host holds parked: id → spec hash.
        parked: BTreeMap<String, BTreeMap<String, String>>,
        /// Hosts that missed their last heartbeat.
        not_ready: BTreeSet<String>,
    }

    impl Fixture {
        fn new(hosts: &[(&str, &[(&str, &str)])]) -> Self {
            let labels = hosts
                .iter()
                .map(|(id, l)| {
                    let l = l.iter().map(|(k, v)| (k.to_string(), v.to_string()));
                    (id.to_string(), l.collect())
                })
                .collect();
            let runs = hosts
                .iter()
                .map(|(id, _)| (id.to_string(), BTreeMap::new()))
                .collect();
            let parked = hosts
                .iter()
                .map(|(id, _)| (id.to_string(), BTreeMap::new()))
                .collect();
            Self {
                labels,
                runs,
                free: BTreeMap::new(),
                free_cpu: BTreeMap::new(),
                parked,
                not_ready: BTreeSet::new(),
            }
        }

        fn run(&mut self, host: &str, id: &str, hash: &str, replicas: u32) {
            let runs = self.runs.get_mut(host).unwrap();
            runs.insert(id.into(), (hash.into(), replicas));
        }

        fn views(&self) -> BTreeMap<String, HostView<'_>> {
            self.labels
                .iter()
                .map(|(id, labels)| {
                    let view = HostView {
                        labels,
                        workloads: &self.runs[id],
                        parked: &self.parked[id],
                        ready: !self.not_ready.contains(id),
                        free_memory: self.free.get(id).copied(),
                        free_cpu: self.free_cpu.get(id).copied(),
                    };
                    (id.clone(), view)
                })
                .collect()
        }

        /// Applies the plan's actions, as hosts would.
        fn apply(&mut self, plan: &Plan, hash: &str) {
            for action in &plan.actions {
                match action {
                    Action::Start { host, id, replicas } => self.run(host, id, hash, *replicas),
                    Action::Stop { host, id, park } => {
                        let ran = self.runs.get_mut(host).unwrap().remove(id);
                        let parked = self.parked.get_mut(host).unwrap();
                        match ran {
                            Some((hash, _)) if *park => parked.insert(id.clone(), hash),
                            _ => parked.remove(id),
                        };
                    }
                }
            }
        }

        fn placed(&self, id: &str) -> BTreeMap<String, u32> {
            self.runs
                .iter()
                .filter_map(|(h, runs)| runs.get(id).map(|(_, r)| (h.clone(), *r)))
                .collect()
        }
    }

    fn want<'a>(id: &'a str, replicas: u32, selector: &'a BTreeMap<String, String>) -> Want<'a> {
        Want {
            id,
            spec_hash: "h1",
            replicas,
            selector,
            in_flight: None,
            replacing: 0,
            need: Reservation::default(),
            avoid: BTreeSet::new(),
            park_when_idle: false,
        }
    }

    /// The hosts an update is sent to.
    fn updated_hosts(plan: &Plan) -> Vec<&str> {
        plan.actions
            .iter()
            .filter_map(|a| match a {
                Action::Start { host, .. } => Some(host.as_str()),
                Action::Stop { .. } => None,
            })
            .collect()
    }

    #[test]
    fn a_rolling_update_moves_host_by_host_within_its_room() {
        let mut f = Fixture::new(&[("a", &[]), ("b", &[]), ("c", &[]), ("d", &[])]);
        for host in ["a", "b", "c", "d"] {
            f.run(host, "ns/web", "h1", 1);
        }
        let none = BTreeMap::new();
        let rolling = |in_flight, replacing| Want {
            spec_hash: "h2",
            in_flight: Some(in_flight),
            replacing,
            ..want("ns/web", 4, &none)
        };
        // Room for one: the first host only.
        assert_eq!(updated_hosts(&plan(&[rolling(1, 0)], &f.views())), ["a"]);
        // One in the middle of it already: nobody else moves.
        assert!(plan(&[rolling(1, 1)], &f.views()).actions.is_empty());
        // Room for two: two hosts at once.
        assert_eq!(
            updated_hosts(&plan(&[rolling(2, 0)], &f.views())),
            ["a", "b"]
        );
        // All at once without a rolling update.
        let recreate = Want {
            spec_hash: "h2",
            ..want("ns/web", 4, &none)
        };
        assert_eq!(updated_hosts(&plan(&[recreate], &f.views())).len(), 4);
        // A host holding more than the room still moves, alone.
        let mut g = Fixture::new(&[("a", &[]), ("b", &[])]);
        g.run("a", "ns/web", "h1", 3);
        g.run("b", "ns/web", "h1", 3);
        let big = Want {
            spec_hash: "h2",
            in_flight: Some(1),
            ..want("ns/web", 6, &none)
        };
        assert_eq!(updated_hosts(&plan(&[big], &g.views())), ["a"]);
        // Host by host to the end: each step applied as the hosts would.
        let mut steps = Vec::new();
        loop {
            let step = plan(&[rolling(1, 0)], &f.views());
            if step.actions.is_empty() {
                break;
            }
            steps.push(updated_hosts(&step).join(","));
            f.apply(&step, "h2");
        }
        assert_eq!(steps, ["a", "b", "c", "d"]);
    }

    #[test]
    fn new_replicas_during_a_rollout_start_on_the_new_spec_at_once() {
        let mut f = Fixture::new(&[("a", &[]), ("b", &[]), ("c", &[])]);
        f.run("a", "ns/web", "h1", 1);
        f.run("b", "ns/web", "h1", 1);
        let none = BTreeMap::new();
        let scaled = Want {
            spec_hash: "h2",
            in_flight: Some(1),
            replacing: 1,
            ..want("ns/web", 3, &none)
        };
        // No room to replace, but `c` is new: it starts the new spec.
        assert_eq!(
            plan(&[scaled], &f.views()).actions,
            [Action::Start {
                host: "c".into(),
                id: "ns/web".into(),
                replicas: 1
            }]
        );
    }

    #[test]
    fn replicas_spread_before_they_share() {
        let mut f = Fixture::new(&[("a", &[]), ("b", &[]), ("c", &[])]);
        let none = BTreeMap::new();
        let plan = plan(&[want("ns/web", 3, &none)], &f.views());
        f.apply(&plan, "h1");
        assert_eq!(
            f.placed("ns/web").values().collect::<Vec<_>>(),
            [&1, &1, &1]
        );
        // Nothing left to do: applying the same state again is a no-op.
        assert!(
            super::plan(&[want("ns/web", 3, &none)], &f.views())
                .actions
                .is_empty()
        );
    }

    #[test]
    fn a_lost_host_moves_its_replicas_to_the_others() {
        let mut f = Fixture::new(&[("a", &[]), ("b", &[])]);
        f.run("a", "ns/web", "h1", 2);
        f.run("b", "ns/web", "h1", 1);
        // Host `b` is gone (not live): its replica goes to `a`.
        f.labels.remove("b");
        f.runs.remove("b");
        let none = BTreeMap::new();
        let plan = plan(&[want("ns/web", 3, &none)], &f.views());
        assert_eq!(
            plan.actions,
            [Action::Start {
                host: "a".into(),
                id: "ns/web".into(),
                replicas: 3
            }]
        );
    }

    #[test]
    fn the_selector_limits_hosts_and_a_changed_spec_updates_in_place() {
        let mut f = Fixture::new(&[("a", &[("zone", "x")]), ("b", &[("zone", "y")])]);
        let selector: BTreeMap<_, _> = [("zone".to_string(), "y".to_string())].into();
        f.run("a", "ns/web", "h1", 1);
        let plan = plan(&[want("ns/web", 2, &selector)], &f.views());
        f.apply(&plan, "h1");
        assert_eq!(f.placed("ns/web"), [("b".to_string(), 2)].into());
        let changed = Want {
            spec_hash: "h2",
            ..want("ns/web", 2, &selector)
        };
        let plan = super::plan(&[changed], &f.views());
        assert_eq!(
            plan.actions,
            [Action::Start {
                host: "b".into(),
                id: "ns/web".into(),
                replicas: 2
            }]
        );
    }

    #[test]
    fn scaling_down_and_deleting_stop_what_is_not_wanted() {
        let mut f = Fixture::new(&[("a", &[]), ("b", &[])]);
        f.run("a", "ns/web", "h1", 2);
        f.run("b", "ns/web", "h1", 1);
        f.run("b", "ns/old", "h1", 1);
        let none = BTreeMap::new();
        let plan = plan(&[want("ns/web", 1, &none)], &f.views());
        f.apply(&plan, "h1");
        assert_eq!(f.placed("ns/web").values().sum::<u32>(), 1);
        assert!(f.placed("ns/old").is_empty());
    }

    #[test]
    fn no_matching_host_places_nothing() {
        let f = Fixture::new(&[("a", &[])]);
        let selector: BTreeMap<_, _> = [("gpu".to_string(), "yes".to_string())].into();
        let plan = plan(&[want("ns/web", 2, &selector)], &f.views());
        assert!(plan.actions.is_empty());
        assert!(plan.targets["ns/web"].is_empty());
    }

    #[test]
    fn many_resources_balance_across_hosts() {
        let hosts: Vec<String> = (0..10).map(|i| format!("h{i}")).collect();
        let spec: Vec<(&str, &[(&str, &str)])> =
            hosts.iter().map(|h| (h.as_str(), &[][..])).collect();
        let mut f = Fixture::new(&spec);
        let ids: Vec<String> = (0..50).map(|i| format!("ns/w{i}")).collect();
        let none = BTreeMap::new();
        let wants: Vec<_> = ids.iter().map(|id| want(id, 3, &none)).collect();
        let plan = plan(&wants, &f.views());
        f.apply(&plan, "h1");
        let loads: Vec<u32> = f
            .runs
            .values()
            .map(|r| r.values().map(|(_, n)| n).sum())
            .collect();
        assert_eq!(loads.iter().sum::<u32>(), 150);
        assert!(loads.iter().all(|l| *l == 15), "{loads:?}");
    }

    #[test]
    fn a_host_without_room_or_that_just_failed_is_passed_over() {
        let mut f = Fixture::new(&[("a", &[]), ("b", &[]), ("c", &[])]);
        f.free.insert("a".into(), 10 << 20);
        f.free.insert("b".into(), 100 << 20);
        let none = BTreeMap::new();
        let big = Want {
            need: Reservation {
                memory_bytes: 64 << 20,
                cpu_millis: 0,
            },
            ..want("ns/web", 2, &none)
        };
        // `a` has no room; `b` and `c` (no budget) take one each.
        let plan = plan(std::slice::from_ref(&big), &f.views());
        assert_eq!(updated_hosts(&plan), ["b", "c"]);
        assert!(plan.no_room.is_empty());
        // Three wanted: `b` and `c` take a second one (no more memory for
        // a host that holds it already).
        let three = Want {
            replicas: 3,
            ..big.clone()
        };
        let placed = super::plan(&[three], &f.views()).targets["ns/web"].clone();
        assert_eq!(placed.values().sum::<u32>(), 3);
        assert!(!placed.contains_key("a"), "{placed:?}");
        // Two resources of 64 MiB: `b` holds only one of them (both
        // replicas of the first).
        let other = Want {
            id: "ns/api",
            replicas: 1,
            ..big.clone()
        };
        let mut g = Fixture::new(&[("b", &[])]);
        g.free.insert("b".into(), 100 << 20);
        let plan = super::plan(&[big.clone(), other], &g.views());
        assert_eq!(plan.targets["ns/web"].values().sum::<u32>(), 2);
        assert!(plan.targets["ns/api"].is_empty());
        assert_eq!(
            plan.no_room.get("ns/api").map(|n| n.memory_bytes),
            Some(64 << 20)
        );
        // A host whose start just failed is passed over for another.
        let avoiding = Want {
            avoid: ["b"].into(),
            ..want("ns/web", 1, &none)
        };
        let plan = super::plan(&[avoiding], &f.views());
        assert_eq!(updated_hosts(&plan), ["a"]);
    }

    #[test]
    fn cpu_budgets_count_like_memory() {
        let mut f = Fixture::new(&[("a", &[]), ("b", &[])]);
        f.free_cpu.insert("a".into(), 500);
        f.free_cpu.insert("b".into(), 2000);
        let none = BTreeMap::new();
        let heavy = Want {
            need: Reservation {
                memory_bytes: 0,
                cpu_millis: 1000,
            },
            ..want("ns/web", 1, &none)
        };
        assert_eq!(updated_hosts(&plan(&[heavy], &f.views())), ["b"]);
        let heavier = Want {
            need: Reservation {
                memory_bytes: 0,
                cpu_millis: 3000,
            },
            ..want("ns/web", 1, &none)
        };
        let plan = plan(&[heavier], &f.views());
        assert!(plan.actions.is_empty());
        assert_eq!(plan.no_room["ns/web"].cpu_millis, 3000);
    }

    #[test]
    fn a_deployment_that_scales_to_zero_is_parked_when_trimmed_and_stale_copies_go() {
        let mut f = Fixture::new(&[("a", &[]), ("b", &[]), ("c", &[])]);
        for host in ["a", "b", "c"] {
            f.run(host, "ns/web", "h1", 1);
        }
        let none = BTreeMap::new();
        let zero = |replicas| Want {
            park_when_idle: true,
            ..want("ns/web", replicas, &none)
        };
        // Down to one: the others are parked, keeping their routes.
        let down = plan(&[zero(1)], &f.views());
        assert_eq!(down.actions.len(), 2, "{:?}", down.actions);
        assert!(
            down.actions
                .iter()
                .all(|a| matches!(a, Action::Stop { park: true, .. }))
        );
        f.apply(&down, "h1");
        assert_eq!(
            f.parked
                .values()
                .filter(|p| p.contains_key("ns/web"))
                .count(),
            2
        );
        // Parked copies of the current spec stay; nothing else happens.
        assert!(plan(&[zero(1)], &f.views()).actions.is_empty());
        // Without scaling to zero, a trim stops.
        f.run("a", "ns/api", "h1", 1);
        f.run("b", "ns/api", "h1", 1);
        let api = plan(&[zero(1), want("ns/api", 1, &none)], &f.views());
        assert!(api.actions.contains(&Action::Stop {
            host: "a".into(),
            id: "ns/api".into(),
            park: false
        }));
        // A changed spec, or the resource gone: the parked copies stop.
        let changed = Want {
            spec_hash: "h2",
            ..zero(1)
        };
        let stale = plan(&[changed], &f.views());
        let stopped: Vec<_> = stale
            .actions
            .iter()
            .filter(|a| matches!(a, Action::Stop { park: false, id, .. } if id == "ns/web"))
            .collect();
        assert_eq!(stopped.len(), 2, "{:?}", stale.actions);
        let gone = plan(&[], &f.views());
        let parked_stops = gone
            .actions
            .iter()
            .filter(|a| matches!(a, Action::Stop { park: false, id, host } if id == "ns/web" && host != "c"))
            .count();
        assert_eq!(parked_stops, 2, "{:?}", gone.actions);
    }

    #[test]
    fn a_host_that_missed_a_heartbeat_is_given_nothing_new() {
        let mut f = Fixture::new(&[("a", &[]), ("b", &[])]);
        f.run("a", "ns/web", "h1", 1);
        f.not_ready.insert("b".into());
        let none = BTreeMap::new();
        let plan = plan(&[want("ns/web", 2, &none)], &f.views());
        // Its replica stays where it is; the second waits for a ready host.
        assert_eq!(
            plan.actions,
            vec![Action::Start {
                host: "a".into(),
                id: "ns/web".into(),
                replicas: 2
            }]
        );
        assert!(plan.no_room.is_empty());
    }
}
