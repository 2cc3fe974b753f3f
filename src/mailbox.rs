//! The sending half of a task's one inbox, for one kind of message. A call has a single
//! inbox; the endpoint (SIP), the media clock (keys, prompt ends), the queues (news) and
//! the call's own IO all post to it through a `Mailbox` of their own message type, which
//! wraps it into the call's. Senders never learn the call's message type, and the call
//! never waits on more than one channel.

use std::sync::Arc;

use tokio::sync::mpsc::UnboundedSender;

type Post<T> = dyn Fn(T) -> Result<(), T> + Send + Sync;
type Open = dyn Fn() -> bool + Send + Sync;

pub struct Mailbox<T> {
    post: Arc<Post<T>>,
    /// Whether the owner still reads (as far as the mailbox can tell).
    open: Arc<Open>,
}

impl<T> Clone for Mailbox<T> {
    fn clone(&self) -> Self {
        Mailbox {
            post: self.post.clone(),
            open: self.open.clone(),
        }
    }
}

impl<T: Send + 'static> Mailbox<T> {
    /// Posts with `post`, which gives the message back when nobody reads any more.
    /// Such a mailbox counts as open until a post fails.
    pub fn new(post: impl Fn(T) -> Result<(), T> + Send + Sync + 'static) -> Self {
        Mailbox {
            post: Arc::new(post),
            open: Arc::new(|| true),
        }
    }

    /// Posts to `inbox`, each message wrapped by `wrap`.
    pub fn wrapping<U: Send + 'static>(inbox: UnboundedSender<U>, wrap: fn(T) -> U) -> Self {
        let probe = inbox.clone();
        Mailbox {
            post: Arc::new(move |m| {
                if inbox.is_closed() {
                    return Err(m);
                }
                // Closed in between: the owner is gone, as if it had closed first.
                let _ = inbox.send(wrap(m));
                Ok(())
            }),
            open: Arc::new(move || !probe.is_closed()),
        }
    }

    /// Whether the owner may still read what is posted (false once it is gone).
    pub fn is_open(&self) -> bool {
        (self.open)()
    }

    /// Posts `m`; gives it back when the owner no longer reads its inbox.
    pub fn send(&self, m: T) -> Result<(), T> {
        (self.post)(m)
    }
}

impl<T> std::fmt::Debug for Mailbox<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Mailbox")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    enum Msg {
        Num(u32),
    }

    #[test]
    fn posts_wrapped_and_gives_the_message_back_once_the_owner_is_gone() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mb: Mailbox<u32> = Mailbox::wrapping(tx, Msg::Num);
        assert_eq!(mb.clone().send(7), Ok(()));
        assert_eq!(rx.try_recv().ok(), Some(Msg::Num(7)));
        assert!(mb.is_open());
        drop(rx);
        assert!(!mb.is_open());
        assert_eq!(mb.send(8), Err(8));
    }
}
