//! The quorum rule, written once. Every path that reads the servers' answers (acquire, extend,
//! release, break, a nested run's check, status, list, history) counts them here: what each
//! server said is a `Vote`, and the `Tally` of those votes says who, if anyone, has a majority,
//! who still may, and whether enough servers answered to tell. It is pure, so property tests
//! over random answers check it below; everything that asks the servers is tested on real ones.

use std::collections::BTreeMap;

/// How many of `servers` make a majority.
pub fn majority(servers: usize) -> usize {
    servers / 2 + 1
}

/// What one server said about the thing counted (who holds a lock, which place it granted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vote<K> {
    /// It holds (or granted) `K`.
    For(K),
    /// It answered, and holds nothing that is counted.
    Against,
    /// It did not answer, or failed: it may hold anything.
    Unknown,
}

/// The votes of every server of a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally<K> {
    /// How many servers voted for each `K`.
    counts: BTreeMap<K, usize>,
    unknown: usize,
    servers: usize,
}

impl<K: Ord> Tally<K> {
    /// Counts one vote a server.
    pub fn of(votes: impl IntoIterator<Item = Vote<K>>) -> Self {
        let mut tally = Tally {
            counts: BTreeMap::new(),
            unknown: 0,
            servers: 0,
        };
        for vote in votes {
            tally.servers += 1;
            match vote {
                Vote::For(k) => *tally.counts.entry(k).or_default() += 1,
                Vote::Against => {}
                Vote::Unknown => tally.unknown += 1,
            }
        }
        tally
    }

    /// How many servers voted for `k`.
    pub fn count(&self, k: &K) -> usize {
        self.counts.get(k).copied().unwrap_or(0)
    }

    /// What most servers voted for, and how many did; on a tie, the least: the same whatever
    /// the order of the answers.
    pub fn leader(&self) -> Option<(&K, usize)> {
        let mut leader: Option<(&K, usize)> = None;
        for (k, &count) in &self.counts {
            if leader.is_none_or(|(_, most)| count > most) {
                leader = Some((k, count));
            }
        }
        leader
    }

    /// What a majority of the servers voted for, if anything did.
    pub fn winner(&self) -> Option<&K> {
        let (k, count) = self.leader()?;
        (count >= majority(self.servers)).then_some(k)
    }

    /// Whether `k` has a majority, or may have one: the servers that did not answer may hold it.
    pub fn may_win(&self, k: &K) -> bool {
        self.count(k) + self.unknown >= majority(self.servers)
    }

    /// Whether too few servers answered to tell anything a majority says.
    pub fn too_few_answered(&self) -> bool {
        self.unknown + majority(self.servers) > self.servers
    }
}

impl Tally<()> {
    /// The tally of a yes or no question: `yes` servers said yes, `no` said no, and the rest of
    /// `servers` did not answer.
    pub fn counted(yes: usize, no: usize, servers: usize) -> Self {
        let unknown = servers.saturating_sub(yes + no);
        Tally {
            counts: (yes > 0).then_some(((), yes)).into_iter().collect(),
            unknown,
            servers: servers.max(yes + no),
        }
    }

    /// A majority said yes.
    pub fn yes(&self) -> bool {
        self.winner().is_some()
    }

    /// So many said no that a majority can never say yes.
    pub fn no(&self) -> bool {
        !self.may_win(&())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{Arbitrary, Gen, QuickCheck};

    /// A server's answer among a few tokens, so that tokens often repeat.
    #[derive(Debug, Clone)]
    struct Answer(Vote<u8>);

    impl Arbitrary for Answer {
        fn arbitrary(g: &mut Gen) -> Self {
            Answer(match u8::arbitrary(g) % 6 {
                0 => Vote::Against,
                1 => Vote::Unknown,
                n => Vote::For(n % 3),
            })
        }
    }

    fn tally(answers: &[Answer]) -> Tally<u8> {
        Tally::of(answers.iter().map(|a| a.0.clone()))
    }

    fn check<A: quickcheck::Testable>(property: A) {
        QuickCheck::new().tests(2000).quickcheck(property);
    }

    #[test]
    fn never_a_winner_without_a_majority() {
        fn property(answers: Vec<Answer>) -> bool {
            let tally = tally(&answers);
            let voted = |k: &u8| answers.iter().filter(|a| a.0 == Vote::For(*k)).count();
            match tally.winner() {
                Some(k) => 2 * voted(k) > answers.len(),
                None => (0..3).all(|k| 2 * voted(&k) <= answers.len()),
            }
        }
        check(property as fn(Vec<Answer>) -> bool);
    }

    #[test]
    fn never_free_while_a_majority_may_hold() {
        fn property(answers: Vec<Answer>) -> bool {
            let tally = tally(&answers);
            let unknown = answers.iter().filter(|a| a.0 == Vote::Unknown).count();
            // A holder whom the servers that did not answer may complete to a majority is one
            // `may_win` admits, and so is a winner.
            (0..3).all(|k| {
                let possible = 2 * (tally.count(&k) + unknown) > answers.len();
                tally.may_win(&k) == possible
            }) && tally.winner().is_none_or(|k| tally.may_win(k))
        }
        check(property as fn(Vec<Answer>) -> bool);
    }

    #[test]
    fn the_verdict_is_the_same_whatever_the_order() {
        fn property(answers: Vec<Answer>, seed: u64) -> bool {
            let mut shuffled = answers.clone();
            // A permutation from the seed: rotate, then reverse a prefix.
            if !shuffled.is_empty() {
                let n = shuffled.len();
                shuffled.rotate_left(seed as usize % n);
                shuffled[..(seed >> 32) as usize % n + 1].reverse();
            }
            let (a, b) = (tally(&answers), tally(&shuffled));
            a == b && a.leader() == b.leader() && a.winner() == b.winner()
        }
        check(property as fn(Vec<Answer>, u64) -> bool);
    }

    #[test]
    fn enough_answered_exactly_when_a_majority_did() {
        fn property(answers: Vec<Answer>) -> bool {
            let tally = tally(&answers);
            let answered = answers.iter().filter(|a| a.0 != Vote::Unknown).count();
            tally.too_few_answered() == (2 * answered <= answers.len())
        }
        check(property as fn(Vec<Answer>) -> bool);
    }

    #[test]
    fn a_yes_or_no_question_is_the_same_tally() {
        fn property(yes: u8, no: u8, unknown: u8) -> bool {
            let (yes, no, unknown) = (yes as usize % 6, no as usize % 6, unknown as usize % 6);
            let votes = std::iter::repeat_n(Vote::For(()), yes)
                .chain(std::iter::repeat_n(Vote::Against, no))
                .chain(std::iter::repeat_n(Vote::Unknown, unknown));
            let tally = Tally::of(votes);
            tally == Tally::counted(yes, no, yes + no + unknown)
                && (yes + no + unknown == 0 || !(tally.yes() && tally.no()))
        }
        check(property as fn(u8, u8, u8) -> bool);
    }

    #[test]
    fn a_tie_goes_to_the_least() {
        let votes = [
            Vote::For("b"),
            Vote::For("a"),
            Vote::Unknown,
            Vote::For("b"),
        ];
        let votes = votes.iter().cloned().chain([Vote::For("a")]);
        assert_eq!(Tally::of(votes).leader(), Some((&"a", 2)));
        assert_eq!(Tally::<&str>::of([]).leader(), None);
        assert_eq!(Tally::<&str>::of([]).winner(), None);
    }
}
