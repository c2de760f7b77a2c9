//! Which replica owns a group: rendezvous (highest random weight) hashing of the GroupId over
//! the live replicas, with a fixed hash so that every replica names the same owner.
//!
//! Each replica scores every candidate by a hash of (candidate, group) and the highest score
//! wins. A replica that leaves takes only its own groups with it (each goes to the candidate
//! that scored second for it), and one that joins takes about 1/N of every other's; nothing
//! else moves. std's `DefaultHasher` is seeded per process, so it would name a different owner
//! on every replica: the weights here are FNV-1a folded through a 64-bit finalizer.

use std::net::SocketAddr;

/// One live replica: its identity (the instance id it serves on `/spool/head`) and where its
/// admin listener is (`None`: this relay).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub addr: Option<SocketAddr>,
    seed: u64,
}

impl Member {
    pub fn new(id: String, addr: Option<SocketAddr>) -> Self {
        let seed = fnv1a(id.as_bytes());
        Self { id, addr, seed }
    }
}

/// The live replicas, this relay among them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Members(Vec<Member>);

impl Members {
    /// Sorted by id, so that two lists of the same replicas compare equal.
    pub fn new(mut members: Vec<Member>) -> Self {
        members.sort_by(|a, b| a.id.cmp(&b.id));
        members.dedup_by(|a, b| a.id == b.id);
        Self(members)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The member that owns `group` (`None`: no members).
    pub fn owner(&self, group: &str) -> Option<&Member> {
        let key = fnv1a(group.as_bytes());
        // Ties (astronomically rare) go to the smaller id: `max_by_key` keeps the last maximum.
        self.0.iter().rev().max_by_key(|m| weight(m.seed, key))
    }
}

/// FNV-1a, 64 bits: fixed, fast on short strings, the same on every machine.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The score of a replica for a group: MurmurHash3's 64-bit finalizer over both hashes, so
/// that a small change in either changes every bit.
fn weight(replica: u64, group: u64) -> u64 {
    let mut h = replica ^ group.rotate_left(29).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(ids: &[&str]) -> Members {
        Members::new(ids.iter().map(|id| Member::new(id.to_string(), None)).collect())
    }

    fn owner_of(m: &Members, g: usize) -> String {
        m.owner(&format!("@TGS#group-{g}")).unwrap().id.clone()
    }

    const IDS: [&str; 4] = [
        "5b0c1f7e-1d2a-4c53-9a61-0d6f3c2b8e11",
        "a9e4d3c2-77b1-4f0e-8c2d-3e5f6a7b8c90",
        "0f1e2d3c-4b5a-4968-8776-655443322110",
        "c3d2e1f0-a9b8-4c7d-8e6f-5a4b3c2d1e0f",
    ];

    #[test]
    fn the_owner_is_the_same_whatever_order_the_members_were_seen_in() {
        let a = members(&IDS);
        let b = members(&[IDS[2], IDS[0], IDS[3], IDS[1]]);
        assert_eq!(a, b);
        for g in 0..1000 {
            assert_eq!(owner_of(&a, g), owner_of(&b, g));
        }
        // Fixed hash: the same answer on every machine and in every release.
        assert_eq!(owner_of(&a, 0), owner_of(&members(&IDS), 0));
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn groups_spread_evenly_over_the_members() {
        const GROUPS: usize = 100_000;
        for n in 2..=4 {
            let m = members(&IDS[..n]);
            let mut counts = std::collections::HashMap::new();
            for g in 0..GROUPS {
                *counts.entry(owner_of(&m, g)).or_insert(0usize) += 1;
            }
            let fair = GROUPS / n;
            for (id, count) in counts {
                let off = (count as f64 - fair as f64).abs() / fair as f64;
                assert!(off < 0.03, "{n} members: {id} owns {count}, fair share {fair}");
            }
        }
    }

    #[test]
    fn a_member_leaving_moves_only_its_own_groups_and_one_joining_takes_only_its_share() {
        const GROUPS: usize = 20_000;
        let all = members(&IDS);
        let without = members(&IDS[..3]);
        let mut moved = 0;
        for g in 0..GROUPS {
            let (before, after) = (owner_of(&all, g), owner_of(&without, g));
            if before == IDS[3] {
                moved += 1;
                assert_ne!(after, IDS[3]);
            } else {
                assert_eq!(before, after, "group {g} moved although its owner stayed");
            }
        }
        // Read the other way, IDS[3] joining took about a quarter of the groups.
        let share = moved as f64 / GROUPS as f64;
        assert!((0.22..0.28).contains(&share), "{share}");
    }

    #[test]
    fn no_members_no_owner_and_one_member_owns_everything() {
        assert!(Members::default().owner("g").is_none());
        let one = members(&IDS[..1]);
        assert!((0..100).all(|g| owner_of(&one, g) == IDS[0]));
    }
}
