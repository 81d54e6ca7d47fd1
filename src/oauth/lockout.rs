//! Lockout that spares the real user (checklist 49, 59; OWASP "Slow Down Online Guessing
//! Attacks with Device Cookies"): the pure policy over one stored failure counter, `now` passed in.
//!
//! A user has one counter per device and factor: one for every browser holding a valid device
//! cookie of theirs (a *known device*, see [`super::device_cookie`]) and one shared by everything
//! else (the *unknown devices*: no cookie, a forged or expired one, another user's, and every
//! password grant). Password and second-factor failures count separately. After
//! `max_failures` failures a counter is locked for `duration_secs`; guesses from unknown devices
//! therefore lock the unknown devices only, and the user's own browser still signs in.
//!
//! An attempt is charged *before* the secret is checked (the service writes [`Charge::Open`]'s
//! counter by compare-and-swap), so parallel guesses cannot all pass a read-then-check: at most
//! `max_failures` of them are ever checked. A success then resets the counter; an attempt that
//! could not be checked at all gives its charge back ([`Policy::refund`]).

/// Which secret an attempt proves; each has its own counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Factor {
    Password,
    /// A TOTP or recovery code.
    SecondFactor,
}

impl Factor {
    /// The stored name (`factor` column).
    pub fn as_str(self) -> &'static str {
        match self {
            Factor::Password => "password",
            Factor::SecondFactor => "otp",
        }
    }

    /// How the audit log names it.
    pub fn describe(self) -> &'static str {
        match self {
            Factor::Password => "password",
            Factor::SecondFactor => "second factor",
        }
    }
}

/// Whose counter an attempt uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Device {
    /// No valid device cookie of this user (or a password grant): the shared bucket.
    Unknown,
    /// A device cookie this user received at a successful sign-in; its id.
    Known(String),
}

impl Device {
    /// The stored key (`device` column): `''` for the unknown devices, else the device id.
    pub fn key(&self) -> &str {
        match self {
            Device::Unknown => "",
            Device::Known(id) => id,
        }
    }

    pub fn is_known(&self) -> bool {
        matches!(self, Device::Known(_))
    }

    /// How the audit log names it.
    pub fn describe(&self) -> &'static str {
        match self {
            Device::Unknown => "unknown device",
            Device::Known(_) => "known device",
        }
    }
}

/// One stored counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    /// Failures charged since the counter last started.
    pub failures: i32,
    /// Set when the count reached the limit: attempts are refused until then.
    pub locked_until: Option<i64>,
    /// Unix seconds of the last charge.
    pub updated_at: i64,
}

/// What a counter allows at some moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Attempts may be made; this many failures count so far.
    Open { failures: i32 },
    /// Refused until this time (unix seconds).
    Locked { until: i64 },
}

/// The decision for one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charge {
    /// Write this counter (compare-and-swap against the one read), then check the secret.
    /// `locks` is true when this attempt is the one that reaches the limit.
    Open { write: Counter, locks: bool },
    /// Do not check the secret: the counter is locked.
    Locked { until: i64 },
}

/// `[lockout]`: how many failures lock a counter, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub max_failures: u32,
    pub duration_secs: i64,
}

impl Policy {
    fn max(&self) -> i32 {
        i32::try_from(self.max_failures).unwrap_or(i32::MAX).max(1)
    }

    /// What `counter` (none: never charged, or reset) allows at `now`. A lock ends at its
    /// deadline, and the count starts again then; failures with none newer for `duration_secs`
    /// are forgotten too, so the occasional typo never adds up to a lock. A count at the limit
    /// with no deadline (the limit was lowered since) is locked from its last failure.
    pub fn state(&self, counter: Option<&Counter>, now: i64) -> State {
        let Some(c) = counter else {
            return State::Open { failures: 0 };
        };
        if let Some(until) = c.locked_until {
            return if until > now {
                State::Locked { until }
            } else {
                State::Open { failures: 0 }
            };
        }
        let quiet_until = c.updated_at.saturating_add(self.duration_secs);
        if quiet_until <= now {
            return State::Open { failures: 0 };
        }
        if c.failures >= self.max() {
            return State::Locked { until: quiet_until };
        }
        State::Open {
            failures: c.failures.max(0),
        }
    }

    /// Charges one attempt at `now` against `current`: the counter to write before the secret is
    /// checked, or the lock that refuses it.
    pub fn charge(&self, current: Option<&Counter>, now: i64) -> Charge {
        match self.state(current, now) {
            State::Locked { until } => Charge::Locked { until },
            State::Open { failures } => {
                let failures = failures.saturating_add(1);
                let locks = failures >= self.max();
                Charge::Open {
                    write: Counter {
                        failures,
                        locked_until: locks.then(|| now.saturating_add(self.duration_secs)),
                        updated_at: now,
                    },
                    locks,
                }
            }
        }
    }

    /// Gives back a charge whose attempt was never checked (no hash slot was free): one failure
    /// less, and the lock lifted if it is the one this charge set. `None` when there is nothing
    /// to give back.
    pub fn refund(&self, current: &Counter, charged: &Counter) -> Option<Counter> {
        if current.failures <= 0 {
            return None;
        }
        let own_lock =
            charged.locked_until.is_some() && current.locked_until == charged.locked_until;
        Some(Counter {
            failures: current.failures - 1,
            locked_until: if own_lock { None } else { current.locked_until },
            updated_at: current.updated_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;
    const POLICY: Policy = Policy {
        max_failures: 5,
        duration_secs: 43_200,
    };

    fn counter(failures: i32, locked_until: Option<i64>, updated_at: i64) -> Counter {
        Counter {
            failures,
            locked_until,
            updated_at,
        }
    }

    /// Charges `n` attempts in a row at `now`, as `n` failures would; returns the last counter.
    fn fail(n: usize, now: i64) -> Option<Counter> {
        let mut current = None;
        for _ in 0..n {
            match POLICY.charge(current.as_ref(), now) {
                Charge::Open { write, .. } => current = Some(write),
                Charge::Locked { .. } => panic!("locked early"),
            }
        }
        current
    }

    #[test]
    fn rule49_exactly_max_failures_are_checked_then_locked() {
        let mut current = None;
        for i in 1..=5 {
            let Charge::Open { write, locks } = POLICY.charge(current.as_ref(), NOW) else {
                panic!("attempt {i} should be checked");
            };
            assert_eq!(write.failures, i);
            assert_eq!(locks, i == 5, "only the fifth charge locks");
            current = Some(write);
        }
        let locked = current.unwrap();
        assert_eq!(locked.locked_until, Some(NOW + 43_200));
        assert_eq!(
            POLICY.charge(Some(&locked), NOW + 1),
            Charge::Locked {
                until: NOW + 43_200
            }
        );
    }

    #[test]
    fn rule49_lock_ends_at_its_deadline_and_the_count_starts_again() {
        let locked = fail(5, NOW).unwrap();
        let until = NOW + 43_200;
        assert_eq!(
            POLICY.state(Some(&locked), until - 1),
            State::Locked { until }
        );
        assert_eq!(
            POLICY.state(Some(&locked), until),
            State::Open { failures: 0 }
        );
        let Charge::Open { write, locks } = POLICY.charge(Some(&locked), until) else {
            panic!("open again");
        };
        assert_eq!(write, counter(1, None, until));
        assert!(!locks);
    }

    #[test]
    fn failures_with_none_newer_for_the_lock_duration_are_forgotten() {
        let four = fail(4, NOW).unwrap();
        assert_eq!(
            POLICY.state(Some(&four), NOW + 43_199),
            State::Open { failures: 4 }
        );
        assert_eq!(
            POLICY.state(Some(&four), NOW + 43_200),
            State::Open { failures: 0 }
        );
    }

    #[test]
    fn a_count_at_a_lowered_limit_is_locked_from_its_last_failure() {
        let lower = Policy {
            max_failures: 3,
            ..POLICY
        };
        let four = counter(4, None, NOW);
        assert_eq!(
            lower.state(Some(&four), NOW + 10),
            State::Locked {
                until: NOW + 43_200
            }
        );
        assert_eq!(
            lower.state(Some(&four), NOW + 43_200),
            State::Open { failures: 0 }
        );
    }

    #[test]
    fn a_refund_gives_back_one_failure_and_only_its_own_lock() {
        let four = fail(4, NOW).unwrap();
        let Charge::Open { write: fifth, .. } = POLICY.charge(Some(&four), NOW) else {
            panic!("open");
        };
        let back = POLICY.refund(&fifth, &fifth).unwrap();
        assert_eq!(back, counter(4, None, NOW));
        assert_eq!(POLICY.state(Some(&back), NOW), State::Open { failures: 4 });

        // A charge that set no lock leaves a lock set by another one in place.
        let third = fail(3, NOW).unwrap();
        let locked = fail(5, NOW).unwrap();
        assert_eq!(
            POLICY.refund(&locked, &third).unwrap().locked_until,
            locked.locked_until
        );
        assert_eq!(POLICY.refund(&counter(0, None, NOW), &third), None);
    }

    #[test]
    fn factors_and_devices_have_their_own_stored_names() {
        assert_eq!(Factor::Password.as_str(), "password");
        assert_eq!(Factor::SecondFactor.as_str(), "otp");
        assert_eq!(Device::Unknown.key(), "");
        assert_eq!(Device::Known("dev_1".into()).key(), "dev_1");
        assert!(!Device::Unknown.is_known());
        assert_eq!(Device::Known("dev_1".into()).describe(), "known device");
    }
}
