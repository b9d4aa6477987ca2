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

use std::collections::HashMap;
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

/// How the strategy sees `entry`: its load if it may take a user, and its weight.
fn candidate_of(entry: &ServerEntry) -> Candidate {
    Candidate {
        load: entry.availability().choosable_load(),
        weight: entry.server.policy.weight,
    }
}

/// Each server's place in `servers`, by name (names are unique: the config says so).
fn index_of(servers: &[ServerEntry]) -> HashMap<String, usize> {
    servers
        .iter()
        .enumerate()
        .map(|(i, entry)| (entry.server.name.clone(), i))
        .collect()
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
    /// The registry stopped before it placed the user: the server is
    /// shutting down.
    Stopped,
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
            PlacementError::Stopped => write!(f, "the server is shutting down"),
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
    /// Each server as the strategy sees it, index for index with `servers`,
    /// while `candidates_fresh`. A placement or a settle updates its one
    /// server here; what changes many servers at once (a poll, probes, a
    /// reload) marks it stale, and the next placement refills it. Refilling
    /// it for every placement cost 2.7 us per call with 1000 servers.
    candidates: Vec<Candidate>,
    candidates_fresh: bool,
    /// Where each server is in `servers`, by name: settles, polls and probes
    /// name their server, and a scan of 1000 names per settle cost more than
    /// the choice itself.
    index: HashMap<String, usize>,
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
        let servers: Vec<ServerEntry> = servers
            .into_iter()
            .map(|server| ServerEntry::new(server, probing))
            .collect();
        ServerTable {
            index: index_of(&servers),
            servers,
            probing,
            last_poll: None,
            load_hash_present: true,
            polls: OutageTracker::default(),
            strategy_kind: strategy,
            strategy: strategy.build(seed),
            candidates: Vec::new(),
            candidates_fresh: false,
        }
    }

    fn entry_mut(&mut self, name: &str) -> Option<&mut ServerEntry> {
        // Many servers change: the candidates are refilled at the next placement.
        self.candidates_fresh = false;
        let i = *self.index.get(name)?;
        self.servers.get_mut(i)
    }

    /// Server `i` changed: its candidate follows (when the list is fresh).
    fn refresh_candidate(&mut self, i: usize) {
        if self.candidates_fresh
            && let (Some(candidate), Some(entry)) =
                (self.candidates.get_mut(i), self.servers.get(i))
        {
            *candidate = candidate_of(entry);
        }
    }

    /// Lets the strategy choose a server for `uid` among those that may
    /// take a user, and counts the placement in flight there until
    /// [`settle`](Self::settle).
    pub fn place(&mut self, uid: i32) -> Result<Arc<ChatServer>, PlacementError> {
        if uid <= 0 {
            return Err(PlacementError::InvalidUid);
        }
        if !self.candidates_fresh {
            self.candidates.clear();
            self.candidates
                .extend(self.servers.iter().map(candidate_of));
            self.candidates_fresh = true;
        }
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
        let server = Arc::clone(&entry.server);
        self.refresh_candidate(index);
        Ok(server)
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
        let Some(&i) = self.index.get(name) else {
            return;
        };
        let entry = &mut self.servers[i];
        entry.load.in_flight = entry.load.in_flight.saturating_sub(1);
        if stored {
            entry.load.assigned_since_poll += 1;
        }
        self.refresh_candidate(i);
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
            self.candidates_fresh = false;
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
        self.candidates_fresh = false;
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
        self.index = index_of(&self.servers);
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
mod tests;
