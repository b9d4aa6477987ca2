//! `ServerTable`: the balancing state of the `ServerRegistry`, as a plain type.
//!
//! Per configured ChatServer it keeps the load the last poll read, the last
//! probe result, the assignments this instance made since that poll and the
//! placements in flight (token not stored yet); beside them, how the polls
//! of the load hash fare. Every change of that state is a method here —
//! placing a user, settling a placement, applying a poll or probe report,
//! merging a config reload — so unit tests drive each one without actors,
//! Redis or sockets; the registry actor only feeds it its messages. Times
//! and the strategy's random seed come in as arguments, so the table never
//! reads a clock or the OS's randomness either.
//!
//! A placement holds an in-flight count on its server while the token is
//! written, so concurrent requests already spread and a capacity
//! (`max_connections`) holds under a burst; once the token is stored it
//! counts as an assignment, and if the write fails it is just released.
//!
//! Which servers may take a user is decided here, the same for every
//! strategy (alive, not draining, below capacity; docs/contract.md §7); the
//! running [`Strategy`] then chooses among them. A server drains when its
//! config says so or an Admin call did; the latter is kept apart from the
//! config, so a reload does not undo it.
//!
//! A poll that finds no load hash at all (a Redis restarted without
//! persistence, or a replica promoted while empty) is not read as "every
//! server stopped": with probing on, each server keeps its last count, its
//! assignments keep adding up, and the probes alone decide who is alive,
//! until the hash exists again (docs/contract.md §5).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::balance::{Availability, LoadField, LoadHash, ServerLoad};
use crate::chat_server::{ChatServer, ServerPolicy};
use crate::outage::OutageTracker;
use crate::redis_link::RedisFailure;
use crate::strategy::{Candidate, Strategy, StrategyKind};

/// One configured server and what the table knows about it.
#[derive(Debug)]
struct ServerEntry {
    server: Arc<ChatServer>,
    load: ServerLoad,
    /// The field as the last poll that found the hash read it; `None`
    /// before the first such poll.
    field: Option<LoadField>,
    /// When the last probe result arrived; `None` before the first.
    last_probe: Option<SystemTime>,
    /// An Admin call drains it (the config's say is in its policy).
    drained_by_admin: bool,
}

impl ServerEntry {
    /// A server not seen by any poll or probe yet.
    fn new(server: ChatServer, probing: bool) -> ServerEntry {
        ServerEntry {
            server: Arc::new(server),
            load: ServerLoad {
                reachable: !probing,
                ..ServerLoad::default()
            },
            field: None,
            last_probe: None,
            drained_by_admin: false,
        }
    }

    fn drain(&self) -> Drain {
        Drain {
            by_config: self.server.policy.draining,
            by_admin: self.drained_by_admin,
        }
    }

    fn availability(&self) -> Availability {
        self.load
            .availability(self.drain().any(), self.server.policy.max_connections)
    }

    /// Why it is not alive; asked only of a server that is not.
    fn not_alive_reason(&self) -> &'static str {
        // A count (polled, or kept while the hash is gone) leaves only the
        // probe to blame.
        match (self.load.polled, &self.field) {
            (Some(_), _) => "does not accept TCP connections",
            (None, Some(LoadField::Invalid(_))) => "its load field is not a count",
            (None, _) => "not in the load hash",
        }
    }

    /// Why it was passed over, for the RESOURCE_EXHAUSTED message.
    fn passed_over_reason(&self) -> String {
        match self.availability() {
            Availability::NotAlive => format!("not alive: {}", self.not_alive_reason()),
            Availability::Draining => format!("draining ({})", self.drain()),
            Availability::Full { load, max } => format!("full: load {load} of max {max}"),
            // Only when a strategy declined every server that could take one.
            Availability::Choosable(load) => format!("not chosen (load {load})"),
        }
    }

    fn snapshot(&self) -> ServerSnapshot {
        ServerSnapshot {
            server: Arc::clone(&self.server),
            load: self.load.clone(),
            field: self.field.clone(),
            alive: self.load.effective_load().is_some(),
            last_probe: self.last_probe,
            drain: self.drain(),
            availability: self.availability(),
        }
    }
}

/// Takes one field of a poll that found the hash: its count replaces the
/// assignments since the previous poll; a change of kind is logged.
fn apply_field(entry: &mut ServerEntry, field: LoadField) {
    let name = &entry.server.name;
    let changed =
        entry.field.as_ref().map(std::mem::discriminant) != Some(std::mem::discriminant(&field));
    // Log changes only: a bad field would otherwise warn every poll.
    if changed {
        match &field {
            LoadField::Count(count) => {
                log::info!("{name}: alive in the load hash (count {count})")
            }
            LoadField::Missing => {
                log::warn!("{name}: no field in the load hash (not running?); not choosing it")
            }
            LoadField::Invalid(raw) => {
                log::warn!("{name}: load field holds {raw:?}, not a count; not choosing it")
            }
        }
    }
    entry.load.polled = match &field {
        LoadField::Count(count) => Some(*count),
        LoadField::Missing | LoadField::Invalid(_) => None,
    };
    entry.field = Some(field);
    entry.load.assigned_since_poll = 0;
}

/// Why no placement was made.
#[derive(Debug)]
pub enum PlacementError {
    /// `uid <= 0`: a business error, answered without touching Redis.
    InvalidUid,
    /// No poll has succeeded yet (Redis unreachable since start-up).
    NoLoadData,
    /// Every configured server is not alive; one reason per server.
    NoServerAlive(Vec<String>),
    /// Some servers are alive, but each is full or draining; one reason per
    /// server (docs/contract.md §7: RESOURCE_EXHAUSTED, not UNAVAILABLE).
    NoServerChoosable(Vec<String>),
    /// The token could not be stored (or the token actor stopped).
    Token(RedisFailure),
}

impl fmt::Display for PlacementError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlacementError::InvalidUid => write!(f, "uid must be positive"),
            PlacementError::NoLoadData => write!(
                f,
                "no chat server is alive: the load hash has not been read yet (is Redis reachable?)"
            ),
            PlacementError::NoServerAlive(reasons) => {
                write!(f, "no chat server is alive ({})", reasons.join("; "))
            }
            PlacementError::NoServerChoosable(reasons) => write!(
                f,
                "every chat server is full or draining ({})",
                reasons.join("; ")
            ),
            PlacementError::Token(failure) => write!(f, "cannot store the login token: {failure}"),
        }
    }
}

impl std::error::Error for PlacementError {}

/// Who drains a server: its config, an Admin call, both or neither.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drain {
    /// `draining = true` in its `[[chat_servers]]` table.
    pub by_config: bool,
    /// Admin `SetDraining`; lasts across reloads until undone or a restart.
    pub by_admin: bool,
}

impl Drain {
    /// Whether it drains at all: no new users go there.
    pub fn any(self) -> bool {
        self.by_config || self.by_admin
    }
}

impl fmt::Display for Drain {
    /// Where the drain comes from: `config`, `admin`, `config and admin`, or
    /// `not draining`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match (self.by_config, self.by_admin) {
            (true, true) => "config and admin",
            (true, false) => "config",
            (false, true) => "admin",
            (false, false) => "not draining",
        })
    }
}

/// An Admin call named a server that is not configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownServer(pub String);

impl fmt::Display for UnknownServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no chat server is named {:?}", self.0)
    }
}

impl std::error::Error for UnknownServer {}

/// One server as the registry sees it (for operators: admin API, metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSnapshot {
    pub server: Arc<ChatServer>,
    pub load: ServerLoad,
    /// The field as the last poll that found the hash read it; `None`
    /// before the first such poll.
    pub field: Option<LoadField>,
    pub alive: bool,
    pub last_probe: Option<SystemTime>,
    /// Who drains it, if anyone (its config's say is also in its policy).
    pub drain: Drain,
    /// Whether it may take a user right now, and if not, why not.
    pub availability: Availability,
}

/// The whole balancing state at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrySnapshot {
    pub servers: Vec<ServerSnapshot>,
    /// The strategy choosing among the servers that may take a user.
    pub strategy: StrategyKind,
    pub probing: bool,
    /// Whether the most recent poll succeeded.
    pub redis_ok: bool,
    /// False when the last successful poll found no load hash at all.
    pub load_hash_present: bool,
    pub last_poll: Option<SystemTime>,
    /// Failed polls since start.
    pub poll_failures: u64,
    /// Runs of failed polls that ended with a successful one.
    pub poll_recoveries: u64,
}

impl RegistrySnapshot {
    pub fn alive_count(&self) -> usize {
        self.servers.iter().filter(|s| s.alive).count()
    }
}

/// The configured servers, their loads, and how the polls fare.
#[derive(Debug)]
pub struct ServerTable {
    servers: Vec<ServerEntry>,
    /// Whether probe reports count; without probing every server is reachable.
    probing: bool,
    /// When a poll last succeeded; `None` until the first one did.
    last_poll: Option<SystemTime>,
    /// False while successful polls find no load hash at all; true until
    /// one does.
    load_hash_present: bool,
    /// Outcomes of the polls: health, the outage log lines, metrics.
    polls: OutageTracker,
    /// Which strategy runs (`balancer.strategy`), and its state.
    strategy_kind: StrategyKind,
    strategy: Box<dyn Strategy>,
    /// Each server as the strategy sees it, refilled for every placement
    /// (kept to reuse its allocation).
    candidates: Vec<Candidate>,
}

impl ServerTable {
    /// `probing`: whether probe reports will arrive; without probing every
    /// server counts as reachable. `strategy` chooses among the servers
    /// that may take a user, drawing its random numbers (if any) from `seed`.
    pub fn new(
        servers: Vec<ChatServer>,
        probing: bool,
        strategy: StrategyKind,
        seed: u64,
    ) -> ServerTable {
        ServerTable {
            servers: servers
                .into_iter()
                .map(|server| ServerEntry::new(server, probing))
                .collect(),
            probing,
            last_poll: None,
            load_hash_present: true,
            polls: OutageTracker::default(),
            strategy_kind: strategy,
            strategy: strategy.build(seed),
            candidates: Vec::new(),
        }
    }

    fn entry_mut(&mut self, name: &str) -> Option<&mut ServerEntry> {
        self.servers
            .iter_mut()
            .find(|entry| entry.server.name == name)
    }

    /// Lets the strategy choose a server for `uid` among those that may
    /// take a user, and counts the placement in flight there until
    /// [`settle`](Self::settle).
    pub fn place(&mut self, uid: i32) -> Result<Arc<ChatServer>, PlacementError> {
        if uid <= 0 {
            return Err(PlacementError::InvalidUid);
        }
        self.candidates.clear();
        self.candidates
            .extend(self.servers.iter().map(|entry| Candidate {
                load: entry.availability().choosable_load(),
                weight: entry.server.policy.weight,
            }));
        let Some(index) = self.strategy.choose(&self.candidates) else {
            return Err(self.refusal());
        };
        debug_assert!(
            self.candidates[index].load.is_some(),
            "{:?} chose a server that cannot take a user",
            self.strategy_kind
        );
        let entry = &mut self.servers[index];
        log::debug!(
            "uid {} -> {} (load {}: polled {} + {} assigned + {} in flight)",
            uid,
            entry.server.name,
            entry.load.effective_load().unwrap_or_default(),
            entry.load.polled.unwrap_or_default(),
            entry.load.assigned_since_poll,
            entry.load.in_flight,
        );
        entry.load.in_flight += 1;
        Ok(Arc::clone(&entry.server))
    }

    /// Places every uid of one batch call (docs/contract.md §9) one after
    /// another, as that many [`place`](Self::place) calls would, so the
    /// in-flight counts spread them. Item `i` is `None` for an invalid uid
    /// (its business error, nothing placed). A refusal (no server alive, or
    /// each full or draining) is the whole batch's: every placement made for
    /// it is released, so the batch places all its valid uids or none.
    pub fn place_all(
        &mut self,
        uids: &[i32],
    ) -> Result<Vec<Option<Arc<ChatServer>>>, PlacementError> {
        let mut placed = Vec::with_capacity(uids.len());
        for &uid in uids {
            match self.place(uid) {
                Ok(server) => placed.push(Some(server)),
                Err(PlacementError::InvalidUid) => placed.push(None),
                Err(refusal) => {
                    for server in placed.into_iter().flatten() {
                        self.settle(&server.name, false);
                    }
                    return Err(refusal);
                }
            }
        }
        Ok(placed)
    }

    /// Why no server can be chosen: none alive (UNAVAILABLE), or each alive
    /// one full or draining (RESOURCE_EXHAUSTED); every server and its reason.
    fn refusal(&self) -> PlacementError {
        if self.last_poll.is_none() {
            return PlacementError::NoLoadData;
        }
        if self
            .servers
            .iter()
            .all(|entry| entry.load.effective_load().is_none())
        {
            let reasons = self
                .servers
                .iter()
                .map(|entry| format!("{}: {}", entry.server.name, entry.not_alive_reason()))
                .collect();
            return PlacementError::NoServerAlive(reasons);
        }
        let reasons = self
            .servers
            .iter()
            .map(|entry| format!("{}: {}", entry.server.name, entry.passed_over_reason()))
            .collect();
        PlacementError::NoServerChoosable(reasons)
    }

    /// Drains server `name` (no new users), or undoes an earlier such call,
    /// at an operator's request; a drain set in its config stays. Lasts
    /// across reloads, until undone, the server leaves the config, or the
    /// process restarts. Answers who drains it now.
    pub fn set_draining(&mut self, name: &str, draining: bool) -> Result<Drain, UnknownServer> {
        let entry = self
            .entry_mut(name)
            .ok_or_else(|| UnknownServer(name.to_string()))?;
        let was = std::mem::replace(&mut entry.drained_by_admin, draining);
        let drain = entry.drain();
        match (was, draining, drain.by_config) {
            (false, true, _) => {
                log::info!("{name}: draining (set by Admin); placing no new users here")
            }
            (true, false, false) => log::info!("{name}: no longer draining (undone by Admin)"),
            (true, false, true) => log::info!(
                "{name}: no longer drained by Admin, still draining: its config says draining = true"
            ),
            // Asked for what already was: nothing changed.
            (false, false, _) | (true, true, _) => {}
        }
        Ok(drain)
    }

    /// The token write of a placement on server `name` finished: `stored`
    /// turns the placement into an assignment, otherwise it is just released.
    pub fn settle(&mut self, name: &str, stored: bool) {
        // The server may have left the table meanwhile; then nothing to count.
        if let Some(entry) = self.entry_mut(name) {
            entry.load.in_flight = entry.load.in_flight.saturating_sub(1);
            if stored {
                entry.load.assigned_since_poll += 1;
            }
        }
    }

    /// Applies a successful poll read at `now`. While the hash exists, the
    /// new counts replace the assignments made since the previous poll.
    /// Without it, probing keeps every server's last count (0 if it has
    /// none) and its assignments; without probing, a missing hash is a
    /// missing field for every server.
    pub fn apply_loads(&mut self, hash: LoadHash, now: SystemTime) {
        if self.polls.record_success() {
            log::info!("load poll succeeds again");
        }
        let present = hash.exists();
        if present != std::mem::replace(&mut self.load_hash_present, present) {
            self.log_load_hash_change();
        }
        if present || !self.probing {
            for (name, field) in hash.fields {
                if let Some(entry) = self.entry_mut(&name) {
                    apply_field(entry, field);
                }
            }
        } else {
            for entry in &mut self.servers {
                entry.load.polled.get_or_insert(0);
            }
        }
        self.last_poll = Some(now);
    }

    /// Logs that the load hash vanished or came back: once per episode.
    fn log_load_hash_change(&self) {
        match (self.load_hash_present, self.probing) {
            (true, _) => log::info!("the load hash exists again; choosing by its counts"),
            (false, true) => log::warn!(
                "the load hash does not exist (Redis restarted empty, or failed over?); \
                 until it does, each chat server that accepts TCP connections stays choosable \
                 with its last count"
            ),
            (false, false) => log::warn!(
                "the load hash does not exist (Redis restarted empty, or failed over?); \
                 without probing no chat server is alive until it does"
            ),
        }
    }

    /// A poll failed at `now`: the counts stay as the last poll read them,
    /// but Redis no longer counts as answering.
    pub fn record_poll_failure(&mut self, error: &RedisFailure, now: SystemTime) {
        if !self.polls.record_failure(1) {
            return;
        }
        match self.last_poll {
            Some(at) => log::error!(
                "load poll failed ({error}); keeping the counts read {:.1} s ago until Redis answers",
                now.duration_since(at)
                    .unwrap_or(Duration::ZERO)
                    .as_secs_f64()
            ),
            None => log::error!(
                "load poll failed ({error}); no counts yet, so GetChatServer answers UNAVAILABLE until Redis answers"
            ),
        }
    }

    /// Applies one round of TCP probes that ended at `now`: server name and
    /// whether it accepted. Ignored while probing is off (a round started
    /// before a reload turned it off).
    pub fn apply_probes(&mut self, reachable: Vec<(String, bool)>, now: SystemTime) {
        if !self.probing {
            return;
        }
        for (name, reachable) in reachable {
            let Some(entry) = self.entry_mut(&name) else {
                continue;
            };
            if entry.load.reachable != reachable {
                if reachable {
                    log::info!("{name}: accepts TCP connections");
                } else {
                    let addr = format!("{}:{}", entry.server.host, entry.server.port);
                    log::warn!("{name}: {addr} does not accept TCP connections; not choosing it");
                }
            }
            entry.load.reachable = reachable;
            entry.last_probe = Some(now);
        }
    }

    /// Replaces the configured servers and the strategy (config reload).
    /// Servers that keep their name keep their counts, in-flight placements
    /// and a drain set by Admin; a server whose address changed, or any
    /// server when probing was just turned on, waits for its next probe. The
    /// strategy starts afresh (ties take turns from the first server), its
    /// random numbers from `seed`.
    pub fn replace_servers(
        &mut self,
        servers: Vec<ChatServer>,
        probing: bool,
        strategy: StrategyKind,
        seed: u64,
    ) {
        let mut old = std::mem::take(&mut self.servers);
        let was_probing = std::mem::replace(&mut self.probing, probing);
        for server in servers {
            let kept = old
                .iter()
                .position(|entry| entry.server.name == server.name)
                .map(|i| old.swap_remove(i));
            let entry = match kept {
                Some(mut entry) => {
                    let moved =
                        entry.server.host != server.host || entry.server.port != server.port;
                    if moved {
                        log::info!(
                            "{}: moved from {}:{} to {}:{}",
                            server.name,
                            entry.server.host,
                            entry.server.port,
                            server.host,
                            server.port
                        );
                    }
                    if entry.server.policy != server.policy {
                        log_policy_change(&server.name, &entry.server.policy, &server.policy);
                    }
                    if *entry.server != server {
                        entry.server = Arc::new(server);
                    }
                    if !probing {
                        entry.load.reachable = true;
                    } else if moved || !was_probing {
                        entry.load.reachable = false;
                    }
                    entry
                }
                None => {
                    log::info!("{}: added at {}:{}", server.name, server.host, server.port);
                    ServerEntry::new(server, probing)
                }
            };
            self.servers.push(entry);
        }
        for gone in old {
            if gone.drained_by_admin {
                log::info!(
                    "{}: removed, and the drain Admin set with it",
                    gone.server.name
                );
            } else {
                log::info!("{}: removed", gone.server.name);
            }
        }
        if !probing && !self.load_hash_present {
            // The counts kept for the probes' sake: without probing a missing
            // hash leaves no server alive.
            for entry in &mut self.servers {
                apply_field(entry, LoadField::Missing);
            }
        }
        if strategy != self.strategy_kind {
            log::info!(
                "balancing strategy: {} -> {}",
                self.strategy_kind.name(),
                strategy.name()
            );
        }
        self.strategy_kind = strategy;
        self.strategy = strategy.build(seed);
    }

    /// The whole state, for operators (admin API, metrics, health).
    pub fn snapshot(&self) -> RegistrySnapshot {
        RegistrySnapshot {
            servers: self.servers.iter().map(ServerEntry::snapshot).collect(),
            strategy: self.strategy_kind,
            probing: self.probing,
            redis_ok: self.last_poll.is_some() && !self.polls.in_outage(),
            load_hash_present: self.load_hash_present,
            last_poll: self.last_poll,
            poll_failures: self.polls.errors(),
            poll_recoveries: self.polls.recoveries(),
        }
    }
}

/// Logs what a reload changed in a server's policy.
fn log_policy_change(name: &str, old: &ServerPolicy, new: &ServerPolicy) {
    let mut changes = Vec::new();
    if old.weight != new.weight {
        changes.push(format!("weight {} -> {}", old.weight, new.weight));
    }
    if old.max_connections != new.max_connections {
        changes.push(format!(
            "max_connections {} -> {}",
            old.max_connections, new.max_connections
        ));
    }
    if old.draining != new.draining {
        changes.push(format!("draining {} -> {}", old.draining, new.draining));
    }
    log::info!("{name}: {}", changes.join(", "));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seeds the strategy's random numbers (only `p2c` draws any).
    const SEED: u64 = 7;

    fn server(name: &str, port: u16) -> ChatServer {
        ChatServer {
            name: name.to_string(),
            host: "127.0.0.1".to_string(),
            port,
            policy: ServerPolicy::default(),
        }
    }

    /// A poll that found the hash, with these fields.
    fn found(fields: Vec<(&str, LoadField)>) -> LoadHash {
        LoadHash {
            key_exists: true,
            fields: fields
                .into_iter()
                .map(|(name, field)| (name.to_string(), field))
                .collect(),
        }
    }

    fn counts(pairs: &[(&str, u64)]) -> LoadHash {
        found(
            pairs
                .iter()
                .map(|&(name, count)| (name, LoadField::Count(count)))
                .collect(),
        )
    }

    /// A poll that found no hash: `EXISTS` said 0, every field is missing.
    fn vanished(names: &[&str]) -> LoadHash {
        LoadHash {
            key_exists: false,
            fields: names
                .iter()
                .map(|name| (name.to_string(), LoadField::Missing))
                .collect(),
        }
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn timeout() -> RedisFailure {
        RedisFailure::TimedOut(Duration::from_millis(300))
    }

    /// A table of `loads`' servers without probing, polled once with them.
    fn polled(loads: &[(&str, u64)]) -> ServerTable {
        let servers = loads
            .iter()
            .zip(1..)
            .map(|(&(name, _), port)| server(name, port))
            .collect();
        let mut table = ServerTable::new(servers, false, StrategyKind::default(), SEED);
        table.apply_loads(counts(loads), at(0));
        table
    }

    fn load_of(table: &ServerTable, name: &str) -> ServerLoad {
        table
            .snapshot()
            .servers
            .into_iter()
            .find(|s| s.server.name == name)
            .map(|s| s.load)
            .unwrap_or_else(|| panic!("{name} is not in the table"))
    }

    fn names(table: &ServerTable) -> Vec<String> {
        let servers = table.snapshot().servers;
        servers.iter().map(|s| s.server.name.clone()).collect()
    }

    #[test]
    fn placement_counts_in_flight_on_the_least_loaded_server() {
        let mut table = polled(&[("a", 5), ("b", 2)]);
        let chosen = table.place(7).expect("two alive servers");
        assert_eq!(chosen.name, "b");
        assert_eq!(load_of(&table, "b").in_flight, 1);
        assert_eq!(load_of(&table, "a").in_flight, 0);
    }

    #[test]
    fn invalid_uid_places_nothing() {
        let mut table = polled(&[("a", 0)]);
        for uid in [0, -1, i32::MIN] {
            assert!(matches!(table.place(uid), Err(PlacementError::InvalidUid)));
        }
        assert_eq!(load_of(&table, "a").in_flight, 0);
    }

    #[test]
    fn a_batch_spreads_like_that_many_placements_and_skips_invalid_uids() {
        let mut table = polled(&[("a", 0), ("b", 0), ("c", 0)]);
        let uids: Vec<i32> = (1..=300).chain([0, -5]).collect();
        let placed = table.place_all(&uids).expect("three alive servers");
        assert_eq!(placed.len(), 302);
        assert!(placed[300].is_none() && placed[301].is_none());
        for name in ["a", "b", "c"] {
            assert_eq!(load_of(&table, name).in_flight, 100, "{name}");
        }
    }

    #[test]
    fn a_batch_past_capacity_places_nothing() {
        let servers = vec![steered("a", 1, 1, 3, false), steered("b", 2, 1, 2, false)];
        let mut table = polled_with(servers, &[("a", 0), ("b", 0)], "least_loaded");
        table.place(1).expect("room for one");
        let refused = table.place_all(&[2, 3, 0, 4, 5, 6]);
        assert!(matches!(refused, Err(PlacementError::NoServerChoosable(_))));
        let in_flight = |t: &ServerTable| load_of(t, "a").in_flight + load_of(t, "b").in_flight;
        assert_eq!(in_flight(&table), 1, "only the single placement stays");
        let placed = table
            .place_all(&[2, 3, 4, 5])
            .expect("exactly room for four");
        assert!(placed.iter().all(Option::is_some));
        assert_eq!(in_flight(&table), 5);
    }

    #[test]
    fn a_batch_without_a_poll_is_refused_whole_but_invalid_uids_alone_are_not() {
        let mut table =
            ServerTable::new(vec![server("a", 1)], false, StrategyKind::default(), SEED);
        assert!(matches!(
            table.place_all(&[1]),
            Err(PlacementError::NoLoadData)
        ));
        let placed = table.place_all(&[0, -1]).expect("no uid needs a server");
        assert_eq!(placed, [None, None]);
    }

    #[test]
    fn settle_turns_in_flight_into_an_assignment_or_frees_it() {
        let mut table = polled(&[("a", 0)]);
        for _ in 0..2 {
            table.place(1).expect("alive");
        }
        table.settle("a", true);
        let load = load_of(&table, "a");
        assert_eq!((load.in_flight, load.assigned_since_poll), (1, 1));
        table.settle("a", false);
        let load = load_of(&table, "a");
        assert_eq!((load.in_flight, load.assigned_since_poll), (0, 1));
    }

    #[test]
    fn settle_of_a_removed_server_counts_nothing() {
        let mut table = polled(&[("a", 0), ("b", 0)]);
        let chosen = table.place(1).expect("alive");
        assert_eq!(chosen.name, "a");
        table.replace_servers(vec![server("b", 2)], false, StrategyKind::default(), SEED);
        table.settle("a", true);
        assert_eq!(names(&table), ["b"]);
        let b = load_of(&table, "b");
        assert_eq!((b.in_flight, b.assigned_since_poll), (0, 0));
    }

    #[test]
    fn settle_never_goes_below_zero() {
        let mut table = polled(&[("a", 0)]);
        table.settle("a", false);
        assert_eq!(load_of(&table, "a").in_flight, 0);
    }

    #[test]
    fn load_report_resets_assignments_and_sets_liveness() {
        let mut table = polled(&[("a", 0), ("b", 0)]);
        table.place(1).expect("alive");
        table.settle("a", true);
        table.place(2).expect("alive");
        assert_eq!(load_of(&table, "a").assigned_since_poll, 1);
        assert_eq!(load_of(&table, "b").in_flight, 1);

        table.apply_loads(
            found(vec![
                ("a", LoadField::Missing),
                ("b", LoadField::Count(9)),
                ("unknown", LoadField::Count(0)),
            ]),
            at(5),
        );
        let snapshot = table.snapshot();
        let (a, b) = (&snapshot.servers[0], &snapshot.servers[1]);
        assert_eq!(a.field, Some(LoadField::Missing));
        assert_eq!((a.load.polled, a.load.assigned_since_poll), (None, 0));
        assert!(!a.alive, "a field missing from the hash is not alive");
        assert_eq!(b.load.polled, Some(9));
        // Placements in flight are not in the new count yet: they stay.
        assert_eq!(b.load.in_flight, 1);
        assert!(b.alive);
        assert_eq!(snapshot.last_poll, Some(at(5)));
        assert_eq!(snapshot.servers.len(), 2, "unknown names are ignored");

        table.apply_loads(found(vec![("b", LoadField::Invalid("x".into()))]), at(6));
        assert_eq!(
            table.snapshot().alive_count(),
            0,
            "an invalid field is not alive"
        );
    }

    #[test]
    fn probe_report_sets_reachability_when_probing() {
        let mut table = ServerTable::new(
            vec![server("a", 1), server("b", 2)],
            true,
            StrategyKind::default(),
            SEED,
        );
        table.apply_loads(counts(&[("a", 0), ("b", 0)]), at(0));
        assert_eq!(table.snapshot().alive_count(), 0, "not probed yet");
        table.apply_probes(vec![("a".into(), true), ("b".into(), false)], at(1));
        let snapshot = table.snapshot();
        assert!(snapshot.servers[0].alive && !snapshot.servers[1].alive);
        assert_eq!(snapshot.servers[0].last_probe, Some(at(1)));
        assert_eq!(table.place(1).expect("a accepts").name, "a");
    }

    #[test]
    fn probe_report_is_ignored_when_probing_is_off() {
        let mut table = polled(&[("a", 0)]);
        table.apply_probes(vec![("a".into(), false)], at(1));
        let snapshot = table.snapshot();
        assert!(snapshot.servers[0].load.reachable);
        assert_eq!(snapshot.servers[0].last_probe, None);
    }

    #[test]
    fn reload_keeps_counts_of_kept_servers() {
        let mut table = polled(&[("a", 4), ("b", 6)]);
        table.place(1).expect("alive");
        table.settle("a", true);
        table.place(2).expect("alive");
        let before = load_of(&table, "a");
        table.replace_servers(
            vec![server("b", 2), server("a", 1)],
            false,
            StrategyKind::default(),
            SEED,
        );
        assert_eq!(names(&table), ["b", "a"]);
        assert_eq!(load_of(&table, "a"), before);
        assert_eq!(load_of(&table, "b").polled, Some(6));
    }

    #[test]
    fn reload_makes_moved_servers_wait_for_a_probe() {
        let mut table = ServerTable::new(
            vec![server("a", 1), server("b", 2)],
            true,
            StrategyKind::default(),
            SEED,
        );
        table.apply_loads(counts(&[("a", 3), ("b", 3)]), at(0));
        table.apply_probes(vec![("a".into(), true), ("b".into(), true)], at(0));
        table.replace_servers(
            vec![server("a", 1), server("b", 20)],
            true,
            StrategyKind::default(),
            SEED,
        );
        let snapshot = table.snapshot();
        let (a, b) = (&snapshot.servers[0], &snapshot.servers[1]);
        assert!(a.load.reachable, "a kept its address");
        assert!(!b.load.reachable, "b moved: not probed at its new address");
        assert_eq!(b.server.port, 20);
        assert_eq!(b.load.polled, Some(3), "the count belongs to the name");
    }

    #[test]
    fn reload_that_turns_probing_on_or_off_resets_reachability() {
        let mut table = polled(&[("a", 0)]);
        table.replace_servers(vec![server("a", 1)], true, StrategyKind::default(), SEED);
        assert!(!load_of(&table, "a").reachable, "probing just turned on");
        table.apply_probes(vec![("a".into(), false)], at(1));
        table.replace_servers(vec![server("a", 1)], false, StrategyKind::default(), SEED);
        assert!(
            load_of(&table, "a").reachable,
            "without probing all reachable"
        );
    }

    #[test]
    fn reload_adds_and_removes_servers() {
        let mut table = polled(&[("a", 1), ("b", 1)]);
        table.replace_servers(
            vec![server("a", 1), server("c", 3)],
            false,
            StrategyKind::default(),
            SEED,
        );
        assert_eq!(names(&table), ["a", "c"]);
        let c = load_of(&table, "c");
        assert_eq!(
            (c.polled, c.reachable),
            (None, true),
            "added: not polled yet"
        );
        table.replace_servers(vec![server("d", 4)], true, StrategyKind::default(), SEED);
        assert!(
            !load_of(&table, "d").reachable,
            "added while probing: not probed yet"
        );
    }

    #[test]
    fn no_load_data_before_the_first_poll() {
        let mut table =
            ServerTable::new(vec![server("a", 1)], false, StrategyKind::default(), SEED);
        let err = table.place(1).expect_err("never polled");
        assert!(matches!(err, PlacementError::NoLoadData));
        assert_eq!(
            err.to_string(),
            "no chat server is alive: the load hash has not been read yet (is Redis reachable?)"
        );
    }

    #[test]
    fn unavailable_names_every_server_and_why() {
        let mut table = ServerTable::new(
            vec![server("up", 1), server("bad", 2), server("gone", 3)],
            true,
            StrategyKind::default(),
            SEED,
        );
        table.apply_loads(
            found(vec![
                ("up", LoadField::Count(0)),
                ("bad", LoadField::Invalid("x".into())),
                ("gone", LoadField::Missing),
            ]),
            at(0),
        );
        table.apply_probes(vec![("up".into(), false)], at(0));
        let err = table.place(1).expect_err("nothing alive");
        assert_eq!(
            err.to_string(),
            "no chat server is alive (up: does not accept TCP connections; \
             bad: its load field is not a count; gone: not in the load hash)"
        );
    }

    #[test]
    fn ties_take_turns_and_a_reload_restarts_the_rotation() {
        let mut table = polled(&[("a", 0), ("b", 0), ("c", 0)]);
        let mut chosen = Vec::new();
        for uid in 1..=6 {
            let server = table.place(uid).expect("alive");
            table.settle(&server.name, false);
            chosen.push(server.name.clone());
        }
        assert_eq!(chosen, ["a", "b", "c", "a", "b", "c"]);
        table.place(7).expect("alive");
        table.settle("a", false);
        table.replace_servers(
            vec![server("a", 1), server("b", 2), server("c", 3)],
            false,
            StrategyKind::default(),
            SEED,
        );
        assert_eq!(table.place(8).expect("alive").name, "a");
    }

    #[test]
    fn polls_feed_redis_health_failures_and_recoveries() {
        let mut table =
            ServerTable::new(vec![server("a", 1)], false, StrategyKind::default(), SEED);
        assert!(!table.snapshot().redis_ok, "not polled yet");
        table.record_poll_failure(&timeout(), at(0));
        table.apply_loads(counts(&[("a", 0)]), at(1));
        assert!(table.snapshot().redis_ok);
        table.record_poll_failure(&timeout(), at(2));
        table.record_poll_failure(&timeout(), at(3));
        let snapshot = table.snapshot();
        assert!(!snapshot.redis_ok);
        assert_eq!(snapshot.last_poll, Some(at(1)), "the counts stay");
        assert_eq!(snapshot.poll_failures, 3);
        assert_eq!(snapshot.poll_recoveries, 1);
        table.apply_loads(counts(&[("a", 0)]), at(4));
        let snapshot = table.snapshot();
        assert!(snapshot.redis_ok);
        assert_eq!((snapshot.poll_failures, snapshot.poll_recoveries), (3, 2));
    }

    #[test]
    fn counts_survive_a_failed_poll() {
        let mut table = polled(&[("a", 3)]);
        table.place(1).expect("alive");
        table.settle("a", true);
        table.record_poll_failure(&timeout(), at(1));
        let load = load_of(&table, "a");
        assert_eq!((load.polled, load.assigned_since_poll), (Some(3), 1));
        assert_eq!(table.place(2).expect("still alive").name, "a");
    }

    /// Probing on: a (count 5), b (0), c (no field) and d (count 0) polled;
    /// all but d accept TCP connections.
    fn probed_then_vanished() -> ServerTable {
        let names = ["a", "b", "c", "d"];
        let servers = names.iter().zip(1..).map(|(n, p)| server(n, p)).collect();
        let mut table = ServerTable::new(servers, true, StrategyKind::default(), SEED);
        table.apply_loads(
            found(vec![
                ("a", LoadField::Count(5)),
                ("b", LoadField::Count(0)),
                ("c", LoadField::Missing),
                ("d", LoadField::Count(0)),
            ]),
            at(0),
        );
        let reachable = names.iter().map(|n| (n.to_string(), *n != "d")).collect();
        table.apply_probes(reachable, at(0));
        table.place(1).expect("b is the least loaded");
        table.settle("b", true);
        table.apply_loads(vanished(&names), at(1));
        table
    }

    #[test]
    fn a_vanished_hash_keeps_reachable_servers_with_their_last_counts_when_probing() {
        let snapshot = probed_then_vanished().snapshot();
        assert!(!snapshot.load_hash_present);
        assert!(snapshot.redis_ok, "Redis answered the poll");
        assert_eq!(snapshot.last_poll, Some(at(1)));
        let state: Vec<_> = snapshot
            .servers
            .iter()
            .map(|s| (s.server.name.as_str(), s.load.polled, s.alive))
            .collect();
        assert_eq!(
            state,
            [
                ("a", Some(5), true),
                ("b", Some(0), true),
                ("c", Some(0), true),  // never had a count: 0
                ("d", Some(0), false), // does not accept TCP connections
            ]
        );
        let b = &snapshot.servers[1];
        assert_eq!(b.load.assigned_since_poll, 1, "assignments are kept");
        assert_eq!(
            snapshot.servers[2].field,
            Some(LoadField::Missing),
            "fields stay as the hash last said"
        );
    }

    #[test]
    fn assignments_add_up_while_the_hash_is_gone() {
        let mut table = probed_then_vanished();
        let mut chosen = Vec::new();
        for uid in 2..=5 {
            let server = table.place(uid).expect("alive servers");
            table.settle(&server.name, true);
            chosen.push(server.name.to_string());
            table.apply_loads(vanished(&["a", "b", "c", "d"]), at(2));
        }
        // b already had one user: c catches up, then they take turns.
        assert_eq!(chosen, ["c", "b", "c", "b"]);
        let assigned = |name| load_of(&table, name).assigned_since_poll;
        assert_eq!((assigned("b"), assigned("c")), (3, 2));
    }

    #[test]
    fn once_the_hash_is_back_its_fields_rule_again() {
        let mut table = probed_then_vanished();
        table.apply_loads(found(vec![("a", LoadField::Count(7))]), at(2));
        let snapshot = table.snapshot();
        assert!(snapshot.load_hash_present);
        assert_eq!(load_of(&table, "a").polled, Some(7));
        table.apply_loads(
            found(vec![
                ("a", LoadField::Count(7)),
                ("b", LoadField::Missing),
                ("c", LoadField::Missing),
                ("d", LoadField::Missing),
            ]),
            at(3),
        );
        let snapshot = table.snapshot();
        assert_eq!(snapshot.alive_count(), 1, "only a has a field");
        assert_eq!(load_of(&table, "b").assigned_since_poll, 0);
    }

    #[test]
    fn fields_read_prove_the_hash_exists_whatever_exists_said() {
        let mut table = probed_then_vanished();
        let created_in_between = LoadHash {
            key_exists: false,
            fields: vec![
                ("a".into(), LoadField::Count(1)),
                ("b".into(), LoadField::Missing),
            ],
        };
        table.apply_loads(created_in_between, at(2));
        assert!(table.snapshot().load_hash_present);
        assert!(!table.snapshot().servers[1].alive, "b has no field");
    }

    #[test]
    fn without_probing_a_vanished_hash_leaves_no_server_alive() {
        let mut table = polled(&[("a", 3), ("b", 0)]);
        table.apply_loads(vanished(&["a", "b"]), at(1));
        let snapshot = table.snapshot();
        assert!(!snapshot.load_hash_present);
        assert_eq!(snapshot.alive_count(), 0);
        let err = table.place(1).expect_err("no hash, no probes");
        assert_eq!(
            err.to_string(),
            "no chat server is alive (a: not in the load hash; b: not in the load hash)"
        );
    }

    #[test]
    fn a_reload_that_turns_probing_off_while_the_hash_is_gone_leaves_no_server_alive() {
        let mut table = probed_then_vanished();
        let servers = ["a", "b", "c", "d"].iter().zip(1..);
        table.replace_servers(
            servers.map(|(n, p)| server(n, p)).collect(),
            false,
            StrategyKind::default(),
            SEED,
        );
        assert_eq!(table.snapshot().alive_count(), 0);
        assert_eq!(load_of(&table, "a").polled, None);
    }

    #[test]
    fn while_the_hash_is_gone_only_the_probes_are_to_blame() {
        let mut table = probed_then_vanished();
        let unreachable = ["a", "b", "c", "d"].map(|n| (n.to_string(), false));
        table.apply_probes(unreachable.to_vec(), at(2));
        let err = table.place(1).expect_err("nothing accepts TCP connections");
        assert_eq!(
            err.to_string(),
            "no chat server is alive (a: does not accept TCP connections; \
             b: does not accept TCP connections; c: does not accept TCP connections; \
             d: does not accept TCP connections)"
        );
    }

    /// `server(name, port)` with this policy.
    fn steered(
        name: &str,
        port: u16,
        weight: u64,
        max_connections: u64,
        draining: bool,
    ) -> ChatServer {
        ChatServer {
            policy: ServerPolicy {
                weight: std::num::NonZeroU64::new(weight).expect("test weights are positive"),
                max_connections,
                draining,
            },
            ..server(name, port)
        }
    }

    /// A table of `servers` without probing, polled once with `loads`.
    fn polled_with(servers: Vec<ChatServer>, loads: &[(&str, u64)], strategy: &str) -> ServerTable {
        let strategy = crate::strategy::by_name(strategy).expect("a strategy name");
        let mut table = ServerTable::new(servers, false, strategy, SEED);
        table.apply_loads(counts(loads), at(0));
        table
    }

    /// Places `n` users, storing each token at once; the names chosen.
    fn place_stored(table: &mut ServerTable, n: i32) -> Vec<String> {
        (1..=n)
            .map(|uid| {
                let server = table.place(uid).expect("a server can take the user");
                table.settle(&server.name, true);
                server.name.clone()
            })
            .collect()
    }

    #[test]
    fn the_configured_strategy_chooses() {
        let servers = || vec![steered("a", 1, 1, 0, false), steered("b", 2, 3, 0, false)];
        // Loads 2 and 3: least_loaded takes a, weighted b (3/3 < 2/1).
        let mut table = polled_with(servers(), &[("a", 2), ("b", 3)], "least_loaded");
        assert_eq!(table.place(1).expect("alive").name, "a");
        let mut table = polled_with(servers(), &[("a", 2), ("b", 3)], "weighted");
        assert_eq!(table.place(1).expect("alive").name, "b");
        assert_eq!(table.snapshot().strategy.name(), "weighted");
    }

    #[test]
    fn weighted_splits_a_burst_by_weight() {
        let servers = vec![
            steered("a", 1, 1, 0, false),
            steered("b", 2, 2, 0, false),
            steered("c", 3, 3, 0, false),
        ];
        let mut table = polled_with(servers, &[("a", 0), ("b", 0), ("c", 0)], "weighted");
        let chosen = place_stored(&mut table, 600);
        let count = |name: &str| chosen.iter().filter(|n| *n == name).count();
        assert_eq!((count("a"), count("b"), count("c")), (100, 200, 300));
    }

    #[test]
    fn a_full_server_takes_no_more_even_with_placements_in_flight() {
        let servers = vec![steered("small", 1, 1, 10, false), server("big", 2)];
        let mut table = polled_with(servers, &[("small", 0), ("big", 1000)], "least_loaded");
        // None of the tokens stored yet: the in-flight placements count.
        let chosen: Vec<String> = (1..=30)
            .map(|uid| table.place(uid).expect("big has room").name.clone())
            .collect();
        assert_eq!(chosen.iter().filter(|n| *n == "small").count(), 10);
        assert_eq!(load_of(&table, "small").in_flight, 10);
        let snapshot = table.snapshot();
        assert_eq!(
            snapshot.servers[0].availability,
            Availability::Full { load: 10, max: 10 }
        );
        // A failed token write frees its slot again.
        table.settle("small", false);
        assert_eq!(table.place(31).expect("room again").name, "small");
    }

    #[test]
    fn every_strategy_keeps_to_the_capacity_in_a_burst() {
        for strategy in crate::strategy::STRATEGIES {
            let servers = vec![steered("a", 1, 1, 10, false), steered("b", 2, 5, 7, false)];
            let mut table = ServerTable::new(servers, false, strategy, SEED);
            table.apply_loads(counts(&[("a", 0), ("b", 0)]), at(0));
            let placed = (1..=100).filter(|&uid| table.place(uid).is_ok()).count();
            assert_eq!(placed, 17, "{strategy:?}");
            assert_eq!(load_of(&table, "a").in_flight, 10, "{strategy:?}");
            assert_eq!(load_of(&table, "b").in_flight, 7, "{strategy:?}");
        }
    }

    #[test]
    fn all_full_or_draining_is_exhausted_and_names_every_server() {
        let servers = vec![
            steered("full", 1, 1, 2, false),
            steered("cfg", 2, 1, 0, true),
            server("adm", 3),
            server("dead", 4),
        ];
        let mut table = polled_with(servers, &[("full", 5), ("cfg", 0), ("adm", 0)], "p2c");
        table.set_draining("adm", true).expect("adm is configured");
        let err = table.place(1).expect_err("nothing can take a user");
        assert!(
            matches!(err, PlacementError::NoServerChoosable(_)),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "every chat server is full or draining (full: full: load 5 of max 2; \
             cfg: draining (config); adm: draining (admin); dead: not alive: not in the load hash)"
        );
        assert_eq!(load_of(&table, "adm").in_flight, 0, "nothing placed");
    }

    #[test]
    fn none_alive_stays_unavailable_even_when_some_drain() {
        let mut table = ServerTable::new(
            vec![steered("a", 1, 1, 0, true)],
            false,
            StrategyKind::default(),
            SEED,
        );
        table.apply_loads(found(vec![("a", LoadField::Missing)]), at(0));
        let err = table.place(1).expect_err("nothing alive");
        assert!(matches!(err, PlacementError::NoServerAlive(_)), "{err:?}");
    }

    #[test]
    fn a_drain_by_admin_is_kept_apart_from_the_config_and_survives_reloads() {
        let mut table = polled(&[("a", 0), ("b", 0)]);
        let drain = table.set_draining("a", true).expect("a is configured");
        assert_eq!(
            drain,
            Drain {
                by_config: false,
                by_admin: true
            }
        );
        assert_eq!(place_stored(&mut table, 4), ["b", "b", "b", "b"]);

        // A reload keeps it, and the config drains b as well.
        table.replace_servers(
            vec![server("a", 1), steered("b", 2, 1, 0, true), server("c", 3)],
            false,
            StrategyKind::default(),
            SEED,
        );
        table.apply_loads(counts(&[("a", 0), ("b", 0), ("c", 0)]), at(1));
        let drains: Vec<Drain> = table.snapshot().servers.iter().map(|s| s.drain).collect();
        assert_eq!(
            drains,
            [
                Drain {
                    by_config: false,
                    by_admin: true
                },
                Drain {
                    by_config: true,
                    by_admin: false
                },
                Drain::default(),
            ]
        );
        assert_eq!(place_stored(&mut table, 2), ["c", "c"]);

        // Undraining b by Admin leaves the config's drain in place.
        let drain = table.set_draining("b", false).expect("b is configured");
        assert_eq!(
            drain,
            Drain {
                by_config: true,
                by_admin: false
            }
        );
        assert!(drain.any());
        let drain = table.set_draining("a", false).expect("a is configured");
        assert!(!drain.any());
        assert_eq!(table.place(9).expect("a is back").name, "a");
    }

    #[test]
    fn draining_an_unknown_server_is_an_error() {
        let mut table = polled(&[("a", 0)]);
        let err = table.set_draining("zz", true).expect_err("not configured");
        assert_eq!(err.to_string(), "no chat server is named \"zz\"");
    }

    #[test]
    fn a_removed_server_forgets_its_drain() {
        let mut table = polled(&[("a", 0), ("b", 0)]);
        table.set_draining("a", true).expect("a is configured");
        table.replace_servers(vec![server("b", 2)], false, StrategyKind::default(), SEED);
        table.replace_servers(
            vec![server("a", 1), server("b", 2)],
            false,
            StrategyKind::default(),
            SEED,
        );
        assert_eq!(table.snapshot().servers[0].drain, Drain::default());
    }

    #[test]
    fn a_reload_applies_policies_and_the_strategy() {
        let mut table = polled(&[("a", 0), ("b", 0)]);
        place_stored(&mut table, 2);
        let weighted = crate::strategy::by_name("weighted").expect("a strategy");
        table.replace_servers(
            vec![steered("a", 1, 1, 0, false), steered("b", 2, 4, 3, false)],
            false,
            weighted,
            SEED,
        );
        let snapshot = table.snapshot();
        assert_eq!(snapshot.strategy, weighted);
        let b = &snapshot.servers[1];
        assert_eq!(
            (
                b.server.policy.weight.get(),
                b.server.policy.max_connections
            ),
            (4, 3)
        );
        assert_eq!(
            b.load.assigned_since_poll, 1,
            "the count belongs to the name"
        );
        // a: 1/1, b: 1/4 -> b, until b is full at 3.
        assert_eq!(place_stored(&mut table, 3), ["b", "b", "a"]);
    }

    #[test]
    fn the_snapshot_says_why_a_server_cannot_take_a_user() {
        let servers = vec![
            steered("a", 1, 1, 1, false),
            steered("b", 2, 1, 0, true),
            server("c", 3),
        ];
        let table = polled_with(servers, &[("a", 1), ("b", 0), ("c", 4)], "least_loaded");
        let availability: Vec<Availability> = table
            .snapshot()
            .servers
            .iter()
            .map(|s| s.availability)
            .collect();
        assert_eq!(
            availability,
            [
                Availability::Full { load: 1, max: 1 },
                Availability::Draining,
                Availability::Choosable(4),
            ]
        );
    }
}
