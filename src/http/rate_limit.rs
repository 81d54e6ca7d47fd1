//! Per-address request limits of this instance (`[rate_limits]`): login and consent posts, the
//! authorization request and the token endpoint. HTTP policy, not protocol: the handlers ask
//! before they call a service, and a request over its limit gets 429 with `Retry-After`.
//!
//! Each limit is a generic cell rate algorithm: per address, the time at which its budget is
//! full again. A request moves that time one interval on; it is refused when the time would lie
//! more than `burst` intervals ahead. Addresses live in a map of at most `max_addresses`; the
//! ones whose budget is full again are dropped when it fills, and when every remembered address
//! is still limited a new one is let through unremembered, so memory stays bounded whatever the
//! number of distinct addresses.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest};

use crate::config::RateLimitSettings;

/// The endpoint groups limited separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Login,
    Consent,
    Authorize,
    Token,
}

/// One limiter per group, shared by every worker (registered as `web::Data` in `server::build`).
#[derive(Debug)]
pub struct RateLimits {
    login: Limiter,
    consent: Limiter,
    authorize: Limiter,
    token: Limiter,
}

impl RateLimits {
    pub fn new(settings: &RateLimitSettings) -> Self {
        let max = settings.max_addresses;
        RateLimits {
            login: Limiter::new(settings.login_per_minute, settings.login_burst, max),
            consent: Limiter::new(settings.consent_per_minute, settings.consent_burst, max),
            authorize: Limiter::new(settings.authorize_per_minute, settings.authorize_burst, max),
            token: Limiter::new(settings.token_per_minute, settings.token_burst, max),
        }
    }

    fn group(&self, group: Group) -> &Limiter {
        match group {
            Group::Login => &self.login,
            Group::Consent => &self.consent,
            Group::Authorize => &self.authorize,
            Group::Token => &self.token,
        }
    }
}

/// `Some(seconds to wait)` when the request's address `ip` (`forms::client_ip`, read once by the
/// handler) is over the group's limit. A request whose address is unknown, or a server built
/// without limits, is not limited.
pub fn over_limit(req: &HttpRequest, ip: Option<IpAddr>, group: Group) -> Option<u64> {
    let limits = req.app_data::<web::Data<RateLimits>>()?;
    let ip = ip?;
    let wait = limits.group(group).check(ip, Instant::now()).err()?;
    // Whole seconds, rounded up: retrying after them is never too early.
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    // Debug, not info: a flood would otherwise write a log line per refused request.
    tracing::debug!(?group, retry_after = secs, "rate limit reached");
    Some(secs.max(1))
}

/// One group's limit over addresses.
#[derive(Debug)]
pub struct Limiter {
    /// `None` when the limit is off.
    rule: Option<Rule>,
    max_addresses: usize,
    cells: Mutex<Cells>,
}

#[derive(Debug, Clone, Copy)]
struct Rule {
    /// Time one request uses up of the budget.
    interval: Duration,
    /// How far ahead of now an address's full-again time may lie: `burst` intervals.
    tolerance: Duration,
}

#[derive(Debug, Default)]
struct Cells {
    /// Per address (an IPv6 address by its /64), when its budget is full again.
    full_at: HashMap<IpAddr, Instant>,
    /// The last time the map was swept, so a full map is swept at most once a second.
    swept: Option<Instant>,
}

impl Limiter {
    /// `per_minute` requests a minute, `burst` at once (at least one); `per_minute == 0` is off.
    pub fn new(per_minute: u32, burst: u32, max_addresses: usize) -> Self {
        let rule = (per_minute > 0).then(|| {
            let interval = Duration::from_secs(60) / per_minute;
            Rule {
                interval,
                tolerance: interval * burst.max(1),
            }
        });
        Limiter {
            rule,
            max_addresses,
            cells: Mutex::new(Cells::default()),
        }
    }

    /// Counts a request from `ip` at `now`; `Err(wait)` when it is over the limit.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let Some(rule) = self.rule else {
            return Ok(());
        };
        let key = address_key(ip);
        // The lock is held for a map lookup and insert: short enough for the async worker.
        let mut cells = self.cells.lock().unwrap_or_else(PoisonError::into_inner);
        let full_at = cells.full_at.get(&key).copied().unwrap_or(now).max(now);
        let next = full_at + rule.interval;
        let ahead = next - now;
        if ahead > rule.tolerance {
            return Err(ahead - rule.tolerance);
        }
        if !cells.full_at.contains_key(&key) && !cells.make_room(self.max_addresses, now) {
            // Every remembered address is still limited: let this one through unremembered
            // rather than grow the map.
            return Ok(());
        }
        cells.full_at.insert(key, next);
        Ok(())
    }

    /// Addresses remembered now.
    pub fn len(&self) -> usize {
        self.cells
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .full_at
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Cells {
    /// Whether one more address fits, after forgetting the ones whose budget is full again.
    fn make_room(&mut self, max: usize, now: Instant) -> bool {
        if self.full_at.len() < max {
            return true;
        }
        let recently = self
            .swept
            .is_some_and(|at| now.saturating_duration_since(at) < Duration::from_secs(1));
        if !recently {
            self.full_at.retain(|_, full_at| *full_at > now);
            self.full_at.shrink_to(max);
            self.swept = Some(now);
        }
        self.full_at.len() < max
    }
}

/// The key an address is limited by: an IPv4 address itself, an IPv6 address by its /64 (one
/// host commonly holds a whole /64).
fn address_key(ip: IpAddr) -> IpAddr {
    crate::audit::host(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(n: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(n))
    }

    #[test]
    fn burst_then_refused_with_the_time_to_wait() {
        let limiter = Limiter::new(3, 3, 10);
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check(v4(1), now), Ok(()));
        }
        // 3 a minute: the next request is allowed 20 seconds on.
        assert_eq!(limiter.check(v4(1), now), Err(Duration::from_secs(20)));
        assert_eq!(limiter.check(v4(2), now), Ok(()), "another address");
        let later = now + Duration::from_secs(20);
        assert_eq!(limiter.check(v4(1), later), Ok(()));
        assert!(limiter.check(v4(1), later).is_err());
    }

    #[test]
    fn zero_per_minute_is_off() {
        let limiter = Limiter::new(0, 0, 10);
        let now = Instant::now();
        for _ in 0..1000 {
            assert_eq!(limiter.check(v4(1), now), Ok(()));
        }
        assert!(limiter.is_empty());
    }

    #[test]
    fn an_ipv6_host_is_limited_by_its_64() {
        let limiter = Limiter::new(1, 1, 10);
        let now = Instant::now();
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(limiter.check(a, now), Ok(()));
        assert!(limiter.check(b, now).is_err());
        assert_eq!(limiter.check(other, now), Ok(()));
    }

    #[test]
    fn rate_limit_memory_is_bounded_under_a_flood_of_addresses() {
        let limiter = Limiter::new(60, 2, 100);
        let start = Instant::now();
        // A flood of distinct addresses, all within one second: the map never passes its bound.
        for n in 0..10_000 {
            assert_eq!(limiter.check(v4(n), start), Ok(()));
            assert!(limiter.len() <= 100);
        }
        assert_eq!(limiter.len(), 100);
        // The remembered addresses stay limited meanwhile.
        assert!(limiter.check(v4(0), start).is_ok());
        assert!(limiter.check(v4(0), start).is_err());
        // Once their budgets are full again they are forgotten to make room for new addresses.
        let later = start + Duration::from_secs(5);
        assert_eq!(limiter.check(v4(50_000), later), Ok(()));
        assert_eq!(limiter.len(), 1);
        assert_eq!(limiter.check(v4(50_000), later), Ok(()));
        assert!(limiter.check(v4(50_000), later).is_err());
    }
}
