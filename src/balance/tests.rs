//! Plan + picker together: the policies, priorities, panic and localities as a worker sees
//! them.

use super::*;

const NO_ACTIVE: &dyn Fn(usize) -> u32 = &|_| 0;

struct Hosts {
    keys: Vec<String>,
    spec: Vec<(u32, u32, u32, Usability)>, // weight, priority, locality, usability
}

impl Hosts {
    fn new() -> Hosts {
        Hosts {
            keys: Vec::new(),
            spec: Vec::new(),
        }
    }

    fn add(
        &mut self,
        n: usize,
        weight: u32,
        priority: u32,
        locality: u32,
        u: Usability,
    ) -> &mut Self {
        for _ in 0..n {
            let i = self.keys.len();
            self.keys.push(format!(
                "10.{}.{}.{}:80",
                i / 65536,
                (i / 256) % 256,
                i % 256
            ));
            self.spec.push((weight, priority, locality, u));
        }
        self
    }

    fn inputs(&self) -> Vec<HostInput<'_>> {
        self.keys
            .iter()
            .zip(&self.spec)
            .map(
                |(key, &(weight, priority, locality, usability))| HostInput {
                    weight,
                    priority,
                    locality,
                    key,
                    usability,
                },
            )
            .collect()
    }

    fn plan(&self, settings: &PlanSettings) -> Plan {
        Plan::build(&self.inputs(), settings)
    }
}

fn with(policy: Policy) -> PlanSettings {
    PlanSettings {
        policy,
        ..PlanSettings::default()
    }
}

fn counts(plan: &Plan, picker: &mut Picker, picks: usize) -> Vec<usize> {
    let mut c = vec![0; plan.members()];
    for _ in 0..picks {
        c[picker.pick(plan, None, NO_ACTIVE).expect("a pick")] += 1;
    }
    c
}

fn ring() -> Policy {
    Policy::RingHash {
        min_ring_size: 1024,
        max_ring_size: 8_388_608,
    }
}

fn maglev() -> Policy {
    Policy::Maglev { table_size: 65537 }
}

#[test]
fn weighted_round_robin_shares_are_exact_over_a_cycle() {
    let mut hosts = Hosts::new();
    for w in [5, 1, 1, 3] {
        hosts.add(1, w, 0, 0, Usability::Healthy);
    }
    let plan = hosts.plan(&with(Policy::RoundRobin));
    for seed in 0..4 {
        let mut picker = Picker::new(&plan, seed);
        // Any 10 consecutive picks form one cycle.
        assert_eq!(counts(&plan, &mut picker, 10), [5, 1, 1, 3]);
        assert_eq!(counts(&plan, &mut picker, 1000), [500, 100, 100, 300]);
    }
}

#[test]
fn equal_round_robin_visits_each_host_once_per_cycle_from_a_random_start() {
    let mut hosts = Hosts::new();
    hosts.add(7, 1, 0, 0, Usability::Healthy);
    let plan = hosts.plan(&with(Policy::RoundRobin));
    let mut starts = std::collections::HashSet::new();
    for seed in 0..20 {
        let mut picker = Picker::new(&plan, seed);
        starts.insert(picker.pick(&plan, None, NO_ACTIVE));
        assert_eq!(counts(&plan, &mut picker, 7), [1; 7]);
    }
    assert!(starts.len() > 2, "workers should start at different hosts");
}

#[test]
fn least_request_takes_the_less_loaded_of_two_choices() {
    let mut hosts = Hosts::new();
    hosts.add(2, 1, 0, 0, Usability::Healthy);
    let plan = hosts.plan(&with(Policy::LeastRequest {
        choice_count: 2,
        active_request_bias: 1.0,
    }));
    let mut picker = Picker::new(&plan, 9);
    let busy_first = |m: usize| if m == 0 { 50 } else { 1 };
    let mut first = 0;
    for _ in 0..4000 {
        first += usize::from(picker.pick(&plan, None, &busy_first) == Some(0));
    }
    // Host 0 is picked only when both choices are host 0: about a quarter.
    assert!((first as f64 / 4000.0 - 0.25).abs() < 0.04, "{first}");
}

#[test]
fn weighted_least_request_follows_edf() {
    let mut hosts = Hosts::new();
    for w in [1, 2, 3] {
        hosts.add(1, w, 0, 0, Usability::Healthy);
    }
    let plan = hosts.plan(&with(Policy::LeastRequest {
        choice_count: 2,
        active_request_bias: 1.0,
    }));
    let mut picker = Picker::new(&plan, 1);
    let c = counts(&plan, &mut picker, 6000);
    for (got, want) in c.iter().zip([1000, 2000, 3000]) {
        assert!((*got as i64 - want).abs() <= 3, "{c:?}");
    }
    // Host 2 (weight 3) with 5 in flight weighs 3/6 = 0.5, below hosts 0 (1) and 1 (2).
    let active = |m: usize| if m == 2 { 5 } else { 0 };
    let mut c = [0; 3];
    for _ in 0..3500 {
        c[picker.pick(&plan, None, &active).unwrap()] += 1;
    }
    for (got, want) in c.iter().zip([1000, 2000, 500]) {
        assert!((*got as i64 - want).abs() <= 10, "{c:?}");
    }
}

#[test]
fn random_is_roughly_uniform() {
    let mut hosts = Hosts::new();
    hosts.add(5, 1, 0, 0, Usability::Healthy);
    hosts.add(5, 9, 0, 0, Usability::Healthy); // weights are ignored, as in Envoy
    let plan = hosts.plan(&with(Policy::Random));
    let mut picker = Picker::new(&plan, 4);
    let c = counts(&plan, &mut picker, 100_000);
    for n in &c {
        assert!((*n as f64 - 10_000.0).abs() < 600.0, "{c:?}");
    }
}

#[test]
fn ring_hash_keeps_keys_across_rebuilds_and_moves_few_on_growth() {
    // min_ring_size 100 keeps 10 entries per host for 10 and 11 hosts (see ring.rs for
    // the default sizes, where Envoy's rescaling moves about twice as many keys).
    let policy = Policy::RingHash {
        min_ring_size: 100,
        max_ring_size: 8_388_608,
    };
    let mut ten = Hosts::new();
    ten.add(10, 1, 0, 0, Usability::Healthy);
    let mut eleven = Hosts::new();
    eleven.add(11, 1, 0, 0, Usability::Healthy);
    let a = ten.plan(&with(policy.clone()));
    let b = ten.plan(&with(policy.clone()));
    let c = eleven.plan(&with(policy));
    let (mut pa, mut pb, mut pc) = (Picker::new(&a, 1), Picker::new(&b, 2), Picker::new(&c, 3));
    let mut moved = 0;
    for i in 0..10_000u64 {
        let h = Some(hash_bytes(format!("user-{i}").as_bytes()));
        let first = pa.pick(&a, h, NO_ACTIVE);
        assert_eq!(first, pb.pick(&b, h, NO_ACTIVE));
        assert_eq!(first, pa.pick(&a, h, NO_ACTIVE));
        let now = pc.pick(&c, h, NO_ACTIVE);
        if first != now {
            assert_eq!(now, Some(10), "a key moved between old hosts");
            moved += 1;
        }
    }
    assert!(moved <= 10_000 / 11 + 250, "{moved} of 10000 keys moved");
}

#[test]
fn ring_hash_shares_follow_weights() {
    let mut hosts = Hosts::new();
    hosts.add(1, 1, 0, 0, Usability::Healthy);
    hosts.add(1, 3, 0, 0, Usability::Healthy);
    let plan = hosts.plan(&with(ring()));
    let mut picker = Picker::new(&plan, 5);
    let c = counts(&plan, &mut picker, 40_000);
    assert!((c[1] as f64 / 40_000.0 - 0.75).abs() < 0.05, "{c:?}");
    let stats = plan.hash_table_stats().unwrap();
    // Envoy's sizing: the lighter host gets ceil(1/4 × 1024) = 256 entries, the other 768.
    assert_eq!((stats.min_per_host, stats.max_per_host), (256, 768));
}

#[test]
fn maglev_shares_follow_weights_within_one_percent() {
    let mut hosts = Hosts::new();
    hosts.add(100, 1, 0, 0, Usability::Healthy);
    let plan = hosts.plan(&with(maglev()));
    let stats = plan.hash_table_stats().unwrap();
    assert_eq!(stats.size, 65537);
    assert!(
        stats.min_per_host >= 649 && stats.max_per_host <= 662,
        "{stats:?}"
    );
    // The same hash always lands on the same host.
    let mut picker = Picker::new(&plan, 1);
    let h = Some(12345);
    let first = picker.pick(&plan, h, NO_ACTIVE);
    assert!((0..10).all(|_| picker.pick(&plan, h, NO_ACTIVE) == first));
}

#[test]
fn maglev_removal_remaps_few_keys_of_other_hosts() {
    let mut all = Hosts::new();
    all.add(100, 1, 0, 0, Usability::Healthy);
    let before = all.plan(&with(maglev()));
    // The last host goes unhealthy: the table is rebuilt over the other 99.
    all.spec[99].3 = Usability::Unhealthy;
    let after = all.plan(&with(maglev()));
    let (mut pb, mut pa) = (Picker::new(&before, 1), Picker::new(&after, 1));
    let (mut moved, mut others) = (0, 0);
    for i in 0..50_000u64 {
        let h = Some(hash_bytes(&i.to_be_bytes()));
        let was = pb.pick(&before, h, NO_ACTIVE).unwrap();
        let now = pa.pick(&after, h, NO_ACTIVE).unwrap();
        assert_ne!(now, 99);
        if was != 99 {
            others += 1;
            moved += usize::from(was != now);
        }
    }
    assert!((moved as f64) < 0.03 * others as f64, "{moved} of {others}");
}

#[test]
fn hash_policies_pick_without_a_hash() {
    for policy in [ring(), maglev()] {
        let mut hosts = Hosts::new();
        hosts.add(4, 1, 0, 0, Usability::Healthy);
        let plan = hosts.plan(&with(policy));
        let mut picker = Picker::new(&plan, 2);
        let c = counts(&plan, &mut picker, 4000);
        assert!(c.iter().all(|&n| n > 600), "{c:?}");
    }
}

#[test]
fn priority_failover_follows_the_loads() {
    // P0: 10 hosts, 5 healthy (health 70); P1: 10 healthy → 70/30.
    let mut hosts = Hosts::new();
    hosts.add(5, 1, 0, 0, Usability::Healthy);
    hosts.add(5, 1, 0, 0, Usability::Unhealthy);
    hosts.add(10, 1, 1, 0, Usability::Healthy);
    let plan = hosts.plan(&with(Policy::RoundRobin));
    assert_eq!(plan.priority_loads(), [70, 30]);
    assert_eq!(plan.degraded_loads(), [0, 0]);
    assert!(!plan.in_panic(0) && !plan.in_panic(1));
    let mut picker = Picker::new(&plan, 3);
    let c = counts(&plan, &mut picker, 100_000);
    assert!(
        c[5..10].iter().all(|&n| n == 0),
        "unhealthy hosts picked: {c:?}"
    );
    let p0: usize = c[..5].iter().sum();
    assert!((p0 as f64 / 100_000.0 - 0.70).abs() < 0.01, "{c:?}");
    assert!(!picker.panicked());

    // The same with Maglev: the priority follows the hash.
    let plan = hosts.plan(&with(maglev()));
    let mut picker = Picker::new(&plan, 3);
    let c = counts(&plan, &mut picker, 100_000);
    assert!(c[5..10].iter().all(|&n| n == 0), "{c:?}");
    let p0: usize = c[..5].iter().sum();
    assert!((p0 as f64 / 100_000.0 - 0.70).abs() < 0.01, "{c:?}");
}

#[test]
fn panic_balances_over_every_host_of_the_priority() {
    // 10 hosts, 4 healthy: below the 50% threshold, NTA 56 → panic.
    let mut hosts = Hosts::new();
    hosts.add(4, 1, 0, 0, Usability::Healthy);
    hosts.add(5, 1, 0, 0, Usability::Unhealthy);
    hosts.add(1, 1, 0, 0, Usability::Excluded);
    // 4 of 9 non-excluded healthy: 44% < 50%.
    let plan = hosts.plan(&with(Policy::RoundRobin));
    assert!(plan.in_panic(0));
    assert_eq!(plan.priority_loads(), [100]);
    let mut picker = Picker::new(&plan, 3);
    let c = counts(&plan, &mut picker, 900);
    assert_eq!(&c[..9], [100; 9]);
    assert_eq!(c[9], 0, "excluded hosts are never picked");
    assert!(picker.panicked());

    // A threshold of 0 disables panic: healthy hosts only.
    let plan = hosts.plan(&PlanSettings {
        panic_threshold: 0.0,
        ..with(Policy::RoundRobin)
    });
    assert!(!plan.in_panic(0));
    let mut picker = Picker::new(&plan, 3);
    let c = counts(&plan, &mut picker, 400);
    assert_eq!(&c[..4], [100; 4]);
}

#[test]
fn nothing_healthy_panics_unless_panic_is_disabled() {
    let mut hosts = Hosts::new();
    hosts.add(3, 1, 0, 0, Usability::Unhealthy);
    hosts.add(3, 1, 1, 0, Usability::Unhealthy);
    let plan = hosts.plan(&with(Policy::LeastRequest {
        choice_count: 2,
        active_request_bias: 1.0,
    }));
    assert_eq!(plan.priority_loads(), [50, 50]);
    assert!(!plan.is_empty());
    let mut picker = Picker::new(&plan, 3);
    assert!(picker.pick(&plan, None, NO_ACTIVE).is_some());

    let plan = hosts.plan(&PlanSettings {
        panic_threshold: 0.0,
        ..with(Policy::RoundRobin)
    });
    assert_eq!(plan.priority_loads(), [100, 0]);
    assert!(plan.is_empty());
    assert_eq!(Picker::new(&plan, 3).pick(&plan, None, NO_ACTIVE), None);
}

#[test]
fn empty_and_all_excluded_plans_pick_nothing() {
    for policy in [Policy::RoundRobin, Policy::Random, ring(), maglev()] {
        let plan = Plan::build(&[], &with(policy.clone()));
        assert!(plan.is_empty());
        assert_eq!(plan.priority_loads(), &[] as &[u32]);
        assert_eq!(Picker::new(&plan, 1).pick(&plan, Some(7), NO_ACTIVE), None);

        let mut hosts = Hosts::new();
        hosts.add(3, 1, 0, 0, Usability::Excluded);
        let plan = hosts.plan(&with(policy));
        assert!(plan.is_empty());
        assert_eq!(plan.excluded_count(), 3);
        assert_eq!(Picker::new(&plan, 1).pick(&plan, None, NO_ACTIVE), None);
    }
}

#[test]
fn degraded_hosts_take_the_load_healthy_ones_cannot() {
    // Envoy's degraded table row 25/65/10: 35% to healthy hosts, 65% to degraded ones.
    let mut hosts = Hosts::new();
    hosts.add(25, 1, 0, 0, Usability::Healthy);
    hosts.add(65, 1, 0, 0, Usability::Degraded);
    hosts.add(10, 1, 0, 0, Usability::Unhealthy);
    let plan = hosts.plan(&with(Policy::RoundRobin));
    assert_eq!(plan.priority_loads(), [35]);
    assert_eq!(plan.degraded_loads(), [65]);
    let mut picker = Picker::new(&plan, 3);
    let c = counts(&plan, &mut picker, 100_000);
    let healthy: usize = c[..25].iter().sum();
    let degraded: usize = c[25..90].iter().sum();
    assert!(
        (healthy as f64 / 100_000.0 - 0.35).abs() < 0.01,
        "{healthy}"
    );
    assert_eq!(healthy + degraded, 100_000);
}

#[test]
fn locality_weighted_selection_follows_effective_weights() {
    // X (locality 0, weight 1): 10 hosts, 5 healthy → 1 × min(1, 1.4 × 0.5) = 0.7.
    // Y (locality 1, weight 2): 10 healthy → 2. X gets 0.7 / 2.7 of the picks.
    let mut hosts = Hosts::new();
    hosts.add(5, 1, 0, 0, Usability::Healthy);
    hosts.add(5, 1, 0, 0, Usability::Unhealthy);
    hosts.add(10, 1, 0, 1, Usability::Healthy);
    let settings = PlanSettings {
        locality_weighted: true,
        locality_weights: vec![1, 2],
        ..with(Policy::RoundRobin)
    };
    let plan = hosts.plan(&settings);
    let mut picker = Picker::new(&plan, 8);
    // One cycle of the locality schedule is 7000 + 20000 picks.
    let c = counts(&plan, &mut picker, 27_000);
    let x: usize = c[..10].iter().sum();
    assert_eq!(x, 7000, "{c:?}");
    assert!(c[5..10].iter().all(|&n| n == 0));
    // Within X, round robin over its healthy hosts.
    assert!(c[..5].iter().all(|&n| n == 1400), "{c:?}");

    // Without locality weighting, localities are ignored: 15 healthy hosts share equally.
    let plan = hosts.plan(&with(Policy::RoundRobin));
    let mut picker = Picker::new(&plan, 8);
    let c = counts(&plan, &mut picker, 1500);
    assert!(c
        .iter()
        .enumerate()
        .all(|(i, &n)| n == if (5..10).contains(&i) { 0 } else { 100 }));
}

#[test]
fn a_locality_without_weight_gets_nothing() {
    let mut hosts = Hosts::new();
    hosts.add(2, 1, 0, 0, Usability::Healthy);
    hosts.add(2, 1, 0, 1, Usability::Healthy);
    let settings = PlanSettings {
        locality_weighted: true,
        locality_weights: vec![0, 1],
        ..with(Policy::Random)
    };
    let plan = hosts.plan(&settings);
    let mut picker = Picker::new(&plan, 8);
    let c = counts(&plan, &mut picker, 1000);
    assert_eq!(c[0] + c[1], 0, "{c:?}");
}

#[test]
fn hash_policies_fold_locality_weights_into_shares() {
    let mut hosts = Hosts::new();
    hosts.add(1, 1, 0, 0, Usability::Healthy);
    hosts.add(3, 1, 0, 1, Usability::Healthy);
    let settings = PlanSettings {
        locality_weighted: true,
        locality_weights: vec![3, 1],
        ..with(maglev())
    };
    let plan = hosts.plan(&settings);
    let mut picker = Picker::new(&plan, 8);
    let c = counts(&plan, &mut picker, 40_000);
    // Locality 0's single host holds 3/4 of the table.
    assert!((c[0] as f64 / 40_000.0 - 0.75).abs() < 0.02, "{c:?}");
}

#[test]
fn a_picker_given_another_plan_starts_over_on_it() {
    let mut small = Hosts::new();
    small.add(2, 1, 0, 0, Usability::Healthy);
    let mut big = Hosts::new();
    big.add(9, 3, 0, 0, Usability::Healthy);
    let a = small.plan(&with(Policy::RoundRobin));
    let b = big.plan(&with(Policy::RoundRobin));
    let mut picker = Picker::new(&a, 1);
    assert!(picker.pick(&b, None, NO_ACTIVE).is_some_and(|m| m < 9));
    assert!(picker.pick(&a, None, NO_ACTIVE).is_some_and(|m| m < 2));
}

#[test]
fn out_of_range_input_does_not_panic() {
    let hosts = [HostInput {
        weight: 0,
        priority: u32::MAX,
        locality: u32::MAX,
        key: "",
        usability: Usability::Healthy,
    }];
    for policy in [
        Policy::RoundRobin,
        Policy::LeastRequest {
            choice_count: 0,
            active_request_bias: f64::NAN,
        },
        Policy::Random,
        Policy::RingHash {
            min_ring_size: 0,
            max_ring_size: 0,
        },
        Policy::Maglev { table_size: 0 },
    ] {
        let settings = PlanSettings {
            policy,
            panic_threshold: f64::NAN,
            overprovisioning_factor: u32::MAX,
            locality_weighted: true,
            locality_weights: vec![],
        };
        let plan = Plan::build(&hosts, &settings);
        assert_eq!(plan.priorities(), MAX_PRIORITY as usize + 1);
        let mut picker = Picker::new(&plan, 0);
        assert_eq!(picker.pick(&plan, None, &|_| u32::MAX), Some(0));
    }
}

#[test]
fn plans_are_shared_and_pickers_move_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Plan>();
    send::<Picker>();
}
