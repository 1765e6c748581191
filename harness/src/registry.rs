//! Where typed systems meet the rest of the harness: [`SystemEntry::of`]
//! erases a [`System`] type into a [`Configured`] (run, analyze, shape), the
//! [`Registry`] maps names to entries, and [`load`] turns a scenario file
//! into a [`Loaded`] scenario: the plain scenario and its configured system.
//!
//! Everything above this layer (sweeps, shrinking, the CLI, the test entry
//! point) works with `Loaded` scenarios and never sees a system's types.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::error::InputError;
use crate::judge::{self, RunReport};
use crate::knobs::Knobs;
use crate::plan::Plan;
use crate::recording::{FormatOnly, Recording, RECORDING_FORMAT};
use crate::scenario::{self, Scenario, Systems};
use crate::system::{InvariantDoc, Shape, System, SystemDoc};

/// What a run should keep beyond its report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Keep {
    /// The digest's records and the merged timeline (for `--trace` and
    /// `--check-determinism`); costs memory, so sweeps leave it off.
    pub records: bool,
    /// The recording as JSON (for `replay --save`).
    pub recording: bool,
}

/// A run's report, and its recording as JSON when asked for.
pub struct Ran {
    /// The run, judged.
    pub report: RunReport,
    /// The recording as JSON, when [`Keep::recording`] asked for it.
    pub recording: Option<String>,
}

/// A configured system with its types erased, as a loaded scenario holds it.
pub trait Configured: Send + Sync {
    /// The configured system's hosts, events, invariants and probe, which
    /// scenarios are validated against.
    fn shape(&self) -> Shape;
    /// Runs one plan of `scenario` and judges it.
    fn run(&self, scenario: &Scenario, plan: &Plan, keep: Keep) -> Ran;
    /// Judges a saved recording (JSON) again, without simulating.
    fn analyze(&self, scenario: &Scenario, recording: &str, keep: Keep) -> Result<RunReport, String>;
}

/// Adapts a typed [`System`] to [`Configured`].
struct Erased<S: System> {
    system: Arc<S>,
}

impl<S: System> Configured for Erased<S> {
    fn shape(&self) -> Shape {
        Shape::of(&*self.system)
    }

    fn run(&self, scenario: &Scenario, plan: &Plan, keep: Keep) -> Ran {
        let recording = crate::run::record(&self.system, scenario, plan);
        let report = judge::report(&*self.system, scenario, &recording, keep.records);
        let saved = keep.recording.then(|| serde_json::to_string(&recording).expect("recordings serialize"));
        Ran { report, recording: saved }
    }

    fn analyze(&self, scenario: &Scenario, recording: &str, keep: Keep) -> Result<RunReport, String> {
        let recording: Recording<S> = serde_json::from_str(recording)
            .map_err(|error| format!("the recording does not match system {:?}: {error}", S::doc().name))?;
        Ok(judge::report(&*self.system, scenario, &recording, keep.records))
    }
}

/// A system as the registry knows it: its doc, its invariants and how to
/// configure it from `[knobs]`.
pub struct SystemEntry {
    /// The system's documentation; its name is the registry's key.
    pub doc: &'static SystemDoc,
    /// Every invariant the system can check (without `liveness`, which the
    /// harness adds).
    pub invariants: Vec<InvariantDoc>,
    /// Every kind the system's event type can have.
    pub event_kinds: &'static [&'static str],
    configure: Box<ConfigureFn>,
}

/// Validates a scenario's `[knobs]` and builds the configured system.
type ConfigureFn = dyn Fn(&Knobs<'_>) -> Result<Arc<dyn Configured>, InputError> + Send + Sync;

impl SystemEntry {
    /// The entry of system type `S`: its doc and invariants come from the type.
    pub fn of<S: System>() -> SystemEntry {
        SystemEntry {
            doc: S::doc(),
            invariants: S::invariants().iter().map(|i| InvariantDoc { name: i.name, about: i.about }).collect(),
            event_kinds: <S::Event as crate::history::SystemEvent>::KINDS,
            configure: Box::new(|knobs| {
                let system = S::configure(knobs)?;
                Ok(Arc::new(Erased { system: Arc::new(system) }) as Arc<dyn Configured>)
            }),
        }
    }

    /// Validates `[knobs]` and builds the configured system.
    pub fn configure(&self, knobs: &Knobs<'_>) -> Result<Arc<dyn Configured>, InputError> {
        (self.configure)(knobs)
    }
}

/// The systems a binary knows, by name.
#[derive(Default)]
pub struct Registry {
    systems: BTreeMap<&'static str, SystemEntry>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Adds a system; a second system of one name is refused, naming it.
    pub fn register(&mut self, entry: SystemEntry) -> Result<(), String> {
        let name = entry.doc.name;
        if name.is_empty() || name.chars().any(char::is_whitespace) {
            return Err(format!("a system needs a name without spaces, found {name:?}"));
        }
        if self.systems.contains_key(name) {
            return Err(format!("two systems are named {name:?}: each system in a registry needs its own name"));
        }
        let mut seen = Vec::new();
        for invariant in &entry.invariants {
            if invariant.name == crate::system::LIVENESS.name || seen.contains(&invariant.name) {
                return Err(format!(
                    "system {name:?} declares invariant {:?} twice (or as the harness's own)",
                    invariant.name
                ));
            }
            seen.push(invariant.name);
        }
        let documented: Vec<&str> = entry.doc.events.iter().map(|e| e.name).collect();
        for kind in entry.event_kinds {
            if !documented.contains(kind) {
                return Err(format!("system {name:?} has events of kind {kind:?}, which its doc does not list"));
            }
        }
        for kind in documented {
            if !entry.event_kinds.contains(&kind) {
                return Err(format!("system {name:?} documents event kind {kind:?}, which its event type cannot have"));
            }
        }
        self.systems.insert(name, entry);
        Ok(())
    }

    /// Adds a system, or panics naming the clash: for registries built in
    /// code, where two systems of one name are a programming mistake.
    pub fn with(mut self, entry: SystemEntry) -> Registry {
        if let Err(error) = self.register(entry) {
            panic!("{error}");
        }
        self
    }

    /// The system named `name`, if registered.
    pub fn get(&self, name: &str) -> Option<&SystemEntry> {
        self.systems.get(name)
    }

    /// The registered systems' names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.systems.keys().copied()
    }

    /// The registered systems, sorted by name.
    pub fn entries(&self) -> impl Iterator<Item = &SystemEntry> {
        self.systems.values()
    }
}

/// A scenario file loaded against a registry: the plain scenario and its
/// configured system. What runs, sweeps and shrinks take.
#[derive(Clone)]
pub struct Loaded {
    /// The scenario file as plain, validated data.
    pub scenario: Scenario,
    /// The system it names, configured from its `[knobs]`.
    pub system: Arc<dyn Configured>,
}

impl Loaded {
    /// The same system with an edited scenario (the shrinker's candidates).
    pub fn with_scenario(&self, scenario: Scenario) -> Loaded {
        Loaded { scenario, system: Arc::clone(&self.system) }
    }
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.scenario.fmt(f)
    }
}

/// The registry as the scenario parser asks for systems; keeps the one it configures.
struct Binder<'a> {
    registry: &'a Registry,
    configured: Option<Arc<dyn Configured>>,
}

impl Systems for Binder<'_> {
    fn names(&self) -> Vec<&'static str> {
        self.registry.names().collect()
    }

    fn configure(&mut self, name: &str, knobs: &Knobs<'_>) -> Option<Result<Shape, InputError>> {
        let entry = self.registry.get(name)?;
        Some(entry.configure(knobs).map(|system| {
            let shape = system.shape();
            self.configured = Some(system);
            shape
        }))
    }
}

/// Reads and validates a scenario file. Runs nothing.
pub fn load(path: &Path, registry: &Registry) -> Result<Loaded, InputError> {
    let source = scenario::read(path)?;
    parse(&path.display().to_string(), &source, registry)
}

/// Validates a scenario from its text; `file` names it in errors and replay commands.
pub fn parse(file: &str, source: &str, registry: &Registry) -> Result<Loaded, InputError> {
    let mut binder = Binder { registry, configured: None };
    let scenario = scenario::parse(file, source, &mut binder)?;
    let system = binder.configured.expect("a parsed scenario configured its system");
    Ok(Loaded { scenario, system })
}

/// Loads a saved recording (`replay --save`) with the scenario it embeds,
/// refusing another format version.
pub fn load_recording(path: &Path, registry: &Registry) -> Result<(Loaded, String), InputError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|error| InputError::new(&file, format!("cannot read the recording: {error}")))?;
    let head: FormatOnly = serde_json::from_str(&text).map_err(|error| {
        InputError::new(&file, format!("not a faultline recording: {error}"))
            .with_help("recordings are written by `faultline replay FILE --seed N --save run.json`")
    })?;
    if head.format != RECORDING_FORMAT {
        return Err(InputError::new(
            &file,
            format!(
                "this recording has format version {}, and this faultline reads version {RECORDING_FORMAT}",
                head.format
            ),
        )
        .with_help("judge it with the faultline that wrote it, or record the run again with this one"));
    }
    let loaded = parse(&head.file, &head.source, registry).map_err(|error| {
        InputError::new(&file, format!("the scenario this recording embeds does not load: {error}"))
    })?;
    Ok((loaded, text))
}
