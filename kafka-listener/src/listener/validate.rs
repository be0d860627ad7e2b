//! The start-up checks of a [`ListenerSpec`].

use super::{ListenerSpec, Ordering};
use crate::context::ListenerInfo;
use crate::error::{Error, Result};
use crate::handler::{ErasedHandler, ReplyTo};

impl ListenerSpec {
    /// Checks the spec and its handler's arguments against `info`.
    ///
    /// # Errors
    /// [`Error::Listener`] for no topics, both topics and a pattern,
    /// concurrency 0, no handler, or an argument that cannot work (see
    /// [`crate::extract::FromRecord::validate`]).
    pub(crate) fn validate(&self, info: &ListenerInfo) -> Result<()> {
        let fail = |reason: String| Error::Listener {
            listener: self.id.clone(),
            reason,
        };
        if self.topics.is_empty() && self.topic_pattern.is_none() {
            return Err(fail("no `topics` and no `topic_pattern`".into()));
        }
        if !self.topics.is_empty() && self.topic_pattern.is_some() {
            return Err(fail("both `topics` and `topic_pattern`; give one".into()));
        }
        if self.retry_topics.is_some() && self.topics.is_empty() {
            return Err(fail(
                "`retry_topics` needs `topics`: the retry topics are named after them".into(),
            ));
        }
        if self.concurrency == 0 {
            return Err(fail("`concurrency` must be at least 1".into()));
        }
        if self.parallelism == Some(0) {
            return Err(fail("`parallelism` must be at least 1".into()));
        }
        if self.ordering == Ordering::Partition && self.effective_parallelism() > 1 {
            return Err(fail(format!(
                "`parallelism = {}` needs `ordering = \"key\"` or `\"none\"`: with `ordering = \"partition\"` one partition's records run one at a time",
                self.effective_parallelism()
            )));
        }
        if self.ordering != Ordering::Partition
            && self.handler.as_ref().is_some_and(|h| h.is_batch())
        {
            return Err(fail(format!(
                "`ordering = \"{}\"` is for record listeners; a batch listener gets one partition's records in offset order",
                self.ordering
            )));
        }
        if self.transactional {
            if self.ack_mode.is_manual() {
                return Err(fail(format!(
                    "`transactional = true` commits offsets in the transaction; ack mode `{}` needs `record` or `batch`",
                    self.ack_mode
                )));
            }
            if self.ordering != Ordering::Partition {
                return Err(fail(format!(
                    "`transactional = true` handles one partition's records one transaction at a time; `ordering = \"{}\"` needs `\"partition\"`",
                    self.ordering
                )));
            }
        }
        match &self.handler {
            None => Err(fail("no handler".into())),
            Some(h) => {
                self.validate_reply(h).map_err(fail)?;
                h.validate(info).map_err(fail)
            }
        }
    }

    /// The reply destination against what the handler returns.
    fn validate_reply(&self, handler: &ErasedHandler) -> std::result::Result<(), String> {
        match (&self.reply_to, handler.replies()) {
            (_, true) if handler.is_batch() => Err(
                "a batch listener cannot return a reply; return `()` or `Result<(), E>`, or make it a record listener".into(),
            ),
            (None, true) => Err(
                "the handler returns a reply value but the listener has no reply destination: add `reply = true` (the request's `kafka_replyTopic`) or `send_to = \"topic\"` (ListenerSpec::reply_to_request / send_to)".into(),
            ),
            (Some(ReplyTo::Topic(t)), _) if t.trim().is_empty() => {
                Err("`send_to` needs a topic name".into())
            }
            (Some(_), false) => Err(
                "the listener has a reply destination (`reply` / `send_to`) but its handler returns no reply: return `Json<T>`, `Reply`, `String`, ... (or `Result<_, E>` of one)".into(),
            ),
            _ => Ok(()),
        }
    }
}
