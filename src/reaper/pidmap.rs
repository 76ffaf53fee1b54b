//! [`PidMap`]: the exit table's map from a pid to its oldest slot. Open
//! addressing (linear probing, deletion by backward shift) in a
//! [`MappedVec`] that a fork leaves out of the child, as the slots are: the
//! parent's writes after a fork copy no page of it, however many children are
//! tracked, and the child, which forgets its parent's children, never needs it.
//!
//! Signal context: [`PidMap::get`], [`PidMap::insert`] of a present pid or
//! with room reserved, [`PidMap::remove`] and [`PidMap::reset_in_child`]
//! only touch memory; [`PidMap::reserve`] maps memory (ordinary context).

use crate::sys::MappedVec;
use libc::pid_t;
use std::io;

#[derive(Clone, Copy)]
struct Entry {
    /// 0: a free entry (pids are positive).
    pid: pid_t,
    idx: u32,
}

const FREE: Entry = Entry { pid: 0, idx: 0 };

/// One page of entries at least; the table stays at most half full.
const MIN_CAPACITY: usize = 4096 / std::mem::size_of::<Entry>();

pub(super) struct PidMap {
    /// A power of two long (or empty).
    entries: MappedVec<Entry>,
    len: usize,
}

impl PidMap {
    pub const fn new() -> PidMap {
        PidMap { entries: MappedVec::new(), len: 0 }
    }

    /// Where `pid`'s probe starts: Fibonacci hashing, so that consecutive
    /// pids spread over the table.
    fn home(&self, pid: pid_t) -> usize {
        let bits = self.entries.len().trailing_zeros();
        ((pid as u32 as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize
    }

    fn mask(&self) -> usize {
        self.entries.len() - 1
    }

    /// The entry holding `pid`, if any.
    fn find(&self, pid: pid_t) -> Option<usize> {
        if self.entries.is_empty() {
            return None;
        }
        let mut at = self.home(pid);
        loop {
            match self.entries[at].pid {
                0 => return None,
                p if p == pid => return Some(at),
                _ => at = (at + 1) & self.mask(),
            }
        }
    }

    pub fn get(&self, pid: pid_t) -> Option<u32> {
        self.find(pid).map(|at| self.entries[at].idx)
    }

    /// Maps `pid` to `idx`, replacing what it mapped to. A new pid needs
    /// room made by [`PidMap::reserve`].
    pub fn insert(&mut self, pid: pid_t, idx: u32) {
        let mut at = self.home(pid);
        loop {
            match self.entries[at].pid {
                0 => {
                    debug_assert!(pid > 0 && (self.len + 1) * 2 <= self.entries.len());
                    self.entries[at] = Entry { pid, idx };
                    self.len += 1;
                    return;
                }
                p if p == pid => {
                    self.entries[at].idx = idx;
                    return;
                }
                _ => at = (at + 1) & self.mask(),
            }
        }
    }

    /// Forgets `pid`, moving back the entries its place held up.
    pub fn remove(&mut self, pid: pid_t) {
        let Some(mut hole) = self.find(pid) else { return };
        let mut at = hole;
        loop {
            at = (at + 1) & self.mask();
            let entry = self.entries[at];
            if entry.pid == 0 {
                break;
            }
            // An entry may fill the hole unless its probe starts after the
            // hole (cyclically) and no later than where it is.
            let home = self.home(entry.pid);
            let stays = if hole <= at { hole < home && home <= at } else { hole < home || home <= at };
            if !stays {
                self.entries[hole] = entry;
                hole = at;
            }
        }
        self.entries[hole] = FREE;
        self.len -= 1;
    }

    /// Makes room for `additional` more pids (ordinary context).
    ///
    /// # Errors
    /// As [`MappedVec::try_reserve`]; the map is unchanged then.
    pub fn reserve(&mut self, additional: usize) -> io::Result<()> {
        let needed = (self.len + additional).saturating_mul(2);
        if needed <= self.entries.len() {
            return Ok(());
        }
        let mut bigger = PidMap { entries: MappedVec::new(), len: 0 };
        bigger.entries.grow_to(needed.next_power_of_two().max(MIN_CAPACITY), FREE)?;
        for entry in self.entries.iter().filter(|e| e.pid != 0) {
            bigger.insert(entry.pid, entry.idx);
        }
        *self = bigger;
        Ok(())
    }

    /// In the child of a fork, which the mapping was left out of: forgets it
    /// without touching its memory.
    pub fn reset_in_child(&mut self) {
        self.entries.reset_in_child();
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn agrees_with_a_hash_map_through_inserts_and_removes() {
        let mut map = PidMap::new();
        let mut model: HashMap<pid_t, u32> = HashMap::new();
        // A pid range narrower than the table, so that probes collide and
        // wrap; a fixed linear congruential sequence of operations.
        let mut seed: u64 = 42;
        for step in 0..200_000u32 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let pid = 1 + (seed >> 33) as pid_t % 3000;
            if seed & 3 == 0 {
                map.remove(pid);
                model.remove(&pid);
            } else {
                map.reserve(1).unwrap();
                map.insert(pid, step);
                model.insert(pid, step);
            }
            if step % 1000 == 0 {
                for probe in 1..3001 {
                    assert_eq!(map.get(probe), model.get(&probe).copied(), "pid {probe} at step {step}");
                }
            }
        }
        assert_eq!(map.len, model.len());
    }

    #[test]
    fn an_empty_map_finds_nothing_and_removes_nothing() {
        let mut map = PidMap::new();
        assert_eq!(map.get(1), None);
        map.remove(1);
        map.reserve(1).unwrap();
        map.insert(7, 3);
        map.insert(7, 4);
        assert_eq!((map.get(7), map.len), (Some(4), 1));
    }
}
