//! Hosting the engine's WebAssembly module with wasmtime.
//!
//! The expensive part is done once: [`PolicyModule::new`] compiles the
//! module and pre-links it ([`wasmtime::InstancePre`]). Each
//! [`PolicyInstance`] is then a cheap instantiation with its own store and
//! memory limit, holding one loaded snapshot; every call copies a
//! postcard-encoded request into linear memory and decodes the result in
//! place. The ABI is described in `policy-wasm/src/abi.rs`.
//!
//! A snapshot is loaded once ([`PolicyModule::load_image`]) and every
//! instance that serves it starts from the loaded memory, copy-on-write
//! ([`PolicyModule::instantiate_image`], see `memory_image/`).

use policy_wasm::wire::{ListQuery, ListResult, PermissionsQuery, encode_into, status};
use policy_wasm::{Decision, Explanation, Request};
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;
use wasmtime::{
    Config, Engine, Global, InstancePre, Linker, Memory, Module, Store, StoreLimits,
    StoreLimitsBuilder, TypedFunc,
};

use super::deadline::{self, Budget, HasDeadline, Running, Ticks};
use super::image_module::{self, ImageModule};
use super::memory_image::{self, Backing, MemoryImage};

/// The engine's module, built from this checkout by `host/build.rs`.
pub static POLICY_MODULE: &[u8] = include_bytes!(env!("POLICY_WASM_MODULE"));

/// Why a call into the module failed. Callers enforcing decisions must
/// treat every error as a denial (fail closed).
#[derive(Debug, Error)]
pub enum HostError {
    /// The module did not compile or link.
    #[error("the policy module could not be compiled: {0}")]
    Compile(String),
    /// Instantiation failed.
    #[error("the policy module could not be instantiated: {0}")]
    Instantiate(String),
    /// The module trapped (or ran out of its budget).
    #[error("the policy module trapped: {0}")]
    Trap(String),
    /// No snapshot is loaded in this instance.
    #[error("no snapshot is loaded")]
    NoSnapshot,
    /// The snapshot was refused; the previous one keeps serving.
    #[error("snapshot refused: {0}")]
    Load(String),
    /// The module returned an unexpected status or malformed output.
    #[error("the policy module answered status {0}")]
    Status(i32),
    /// The module's output did not decode.
    #[error("the policy module's answer did not decode: {0}")]
    Decode(String),
}

fn trap(e: wasmtime::Error) -> HostError {
    HostError::Trap(format!("{e:#}"))
}

/// Store data: the memory limit, and the call under way against its
/// time budget.
pub struct HostState {
    limits: StoreLimits,
    running: Running,
    ticks: Ticks,
}

impl HasDeadline for HostState {
    fn running(&mut self) -> (&mut Running, &Ticks) {
        (&mut self.running, &self.ticks)
    }
}

impl HostState {
    /// Arms the call about to be made; the ticks of its epoch deadline.
    fn arm(&mut self, budget: Budget, what: &'static str, fail: bool) -> u64 {
        let now = self.ticks.now();
        self.running.arm(budget, what, fail, now)
    }
}

/// Limits of one instance.
///
/// Time is looked at in epoch ticks: the host that wants calls bounded
/// advances the engine's epoch on a clock ([`PolicyModule::tick`]); a call
/// still running after its budget of ticks is then held to its thread's
/// CPU time (`deadline.rs`): it is cut when it has used its budget of CPU,
/// or reached the wall-time backstop. Without a ticker the budgets never
/// run out (the CLI).
#[derive(Clone, Copy, Debug)]
pub struct InstanceLimits {
    /// Largest linear memory, in bytes.
    pub max_memory: usize,
    /// A decision call (check, explain, permissions, list).
    pub call: Budget,
    /// Loading a snapshot or applying a delta.
    pub load: Budget,
}

impl Default for InstanceLimits {
    /// 1 GiB: twenty times what the 100k-user benchmark snapshot needs;
    /// no time budget.
    fn default() -> Self {
        InstanceLimits {
            max_memory: 1 << 30,
            call: Budget::UNBOUNDED,
            load: Budget::UNBOUNDED,
        }
    }
}

/// The compiled, pre-linked module; clone it freely (it is reference-counted).
#[derive(Clone)]
pub struct PolicyModule {
    engine: Engine,
    pre: InstancePre<HostState>,
    /// The data segments a fresh instance gets and the mutable globals an
    /// image records.
    layout: Arc<ImageModule>,
    /// The epoch, as the host counts it.
    ticks: Ticks,
}

impl PolicyModule {
    /// Compiles the embedded module.
    ///
    /// Built with the `testing` feature (the test suites), it compiles
    /// through wasmtime's on-disk cache in the system's temporary
    /// directory: the suites start about fifty gateways, and Cranelift
    /// unoptimized takes 1.7 s for each. The cache is keyed by the module's
    /// bytes and the compiler's configuration, so a changed module is
    /// compiled again.
    pub fn new() -> Result<Self, HostError> {
        #[cfg(feature = "testing")]
        {
            let mut config = wasmtime::CacheConfig::new();
            config.with_directory(std::env::temp_dir().join("portcullis-test-module-cache"));
            if let Ok(cache) = wasmtime::Cache::new(config) {
                return Self::build(POLICY_MODULE, Some(cache));
            }
        }
        Self::from_bytes(POLICY_MODULE)
    }

    /// Compiles the embedded module through wasmtime's on-disk compilation
    /// cache (`~/.cache/wasmtime`), for short-lived processes such as
    /// `portcullis check`; without a usable cache it simply compiles.
    pub fn new_cached() -> Result<Self, HostError> {
        let cache = wasmtime::Cache::new(wasmtime::CacheConfig::new()).ok();
        Self::build(POLICY_MODULE, cache)
    }

    /// Compiles a module (a hostile or replacement module in tests).
    pub fn from_bytes(wasm: &[u8]) -> Result<Self, HostError> {
        Self::build(wasm, None)
    }

    fn build(wasm: &[u8], cache: Option<wasmtime::Cache>) -> Result<Self, HostError> {
        let (rewritten, layout) = image_module::prepare(wasm).map_err(HostError::Compile)?;
        let mut config = Config::new();
        // Every instance's memory is ours to map (fresh, or an image of a
        // loaded snapshot); wasmtime's own copy-on-write initialization
        // works only on memories it maps itself.
        config.with_host_memory(Arc::new(memory_image::Creator));
        config.memory_init_cow(false);
        config.cranelift_opt_level(wasmtime::OptLevel::Speed);
        config.cache(cache);
        // Calls are bounded by epoch interruption rather than fuel: a check
        // at the epoch costs a load and a compare per loop head, fuel costs
        // a counter update per block.
        config.epoch_interruption(true);
        let engine = Engine::new(&config).map_err(|e| HostError::Compile(format!("{e:#}")))?;
        let module =
            Module::new(&engine, &rewritten).map_err(|e| HostError::Compile(format!("{e:#}")))?;
        // The module imports nothing: no clock, no I/O.
        let linker = Linker::new(&engine);
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| HostError::Compile(format!("{e:#}")))?;
        Ok(PolicyModule {
            engine,
            pre,
            layout: Arc::new(layout),
            ticks: Ticks::default(),
        })
    }

    /// Advances the epoch by one tick: every call running in any instance
    /// of this module spends one tick of its budget.
    pub fn tick(&self) {
        self.ticks.advance();
        self.engine.increment_epoch();
    }

    /// A fresh instance with no snapshot loaded.
    pub fn instantiate(&self, limits: InstanceLimits) -> Result<PolicyInstance, HostError> {
        let mut instance = self.instantiate_backed(Backing::Fresh, limits)?;
        instance.write_segments(&self.layout)?;
        Ok(instance)
    }

    /// Loads `bytes` into a fresh instance whose memory is an in-memory
    /// file and keeps that memory as an image to start instances from.
    /// The one full load of a swap; fails as [`PolicyInstance::load_snapshot`]
    /// does.
    pub fn load_image(
        &self,
        bytes: &[u8],
        limits: InstanceLimits,
    ) -> Result<Arc<MemoryImage>, HostError> {
        let file = memory_image::new_file()
            .map_err(|e| HostError::Instantiate(format!("cannot create a memory image: {e}")))?;
        let mut loader = self.instantiate_backed(Backing::Writable(Arc::clone(&file)), limits)?;
        loader.write_segments(&self.layout)?;
        loader.load_snapshot(bytes)?;
        let len = loader.memory_size();
        let globals = loader
            .globals
            .iter()
            .map(|g| g.get(&mut loader.store))
            .collect();
        // The loader's mapping must be gone before the file is sealed.
        drop(loader);
        let image = memory_image::seal(file, len, globals)
            .map_err(|e| HostError::Instantiate(format!("cannot seal a memory image: {e}")))?;
        Ok(Arc::new(image))
    }

    /// Applies a delta to the engine in `image` (the base's), in an
    /// instance started from it, and keeps the result as a new image: the
    /// base's pages and an overlay of those the delta changed
    /// (`memory_image::derive`). `input` is a postcard
    /// [`policy_wasm::wire::PatchInput`]. Fails, changing nothing, when the
    /// engine does not apply it (the caller then loads the target).
    pub fn patch_image(
        &self,
        image: &Arc<MemoryImage>,
        input: &[u8],
        limits: InstanceLimits,
    ) -> Result<(Arc<MemoryImage>, memory_image::Derived), HostError> {
        let mut patcher = self.instantiate_mapped(image, limits, true)?;
        patcher.apply_delta(input)?;
        let globals = patcher
            .globals
            .iter()
            .map(|g| g.get(&mut patcher.store))
            .collect();
        let memory = patcher.memory.data(&patcher.store);
        let (image, derived) = memory_image::derive(image, memory, globals)
            .map_err(|e| HostError::Instantiate(format!("cannot write a memory image: {e}")))?;
        Ok((Arc::new(image), derived))
    }

    /// An instance that starts with `image` in its memory: the snapshot
    /// is loaded, and the memory is the image's pages until written.
    pub fn instantiate_image(
        &self,
        image: &Arc<MemoryImage>,
        limits: InstanceLimits,
    ) -> Result<PolicyInstance, HostError> {
        self.instantiate_mapped(image, limits, false)
    }

    fn instantiate_mapped(
        &self,
        image: &Arc<MemoryImage>,
        limits: InstanceLimits,
        lazy: bool,
    ) -> Result<PolicyInstance, HostError> {
        let backing = Backing::Image {
            image: Arc::clone(image),
            lazy,
        };
        let mut instance = self.instantiate_backed(backing, limits)?;
        if instance.globals.len() != image.globals.len() {
            return Err(HostError::Instantiate(
                "the image was taken from another module".into(),
            ));
        }
        for (global, value) in instance.globals.iter().zip(&image.globals) {
            global
                .set(&mut instance.store, *value)
                .map_err(|e| HostError::Instantiate(format!("{e:#}")))?;
        }
        Ok(instance)
    }

    fn instantiate_backed(
        &self,
        backing: Backing,
        limits: InstanceLimits,
    ) -> Result<PolicyInstance, HostError> {
        let mut store = Store::new(
            &self.engine,
            HostState {
                limits: StoreLimitsBuilder::new()
                    .memory_size(limits.max_memory)
                    .build(),
                running: Running::default(),
                ticks: self.ticks.clone(),
            },
        );
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_callback(deadline::callback::<HostState>);
        let ticks = store.data_mut().arm(limits.load, "load", false);
        store.set_epoch_deadline(ticks);
        let (inst, made) = memory_image::backed_by(backing, || self.pre.instantiate(&mut store));
        let inst = inst.map_err(|e| HostError::Instantiate(format!("{e:#}")))?;
        let globals = self
            .layout
            .globals
            .iter()
            .map(|name| {
                inst.get_global(&mut store, name)
                    .ok_or_else(|| HostError::Instantiate(format!("no global {name}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let get = |store: &mut Store<HostState>, name: &str| {
            inst.get_typed_func::<u32, i32>(&mut *store, name)
                .map_err(|e| HostError::Instantiate(format!("{name}: {e:#}")))
        };
        let get64 = |store: &mut Store<HostState>, name: &str| {
            inst.get_typed_func::<u32, i64>(&mut *store, name)
                .map_err(|e| HostError::Instantiate(format!("{name}: {e:#}")))
        };
        let memory = inst
            .get_memory(&mut store, "memory")
            .ok_or_else(|| HostError::Instantiate("no exported memory".into()))?;
        // The memory the instance runs on must be the one made for its
        // backing (an image, a fresh or a written-through memory), not
        // another one wasmtime made some other way.
        if made != Some(memory.data_ptr(&store) as usize) {
            return Err(HostError::Instantiate(
                "the instance does not map the memory made for it".into(),
            ));
        }
        Ok(PolicyInstance {
            input: get(&mut store, "pc_input")?,
            load: get(&mut store, "pc_load")?,
            load_hashed: inst
                .get_typed_func::<u32, i32>(&mut store, "pc_load_hashed")
                .ok(),
            apply_delta: inst
                .get_typed_func::<u32, i32>(&mut store, "pc_apply_delta")
                .ok(),
            check: get64(&mut store, "pc_check")?,
            batch: get64(&mut store, "pc_check_batch")?,
            explain: get64(&mut store, "pc_explain")?,
            permissions: get64(&mut store, "pc_permissions")?,
            list: get64(&mut store, "pc_list")?,
            result: inst
                .get_typed_func::<(), i32>(&mut store, "pc_result")
                .map_err(|e| HostError::Instantiate(format!("pc_result: {e:#}")))?,
            result_len: inst
                .get_typed_func::<(), i32>(&mut store, "pc_result_len")
                .map_err(|e| HostError::Instantiate(format!("pc_result_len: {e:#}")))?,
            release: inst
                .get_typed_func::<(), ()>(&mut store, "pc_release_input")
                .map_err(|e| HostError::Instantiate(format!("pc_release_input: {e:#}")))?,
            revision: inst
                .get_typed_func::<(), i64>(&mut store, "pc_revision")
                .map_err(|e| HostError::Instantiate(format!("pc_revision: {e:#}")))?,
            memory,
            globals,
            store,
            limits,
            interrupt_next: false,
            #[cfg(feature = "testing")]
            stall_next: None,
            scratch: Vec::with_capacity(256),
            input_buf: None,
        })
    }
}

/// One instance of the module with its own memory and loaded snapshot.
/// Not shared between threads: give each worker its own.
pub struct PolicyInstance {
    store: Store<HostState>,
    memory: Memory,
    /// The module's mutable globals (recorded with an image).
    globals: Vec<Global>,
    input: TypedFunc<u32, i32>,
    load: TypedFunc<u32, i32>,
    /// `pc_load_hashed`, when the module has it (a test's module may not).
    load_hashed: Option<TypedFunc<u32, i32>>,
    /// `pc_apply_delta`, when the module has it.
    apply_delta: Option<TypedFunc<u32, i32>>,
    check: TypedFunc<u32, i64>,
    batch: TypedFunc<u32, i64>,
    explain: TypedFunc<u32, i64>,
    permissions: TypedFunc<u32, i64>,
    list: TypedFunc<u32, i64>,
    result: TypedFunc<(), i32>,
    result_len: TypedFunc<(), i32>,
    release: TypedFunc<(), ()>,
    revision: TypedFunc<(), i64>,
    limits: InstanceLimits,
    /// Fault injection: the next call gets no budget and traps.
    interrupt_next: bool,
    /// Fault injection: the next call's thread sleeps this long once its
    /// deadline is armed, as if the OS had descheduled it.
    #[cfg(feature = "testing")]
    stall_next: Option<std::time::Duration>,
    scratch: Vec<u8>,
    /// Address and length of the module's input buffer, while valid.
    input_buf: Option<(usize, usize)>,
}

impl PolicyInstance {
    /// Sets the time budget of the decision call about to be made.
    fn arm(&mut self) {
        let fail = std::mem::take(&mut self.interrupt_next);
        let ticks = self
            .store
            .data_mut()
            .arm(self.limits.call, "decision", fail);
        self.store.set_epoch_deadline(ticks);
        #[cfg(feature = "testing")]
        if let Some(stall) = self.stall_next.take() {
            std::thread::sleep(stall);
        }
    }

    /// Sets the time budget of a load or a delta about to be applied.
    fn arm_load(&mut self) {
        let ticks = self.store.data_mut().arm(self.limits.load, "load", false);
        self.store.set_epoch_deadline(ticks);
    }

    /// Makes the next decision call trap as if it had run out of time: the
    /// real module is interrupted by wasmtime, so callers can test their
    /// trap handling (fail closed, rebuild) end to end.
    #[cfg(feature = "testing")]
    pub fn interrupt_next_call(&mut self) {
        self.interrupt_next = true;
    }

    /// Makes the next decision call's thread wait `stall` after its
    /// deadline is armed, as a worker descheduled by a busy machine (or
    /// blocked on a page a loader holds) would: wall time passes, the
    /// call's own work does not.
    #[cfg(feature = "testing")]
    pub fn stall_next_call(&mut self, stall: std::time::Duration) {
        self.stall_next = Some(stall);
    }

    /// Writes the module's data segments, as instantiation would have.
    fn write_segments(&mut self, layout: &ImageModule) -> Result<(), HostError> {
        for (offset, bytes) in &layout.segments {
            self.memory
                .write(&mut self.store, *offset, bytes)
                .map_err(|e| HostError::Instantiate(format!("data segment at {offset}: {e}")))?;
        }
        Ok(())
    }

    /// The module's input buffer for `len` bytes (reused while it fits).
    fn input_ptr(&mut self, len: usize) -> Result<usize, HostError> {
        match self.input_buf {
            // The module's buffer is big enough and has not moved.
            Some((ptr, cap)) if len <= cap => Ok(ptr),
            _ => {
                let n = u32::try_from(len).map_err(|_| HostError::Status(status::BAD_INPUT))?;
                let ptr = self.input.call(&mut self.store, n).map_err(trap)? as u32 as usize;
                self.input_buf = Some((ptr, len));
                Ok(ptr)
            }
        }
    }

    fn write_input(&mut self, bytes: &[u8]) -> Result<(), HostError> {
        let ptr = self.input_ptr(bytes.len())?;
        self.memory
            .write(&mut self.store, ptr, bytes)
            .map_err(|e| HostError::Trap(e.to_string()))
    }

    fn result_bytes(&mut self, len: i32) -> Result<&[u8], HostError> {
        let ptr = self.result.call(&mut self.store, ()).map_err(trap)? as u32 as usize;
        self.memory
            .data(&self.store)
            .get(ptr..ptr + len as usize)
            .ok_or(HostError::Status(status::BAD_INPUT))
    }

    /// Loads a snapshot; on failure the previous snapshot keeps serving.
    ///
    /// The body's SHA-256 is computed here, natively (`sha2` uses the
    /// CPU's SHA extensions), and handed to the module with the snapshot:
    /// in WebAssembly it took about a quarter of a load (35 ms of 150 on
    /// the large directory).
    pub fn load_snapshot(&mut self, bytes: &[u8]) -> Result<(), HostError> {
        let digest = portcullis_snapshots::header::Header::parse(bytes)
            .ok()
            .and_then(|h| bytes.get(h.body_range()))
            .map(portcullis_snapshots::body_digest);
        // A snapshot gets a buffer of its own size, freed after loading.
        self.input_buf = None;
        self.arm_load();
        let (load, len) = match (digest, self.load_hashed.clone()) {
            (Some(digest), Some(load_hashed)) => {
                let len = bytes.len() + digest.len();
                let ptr = self.input_ptr(len)?;
                self.memory
                    .write(&mut self.store, ptr, &digest)
                    .and_then(|()| {
                        self.memory
                            .write(&mut self.store, ptr + digest.len(), bytes)
                    })
                    .map_err(|e| HostError::Trap(e.to_string()))?;
                (load_hashed, len)
            }
            // An unreadable header: the module says what is wrong with it.
            _ => {
                self.write_input(bytes)?;
                (self.load.clone(), bytes.len())
            }
        };
        self.input_buf = None;
        let rc = load.call(&mut self.store, len as u32).map_err(trap);
        // Give the snapshot-sized buffer back to the module's allocator.
        self.release.call(&mut self.store, ()).map_err(trap)?;
        match rc? {
            0 => Ok(()),
            status::LOAD_FAILED => {
                let len = self.result_len.call(&mut self.store, ()).map_err(trap)?;
                let msg = String::from_utf8_lossy(self.result_bytes(len)?).into_owned();
                Err(HostError::Load(msg))
            }
            other => Err(HostError::Status(other)),
        }
    }

    /// Applies a delta in place (`input`: a postcard
    /// [`policy_wasm::wire::PatchInput`]); on failure the engine is
    /// unchanged and the error says why.
    pub fn apply_delta(&mut self, input: &[u8]) -> Result<(), HostError> {
        let apply = self
            .apply_delta
            .clone()
            .ok_or_else(|| HostError::Load("this module cannot apply deltas".into()))?;
        self.write_input(input)?;
        self.arm_load();
        match apply
            .call(&mut self.store, input.len() as u32)
            .map_err(trap)?
        {
            0 => Ok(()),
            status::NOT_APPLIED => {
                let len = self.result_len.call(&mut self.store, ()).map_err(trap)?;
                let msg = String::from_utf8_lossy(self.result_bytes(len)?).into_owned();
                Err(HostError::Load(msg))
            }
            other => Err(HostError::Status(other)),
        }
    }

    /// Current size of the instance's linear memory in bytes (it only grows).
    pub fn memory_size(&self) -> usize {
        self.memory.data_size(&self.store)
    }

    /// The loaded revision, if any.
    pub fn revision(&mut self) -> Result<Option<u64>, HostError> {
        let ticks = self.store.data_mut().arm(self.limits.call, "call", false);
        self.store.set_epoch_deadline(ticks);
        let r = self.revision.call(&mut self.store, ()).map_err(trap)?;
        Ok((r >= 0).then_some(r as u64))
    }

    fn call<I: Serialize, O: DeserializeOwned>(
        &mut self,
        which: Which,
        input: &I,
    ) -> Result<O, HostError> {
        self.arm();
        let mut buf = std::mem::take(&mut self.scratch);
        let written = encode_into(input, &mut buf)
            .map_err(|e| HostError::Decode(e.to_string()))
            .and_then(|()| self.write_input(&buf));
        self.scratch = buf;
        written?;
        let f = match which {
            Which::Check => &self.check,
            Which::Batch => &self.batch,
            Which::Explain => &self.explain,
            Which::Permissions => &self.permissions,
            Which::List => &self.list,
        };
        let len = self.scratch.len() as u32;
        let rc = f.call(&mut self.store, len).map_err(trap)?;
        self.decode_result(rc)
    }

    /// Sends raw bytes as a `pc_check` request (for tests and fuzzing of the
    /// module's request decoder): malformed input must come back as a
    /// status, never a trap.
    pub fn check_raw(&mut self, bytes: &[u8]) -> Result<Decision, HostError> {
        self.arm();
        self.write_input(bytes)?;
        let rc = self
            .check
            .call(&mut self.store, bytes.len() as u32)
            .map_err(trap)?;
        self.decode_result(rc)
    }

    /// Decodes the output a call returned as a packed address and length,
    /// or turns its status into an error.
    fn decode_result<O: DeserializeOwned>(&self, rc: i64) -> Result<O, HostError> {
        if rc == i64::from(status::NO_SNAPSHOT) {
            return Err(HostError::NoSnapshot);
        }
        if rc < 0 {
            return Err(HostError::Status(rc as i32));
        }
        let (ptr, len) = ((rc >> 32) as u32 as usize, (rc & 0xffff_ffff) as usize);
        let bytes = self
            .memory
            .data(&self.store)
            .get(ptr..ptr + len)
            .ok_or(HostError::Status(status::BAD_INPUT))?;
        postcard::from_bytes(bytes).map_err(|e| HostError::Decode(e.to_string()))
    }

    /// Decides one request.
    pub fn check(&mut self, req: &Request<'_>) -> Result<Decision, HostError> {
        self.call(Which::Check, req)
    }

    /// Decides many requests in one call.
    pub fn check_batch(&mut self, reqs: &[Request<'_>]) -> Result<Vec<Decision>, HostError> {
        self.call(Which::Batch, &reqs)
    }

    /// Decides and explains one request.
    pub fn explain(&mut self, req: &Request<'_>) -> Result<Explanation, HostError> {
        self.call(Which::Explain, req)
    }

    /// Every action allowed to a principal on a resource.
    pub fn permissions(&mut self, q: &PermissionsQuery<'_>) -> Result<Vec<String>, HostError> {
        self.call(Which::Permissions, q)
    }

    /// Nodes of a kind below a node on which the principal may act.
    pub fn list(&mut self, q: &ListQuery<'_>) -> Result<ListResult, HostError> {
        self.call(Which::List, q)
    }
}

#[derive(Clone, Copy)]
enum Which {
    Check,
    Batch,
    Explain,
    Permissions,
    List,
}
