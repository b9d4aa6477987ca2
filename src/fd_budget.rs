//! The connection caps against the process's open-file limit (`RLIMIT_NOFILE`).
//!
//! Every open connection is a file descriptor. With caps above the limit, accepts start
//! failing with "too many open files" long before any cap is reached, and so do the Redis
//! reconnects, the probes of the chat servers and the reads of the config and TLS files:
//! every chat server looks dead and a reload cannot even read its file. So at start the caps
//! (`server.max_connections` on `listen`, the admin port's and the HTTP/JSON port's) plus a
//! reserve for everything else must fit under the soft limit. [`fit`] raises the soft limit
//! as far as they need, up to the hard limit; past what the hard limit allows it lowers the
//! caps, each in proportion, and logs one warning naming the limit and what was configured.
//! [`plan`] is the arithmetic, pure.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Descriptors kept free beside the connection caps: stdio, the listeners, the runtime's
/// own, Redis connections, the metrics port's connections, config and TLS file reads.
/// Probes of the chat servers come on top, one per server.
pub const RESERVED_FDS: u64 = 64;

/// Connections each port may hold open at once; 0 for a port that is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub listen: usize,
    pub admin: usize,
    pub http: usize,
}

impl Caps {
    fn total(self) -> u64 {
        [self.listen, self.admin, self.http]
            .into_iter()
            .map(|cap| cap as u64)
            .sum()
    }

    /// Each cap scaled by `available / total`, a port that is on keeping at least one.
    fn scaled(self, available: u64) -> Caps {
        let total = self.total();
        let scale = |cap: usize| {
            if cap == 0 {
                return 0;
            }
            // Below `cap`, as available < total: it fits a usize.
            let share = (cap as u128 * u128::from(available) / u128::from(total)) as usize;
            share.max(1)
        };
        Caps {
            listen: scale(self.listen),
            admin: scale(self.admin),
            http: scale(self.http),
        }
    }
}

/// `RLIMIT_NOFILE`; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

/// What to do about the limit, and the caps that then fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The soft limit to set, when it must rise.
    pub raise_soft_to: Option<u64>,
    pub caps: Caps,
    /// Descriptors the wanted caps and the reserve need.
    pub needed: u64,
}

/// The caps that fit under `limit` with `reserve` descriptors kept free: `wanted` when the
/// soft limit holds them, or can be raised (up to the hard limit) to; otherwise each cap
/// lowered in proportion to what the hard limit leaves, at least 1 per port that is on.
pub fn plan(wanted: Caps, reserve: u64, limit: FdLimit) -> Plan {
    let needed = wanted.total().saturating_add(reserve);
    let Some(soft) = limit.soft.filter(|&soft| soft < needed) else {
        return Plan {
            raise_soft_to: None,
            caps: wanted,
            needed,
        };
    };
    // The kernel keeps soft <= hard, so this is at least `soft`.
    let reachable = limit.hard.map_or(needed, |hard| hard.min(needed));
    let raise_soft_to = (reachable > soft).then_some(reachable);
    let caps = if reachable >= needed {
        wanted
    } else {
        wanted.scaled(reachable.saturating_sub(reserve))
    };
    Plan {
        raise_soft_to,
        caps,
        needed,
    }
}

/// The caps this process can hold: raises the soft limit when the caps need it and the hard
/// limit allows, else lowers the caps and says so once.
pub fn fit(wanted: Caps, reserve: u64) -> Caps {
    let running = getrlimit(Resource::Nofile);
    let limit = FdLimit {
        soft: running.current,
        hard: running.maximum,
    };
    let mut planned = plan(wanted, reserve, limit);
    let mut soft = limit.soft;
    if let Some(raised) = planned.raise_soft_to {
        let new = Rlimit {
            current: Some(raised),
            maximum: running.maximum,
        };
        match setrlimit(Resource::Nofile, new) {
            Ok(()) => {
                log::info!(
                    "open-file limit raised from {} to {raised} for the connection caps",
                    shown(limit.soft)
                );
                soft = Some(raised);
            }
            Err(err) => {
                log::warn!("cannot raise the open-file limit to {raised}: {err}");
                // As if the hard limit were the soft one.
                planned = plan(
                    wanted,
                    reserve,
                    FdLimit {
                        soft: limit.soft,
                        hard: limit.soft,
                    },
                );
            }
        }
    }
    if planned.caps != wanted {
        log::warn!(
            "open-file limit {} is below the {} descriptors that server.max_connections = {} \
             needs ({}, and {reserve} kept for Redis, probes and files); serving at most {}; \
             raise the limit (ulimit -n, systemd LimitNOFILE=) to get the configured caps",
            shown(soft),
            planned.needed,
            wanted.listen,
            per_port(wanted),
            per_port(planned.caps),
        );
    }
    planned.caps
}

fn shown(limit: Option<u64>) -> String {
    limit.map_or_else(|| "unlimited".to_string(), |n| n.to_string())
}

/// `N on listen, M on admin_listen, ...`, the ports that are on.
fn per_port(caps: Caps) -> String {
    [
        (caps.listen, "listen"),
        (caps.admin, "admin_listen"),
        (caps.http, "http_listen"),
    ]
    .into_iter()
    .filter(|&(cap, _)| cap > 0)
    .map(|(cap, port)| format!("{cap} on {port}"))
    .collect::<Vec<_>>()
    .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: Caps = Caps {
        listen: 10_000,
        admin: 10_000,
        http: 0,
    };

    fn limit(soft: u64, hard: u64) -> FdLimit {
        FdLimit {
            soft: Some(soft),
            hard: Some(hard),
        }
    }

    #[test]
    fn a_limit_that_holds_the_caps_is_left_alone() {
        let planned = plan(DEFAULTS, 64, limit(20_064, 20_064));
        assert_eq!(planned.raise_soft_to, None);
        assert_eq!(planned.caps, DEFAULTS);
        let unlimited = FdLimit {
            soft: None,
            hard: None,
        };
        assert_eq!(plan(DEFAULTS, 64, unlimited).caps, DEFAULTS);
    }

    #[test]
    fn the_soft_limit_rises_as_far_as_needed_within_the_hard_one() {
        let planned = plan(DEFAULTS, 64, limit(1024, 524_288));
        assert_eq!(planned.raise_soft_to, Some(20_064));
        assert_eq!(planned.caps, DEFAULTS);
        let unlimited_hard = FdLimit {
            soft: Some(1024),
            hard: None,
        };
        assert_eq!(
            plan(DEFAULTS, 64, unlimited_hard).raise_soft_to,
            Some(20_064)
        );
    }

    #[test]
    fn past_the_hard_limit_the_caps_shrink_in_proportion() {
        let wanted = Caps {
            listen: 10_000,
            admin: 10_000,
            http: 4096,
        };
        let planned = plan(wanted, 64, limit(1024, 12_112));
        assert_eq!(planned.raise_soft_to, Some(12_112));
        assert_eq!(planned.needed, 24_160);
        // 12 048 left for 24 096 wanted: half each.
        assert_eq!(
            planned.caps,
            Caps {
                listen: 5000,
                admin: 5000,
                http: 2048
            }
        );
        assert!(planned.caps.total() + 64 <= 12_112);
    }

    #[test]
    fn the_warning_names_the_ports_that_are_on() {
        let caps = Caps {
            listen: 135,
            admin: 0,
            http: 1,
        };
        assert_eq!(per_port(caps), "135 on listen, 1 on http_listen");
    }

    #[test]
    fn a_port_that_is_off_stays_off_and_one_that_is_on_keeps_a_connection() {
        let wanted = Caps {
            listen: 10_000,
            admin: 0,
            http: 10,
        };
        let planned = plan(wanted, 64, limit(200, 200));
        assert_eq!(planned.raise_soft_to, None);
        assert_eq!(
            planned.caps,
            Caps {
                listen: 135,
                admin: 0,
                http: 1
            }
        );
        let starved = plan(wanted, 64, limit(10, 10));
        assert_eq!(
            starved.caps,
            Caps {
                listen: 1,
                admin: 0,
                http: 1
            }
        );
    }
}
