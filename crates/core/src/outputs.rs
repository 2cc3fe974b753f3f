//! What the pure machines' output queues share: a call's machines (its core, its UAS, its
//! legs, its flow) are idle far longer than they work, so a queue drained to empty lets
//! its room go instead of keeping the room of its busiest moment to the call's end.

use std::collections::VecDeque;

/// The front of `queue`; when nothing is left, the queue's room is let go.
pub fn pop_releasing<T>(queue: &mut VecDeque<T>) -> Option<T> {
    let front = queue.pop_front();
    if front.is_none() && queue.capacity() > 0 {
        *queue = VecDeque::new();
    }
    front
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drained_queue_lets_its_room_go_and_keeps_it_while_anything_is_left() {
        let mut q: VecDeque<u32> = (0..100).collect();
        assert_eq!(pop_releasing(&mut q), Some(0));
        assert!(q.capacity() >= 99, "room kept while outputs wait");
        while pop_releasing(&mut q).is_some() {}
        assert_eq!(q.capacity(), 0);
        assert_eq!(pop_releasing(&mut q), None);
    }
}
