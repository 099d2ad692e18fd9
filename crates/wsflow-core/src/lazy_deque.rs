//! A queue allocated by its first element, for the queues most connections never use.

use std::collections::VecDeque;

/// A `VecDeque` behind a box allocated by the first push (and kept after that). A server
/// holds many idle connections, and every byte of a connection's state counts for each: an
/// empty `VecDeque` is 32 bytes inline, an empty `LazyDeque` 8. The queues kept this way
/// (events put aside, payloads too large to copy into the send buffer) are used by few
/// connections, or rarely.
#[allow(clippy::box_collection)] // the box is the point
#[derive(Debug)]
pub(crate) struct LazyDeque<T>(Option<Box<VecDeque<T>>>);

impl<T> Default for LazyDeque<T> {
    fn default() -> Self {
        Self(None)
    }
}

impl<T> LazyDeque<T> {
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|queue| queue.is_empty())
    }

    pub(crate) fn push_back(&mut self, value: T) {
        self.0.get_or_insert_default().push_back(value);
    }

    #[inline]
    pub(crate) fn pop_front(&mut self) -> Option<T> {
        self.0.as_mut()?.pop_front()
    }

    pub(crate) fn front_mut(&mut self) -> Option<&mut T> {
        self.0.as_mut()?.front_mut()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.0.iter().flat_map(|queue| queue.iter())
    }

    /// Empties the queue, keeping its allocation.
    pub(crate) fn clear(&mut self) {
        if let Some(queue) = &mut self.0 {
            queue.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_with_the_first_push_and_keeps_order() {
        let mut queue = LazyDeque::default();
        assert!(queue.is_empty());
        assert!(queue.0.is_none());
        assert_eq!(queue.pop_front(), None);
        assert_eq!(queue.front_mut(), None);
        assert_eq!(queue.iter().count(), 0);
        queue.clear();
        assert!(queue.0.is_none());
        for value in 1..=3 {
            queue.push_back(value);
        }
        assert!(!queue.is_empty());
        *queue.front_mut().unwrap() = 10;
        assert_eq!(queue.iter().copied().collect::<Vec<_>>(), [10, 2, 3]);
        assert_eq!(queue.pop_front(), Some(10));
        queue.clear();
        assert!(queue.is_empty());
        assert!(queue.0.is_some(), "the allocation is kept");
        assert_eq!(std::mem::size_of::<LazyDeque<u64>>(), 8);
    }
}
