//! A short list of recently used entries, oldest first: the shape of the per-thread caches on
//! the request path (the metrics' series handles, the policy store's snapshot copies). A few
//! entries searched in order cost less than hashing a key, and a full list drops its oldest.

/// The index in `list` of the entry `is_it` picks, or else of `make()`'s entry, appended after
/// the oldest entry is dropped if the list already holds `capacity` (at least one).
pub fn find_or_add<T>(
    list: &mut Vec<T>,
    capacity: usize,
    is_it: impl Fn(&T) -> bool,
    make: impl FnOnce() -> T,
) -> usize {
    if let Some(i) = list.iter().position(is_it) {
        return i;
    }
    if list.len() >= capacity.max(1) {
        list.remove(0);
    }
    list.push(make());
    list.len() - 1
}

#[cfg(test)]
mod tests {
    use super::find_or_add;

    #[test]
    fn finds_an_entry_or_adds_one_dropping_the_oldest_when_full() {
        let mut list = Vec::new();
        assert_eq!(find_or_add(&mut list, 3, |&x| x == 1, || 1), 0);
        assert_eq!(find_or_add(&mut list, 3, |&x| x == 2, || 2), 1);
        // Found: nothing made, nothing moved.
        assert_eq!(find_or_add(&mut list, 3, |&x| x == 1, || unreachable!()), 0);
        assert_eq!(find_or_add(&mut list, 3, |&x| x == 3, || 3), 2);
        // Full: 1, the oldest, goes.
        assert_eq!(find_or_add(&mut list, 3, |&x| x == 4, || 4), 2);
        assert_eq!(list, [2, 3, 4]);
        // A capacity of zero still keeps the entry just added.
        let mut one = vec![7];
        assert_eq!(find_or_add(&mut one, 0, |&x| x == 8, || 8), 0);
        assert_eq!(one, [8]);
    }
}
