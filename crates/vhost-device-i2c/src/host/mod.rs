//! Host backends behind the core's `I2cAdapter` trait: Linux i2c-dev adapters ([`linux`])
//! and simulated devices ([`sim`]), and the [`Router`] that gives the guest one virtual bus:
//! every configured address routed to its adapter.
//!
//! Adapters are shared by all sockets; each sits behind its own mutex so that transfers to
//! one adapter from several guests are serialized while different adapters run in parallel.

pub mod error;
pub mod linux;
pub mod sim;

use std::sync::{Arc, Mutex, PoisonError};

use log::info;
use virtio_i2c_core::{Address, I2cAdapter, Message};
use virtio_i2c_core::{ExecError, execute};

use error::AdapterError;
use linux::{AdapterSpec, LinuxAdapter, OpenError};
use sim::{Model, SimAdapter};

/// An adapter the router can drive, shared by every socket (each behind its own mutex).
pub type SharedAdapter = Arc<Mutex<dyn I2cAdapter<Error = AdapterError> + Send>>;

/// Why a group could not be run.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// An address nobody configured.
    #[error("no device configured at {0}")]
    Unrouted(Address),
    /// One group addresses devices on different adapters: one transfer cannot span them.
    #[error("group spans several adapters")]
    SpansAdapters,
    /// The adapter refused or failed.
    #[error(transparent)]
    Exec(#[from] ExecError<AdapterError>),
}

/// Address routing plus the adapters: the virtual bus the guest sees.
pub struct Router {
    routes: [Option<u8>; 128],
    adapters: Vec<SharedAdapter>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("adapters", &self.adapters.len())
            .finish_non_exhaustive()
    }
}

/// Why the bus could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A host adapter could not be opened or a device is unusable.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// More adapters than the routing table can number.
    #[error("too many adapters")]
    TooManyAdapters(#[from] std::num::TryFromIntError),
}

impl Router {
    /// Opens every host adapter and builds the simulated devices (before any socket exists).
    pub fn open(
        adapters: &[AdapterSpec],
        simulated: &[(Model, Address)],
    ) -> Result<Self, SetupError> {
        let mut router = Router {
            routes: [None; 128],
            adapters: Vec::new(),
        };
        for spec in adapters {
            let adapter = LinuxAdapter::open(&spec.bus, &spec.addrs)?;
            info!(
                "host adapter {} ({}): devices {}",
                adapter.path().display(),
                adapter.name(),
                list(&spec.addrs)
            );
            router.add(Arc::new(Mutex::new(adapter)), &spec.addrs)?;
        }
        if !simulated.is_empty() {
            for (model, addr) in simulated {
                info!("simulated {} at {addr}", model.name());
            }
            let addrs: Vec<Address> = simulated.iter().map(|(_, a)| *a).collect();
            router.add(Arc::new(Mutex::new(SimAdapter::new(simulated))), &addrs)?;
        }
        Ok(router)
    }

    /// Adds an adapter serving `addrs`.
    pub fn add(&mut self, adapter: SharedAdapter, addrs: &[Address]) -> Result<(), SetupError> {
        let id = u8::try_from(self.adapters.len())?;
        self.adapters.push(adapter);
        for a in addrs {
            if let Some(r) = self.routes.get_mut(a.index()) {
                *r = Some(id);
            }
        }
        Ok(())
    }

    fn route(&self, addr: Address) -> Option<&SharedAdapter> {
        let id = (*self.routes.get(addr.index())?)?;
        self.adapters.get(usize::from(id))
    }

    /// Runs one group as one transaction on the adapter its addresses route to.
    pub fn run(&self, msgs: &mut [Message<'_>]) -> Result<(), RouteError> {
        let mut target: Option<&SharedAdapter> = None;
        for m in msgs.iter() {
            let a = self.route(m.addr).ok_or(RouteError::Unrouted(m.addr))?;
            match target {
                Some(t) if !Arc::ptr_eq(t, a) => return Err(RouteError::SpansAdapters),
                _ => target = Some(a),
            }
        }
        let Some(adapter) = target else {
            return Ok(());
        };
        // A panic while holding the lock cannot leave an adapter half-configured in a way
        // the next transfer depends on, so a poisoned lock is used as is.
        let mut guard = adapter.lock().unwrap_or_else(PoisonError::into_inner);
        execute(&mut *guard, msgs)?;
        Ok(())
    }
}

fn list(addrs: &[Address]) -> String {
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
