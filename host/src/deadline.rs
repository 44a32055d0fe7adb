//! How long a call into the module may run, measured on the module's own
//! work rather than on the wall clock.
//!
//! The epoch clock (`swap/pool.rs`, one tick every [`TICK`]) is wall time: a
//! worker that the OS deschedules, or that waits on a page fault while a
//! loader maps a new image, sees ticks pass while it does nothing. A budget
//! in ticks alone then refuses a 2 µs check because the machine was busy
//! (issue #23). So ticks only say *when to look*: once a call has run for
//! its budget of ticks, the deadline callback reads the thread's CPU clock
//! and lets the call go on until the thread has spent the budget again on
//! the CPU, running it. A runaway module is therefore cut after between one
//! and two budgets of CPU; a call whose thread waited is not cut at all —
//! unless it reaches the wall-time backstop, which bounds a call whatever
//! its CPU did.
//!
//! Reading the thread's CPU clock is a system call (it is not in the vDSO):
//! it happens only in the callback, never on a call that ends within its
//! first budget, so the hot path pays nothing for it.

use std::time::Duration;

use wasmtime::{StoreContextMut, UpdateDeadline};

use super::cpu_time;

/// One epoch tick: the unit of the decision and load time budgets. Coarse
/// on purpose: the clock thread wakes 200 times a second, and a budget is
/// kept to within a tick.
pub const TICK: Duration = Duration::from_millis(5);

/// A budget that never runs out in practice (ticks are milliseconds or more).
const UNBOUNDED_TICKS: u64 = 1 << 48;

/// The time budget of one kind of call (decisions, or loads).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Ticks of wall time before the CPU clock is looked at.
    pub ticks: u64,
    /// CPU time the call's thread may then spend on it.
    pub cpu: Duration,
    /// Ticks of wall time after which the call is cut whatever its CPU.
    pub backstop_ticks: u64,
}

impl Budget {
    /// No bound (the CLI, tests that run without an epoch clock).
    pub const UNBOUNDED: Budget = Budget {
        ticks: UNBOUNDED_TICKS,
        cpu: Duration::MAX,
        backstop_ticks: u64::MAX,
    };

    /// `cpu` of the module's work (looked at after as much wall time), and
    /// at most `wall` of wall time in all.
    pub fn new(cpu: Duration, wall: Duration) -> Budget {
        let ticks = |d: Duration| (d.as_micros() / TICK.as_micros()).max(1) as u64;
        let first = ticks(cpu);
        Budget {
            ticks: first,
            cpu,
            backstop_ticks: ticks(wall).max(first),
        }
    }
}

/// The epoch clock as a count of ticks the host can read (wasmtime does
/// not say what its epoch is): advanced with the engine's epoch, read when
/// a call is armed and when it reaches its deadline.
#[derive(Clone, Debug, Default)]
pub struct Ticks(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl Ticks {
    /// One more tick.
    pub fn advance(&self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Ticks so far.
    pub fn now(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Where the call under way stands against its budget: kept in the
/// store's data, reset when a call is armed, read by the callback.
#[derive(Debug)]
pub struct Running {
    budget: Budget,
    what: &'static str,
    /// The tick the call was armed at.
    armed_at: u64,
    /// The thread's CPU clock when the first budget ran out.
    looked_at: Option<Duration>,
    /// Fault injection: the call is cut at its first look.
    fail: bool,
}

impl Default for Running {
    fn default() -> Self {
        Running {
            budget: Budget::UNBOUNDED,
            what: "call",
            armed_at: 0,
            looked_at: None,
            fail: false,
        }
    }
}

impl Running {
    /// Starts a call of `what` under `budget` at tick `now` (`fail`: cut
    /// it at the first look, for fault injection); the ticks to set as its
    /// epoch deadline.
    pub fn arm(&mut self, budget: Budget, what: &'static str, fail: bool, now: u64) -> u64 {
        *self = Running {
            budget,
            what,
            armed_at: now,
            looked_at: None,
            fail,
        };
        if fail { 0 } else { budget.ticks }
    }

    /// The epoch deadline was reached at tick `now`: go on for some more
    /// ticks, or say why the call is cut. `cpu_now` is the thread's CPU
    /// clock.
    pub fn on_deadline(&mut self, cpu_now: Duration, now: u64) -> Result<u64, String> {
        if self.fail {
            return Err(format!(
                "the {} was interrupted (fault injection)",
                self.what
            ));
        }
        let b = self.budget;
        let elapsed = now.saturating_sub(self.armed_at);
        if elapsed >= b.backstop_ticks {
            return Err(format!(
                "the {} ran for {} ms of wall time, its limit",
                self.what,
                (TICK * u32::try_from(b.backstop_ticks).unwrap_or(u32::MAX)).as_millis()
            ));
        }
        let since = *self.looked_at.get_or_insert(cpu_now);
        let spent = cpu_now.saturating_sub(since);
        if spent >= b.cpu {
            return Err(format!(
                "the {} used {} ms of CPU past its first {} ms, its limit",
                self.what,
                spent.as_millis(),
                b.cpu.as_millis()
            ));
        }
        // Look again when the rest of the CPU budget could be spent, and
        // no later than the backstop.
        let rest = (b.cpu - spent).as_micros() / TICK.as_micros();
        Ok(u64::try_from(rest)
            .unwrap_or(u64::MAX)
            .min(b.backstop_ticks - elapsed)
            .max(1))
    }
}

/// The state a store keeps for its deadline.
pub trait HasDeadline {
    /// The call under way, and the clock.
    fn running(&mut self) -> (&mut Running, &Ticks);
}

/// The callback wasmtime runs when a call reaches its epoch deadline.
pub fn callback<T: HasDeadline>(
    mut cx: StoreContextMut<'_, T>,
) -> wasmtime::Result<UpdateDeadline> {
    let (running, ticks) = cx.data_mut().running();
    match running.on_deadline(cpu_time::thread(), ticks.now()) {
        Ok(more) => Ok(UpdateDeadline::Continue(more)),
        Err(why) => Err(wasmtime::Error::msg(why)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_call_whose_thread_waited_goes_on() {
        let mut r = Running::default();
        assert_eq!(
            r.arm(Budget::new(50 * MS, 2000 * MS), "decision", false, 7),
            10
        );
        // 50 ms of wall time passed; the thread had used 1 ms of CPU in all.
        let more = r.on_deadline(MS, 17).expect("goes on");
        assert!(more >= 1);
        // Later looks, up to 1.5 s: still hardly any CPU.
        for tick in (17..307).step_by(10) {
            r.on_deadline(2 * MS, tick).expect("goes on");
        }
    }

    #[test]
    fn a_call_that_spins_is_cut_after_its_cpu_budget() {
        let mut r = Running::default();
        r.arm(Budget::new(50 * MS, 2000 * MS), "decision", false, 0);
        let start = 100 * MS;
        r.on_deadline(start, 10)
            .expect("first look: the CPU budget starts");
        r.on_deadline(start + 30 * MS, 16)
            .expect("30 ms of CPU: goes on");
        let why = r.on_deadline(start + 50 * MS, 20).expect_err("50 ms: cut");
        assert!(why.contains("CPU"), "{why}");
    }

    #[test]
    fn the_wall_backstop_cuts_whatever_the_cpu() {
        let mut r = Running::default();
        r.arm(Budget::new(50 * MS, 200 * MS), "decision", false, 100);
        r.on_deadline(MS, 110).expect("within the backstop");
        // The thread was descheduled past the backstop (40 ticks).
        let why = r.on_deadline(MS, 140).expect_err("cut");
        assert!(why.contains("wall time"), "{why}");
        // Extensions never reach past it.
        r.arm(Budget::new(50 * MS, 200 * MS), "decision", false, 0);
        assert_eq!(r.on_deadline(MS, 35), Ok(5));
    }

    #[test]
    fn fault_injection_cuts_at_the_first_look() {
        let mut r = Running::default();
        assert_eq!(
            r.arm(Budget::new(50 * MS, 2000 * MS), "decision", true, 0),
            0
        );
        assert!(r.on_deadline(Duration::ZERO, 0).is_err());
        // The next call is not affected.
        r.arm(Budget::new(50 * MS, 2000 * MS), "decision", false, 0);
        assert!(r.on_deadline(Duration::ZERO, 10).is_ok());
    }

    #[test]
    fn unbounded_never_cuts() {
        let mut r = Running::default();
        r.arm(Budget::UNBOUNDED, "decision", false, 0);
        assert!(
            r.on_deadline(Duration::from_secs(1_000_000), 1 << 50)
                .is_ok()
        );
    }
}
