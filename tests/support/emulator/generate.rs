//! Filling a [`World`] with random groups of every type: contents from a seeded [`Rng`],
//! member counts from the group's index alone, so a test knows them without the seed.

use super::rng::Rng;
use super::world::{unix_secs, Group, GroupType, Role, World};

/// Accounts are `user_000000` to `user_999999`.
pub const ACCOUNTS: u64 = 1_000_000;

pub fn account(n: u64) -> String {
    format!("user_{:06}", n % ACCOUNTS)
}

/// What [`World::populate`] makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Population {
    /// How many groups; group `i` is of type `GroupType::ALL[i % 5]`.
    pub groups: usize,
    /// Every `large_every`-th round of five groups (one of each type; 0: none) has hundreds
    /// of members (see [`member_count`]).
    pub large_every: usize,
    /// One more Public group with this many members, made last: at 15,000 its member list
    /// alone is over 1 MB even with only the four member fields a reconciler asks for.
    pub huge_members: Option<usize>,
}

impl Default for Population {
    /// 100 groups, one in ten with hundreds of members, no huge group.
    fn default() -> Self {
        Population {
            groups: 100,
            large_every: 10,
            huge_members: None,
        }
    }
}

/// The members (the owner included) of group `i`: 1 to 12 for most; 150 to 550 for the
/// groups of every `large_every`-th round of five (groups `5r` to `5r + 4`, one of each type).
pub fn member_count(i: usize, population: &Population) -> usize {
    let every = population.large_every;
    let large = every > 0 && (i / GroupType::ALL.len()) % every == every - 1;
    if large {
        150 + (i * 37) % 401
    } else {
        1 + (i * 7) % 12
    }
}

impl World {
    /// Adds `population`'s groups; returns their ids in creation order.
    pub fn populate(&mut self, rng: &mut Rng, population: &Population) -> Vec<String> {
        let mut ids = Vec::new();
        for i in 0..population.groups {
            let t = GroupType::ALL[i % GroupType::ALL.len()];
            let group = self.random_group(rng, t, member_count(i, population));
            ids.push(group.group_id.clone());
            self.insert(group);
        }
        if let Some(n) = population.huge_members {
            let group = self.random_group(rng, GroupType::Public, n);
            ids.push(group.group_id.clone());
            self.insert(group);
        }
        ids
    }

    /// A group of type `t` with `members` members (the owner included; at least 1), random
    /// profile, custom fields, attributes (when the type has them), roles and name cards.
    /// Not inserted.
    pub fn random_group(&mut self, rng: &mut Rng, t: GroupType, members: usize) -> Group {
        let id = self.new_group_id(t);
        let first = rng.below(ACCOUNTS);
        let mut group = Group::new(id, t, account(first));
        let now = unix_secs();
        group.create_time = now - rng.below(86_400 * 30);
        group.name = format!("{} {}", rng.word(), rng.word());
        group.introduction = maybe(rng, 0.6, |r| format!("about {}", r.word()));
        group.notification = maybe(rng, 0.4, |r| format!("read {}", r.word()));
        group.face_url = maybe(rng, 0.5, |r| format!("https://faces.example/{}.png", r.word()));
        for key in &self.custom_keys {
            if rng.chance(0.5) {
                group.custom.insert(key.clone(), rng.word());
            }
        }
        if self.has_attrs(t) {
            for _ in 0..rng.below(4) {
                group.attrs.insert(format!("attr_{}", rng.word()), rng.word());
            }
        }
        for n in 1..members.max(1) as u64 {
            let role = if rng.chance(0.1) {
                Role::Admin
            } else {
                Role::Member
            };
            let card = maybe(rng, 0.3, |r| r.word());
            group.add_member(&account(first + n), role, &card, group.create_time + n);
        }
        group
    }
}

/// `make(rng)` with probability `p`, else `""`.
pub fn maybe(rng: &mut Rng, p: f64, make: impl FnOnce(&mut Rng) -> String) -> String {
    if rng.chance(p) {
        make(rng)
    } else {
        String::new()
    }
}
