//! The prefix-state cache: recent prompts' token sequences with the session state after
//! them (as state-file bytes: recurrent state, last logits, penalties). A prompt that
//! starts with a cached sequence restores that state and feeds only the rest.

/// A bounded least-recently-used cache of `(tokens, state bytes)`.
pub struct PrefixCache {
    /// Most recently used last.
    entries: Vec<(Vec<u32>, Vec<u8>)>,
    max_entries: usize,
    max_bytes: usize,
}

impl PrefixCache {
    /// A cache of at most `max_entries` states taking at most `max_bytes` together.
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        PrefixCache { entries: Vec::new(), max_entries, max_bytes }
    }

    /// The longest cached sequence that `tokens` starts with: its length and state. It
    /// becomes the most recently used.
    pub fn longest_prefix(&mut self, tokens: &[u32]) -> Option<(usize, &[u8])> {
        let best = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, (key, _))| !key.is_empty() && tokens.starts_with(key))
            .max_by_key(|(_, (key, _))| key.len())
            .map(|(i, _)| i)?;
        let entry = self.entries.remove(best);
        self.entries.push(entry);
        self.entries.last().map(|(key, state)| (key.len(), state.as_slice()))
    }

    /// Remembers `state` as the state after `tokens` (replacing an entry for the same
    /// tokens), dropping the least recently used entries beyond the bounds.
    pub fn insert(&mut self, tokens: Vec<u32>, state: Vec<u8>) {
        if self.max_entries == 0 || tokens.is_empty() || state.len() + tokens.len() * 4 > self.max_bytes {
            return;
        }
        self.entries.retain(|(key, _)| *key != tokens);
        self.entries.push((tokens, state));
        while self.entries.len() > self.max_entries || self.bytes() > self.max_bytes {
            self.entries.remove(0);
        }
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn bytes(&self) -> usize {
        self.entries.iter().map(|(k, s)| k.len() * 4 + s.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::PrefixCache;

    #[test]
    fn the_longest_matching_prefix_wins_and_old_entries_go() {
        let mut c = PrefixCache::new(2, 1 << 20);
        c.insert(vec![1, 2], vec![12]);
        c.insert(vec![1, 2, 3], vec![123]);
        assert_eq!(c.longest_prefix(&[1, 2, 3, 4]), Some((3, &[123u8][..])));
        assert_eq!(c.longest_prefix(&[1, 2, 9]), Some((2, &[12u8][..])));
        assert_eq!(c.longest_prefix(&[2]), None);
        // [1, 2] was used last, so [1, 2, 3] is dropped for a third entry.
        c.insert(vec![7], vec![7]);
        assert_eq!(c.len(), 2);
        assert_eq!(c.longest_prefix(&[1, 2, 3]), Some((2, &[12u8][..])));
    }

    #[test]
    fn the_byte_bound_holds() {
        let mut c = PrefixCache::new(8, 100);
        c.insert(vec![1], vec![0; 60]);
        c.insert(vec![2], vec![0; 60]);
        assert_eq!(c.len(), 1);
        c.insert(vec![3], vec![0; 200]);
        assert_eq!(c.len(), 1);
        assert!(c.longest_prefix(&[2]).is_some());
    }
}
