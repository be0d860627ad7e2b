//! Replaying a stored dead letter to its original topic.

use super::store::{now_ms, to_headers, DeadLetterStore, StoreError};
use crate::producer::{KafkaTemplate, ProducerRecord, SendResult};
use crate::record::headers::REPLAYED_FROM;

impl DeadLetterStore {
    /// Sends the stored dead letter `id` to its original topic with its
    /// key, value and own headers, plus `kafka_listener-replayed-from: <id>`,
    /// waits for the broker's acknowledgment, then sets its `replayed_at`
    /// (it leaves [`DeadLetterStore::list`]). The key chooses the partition,
    /// so per-key order holds among records sent from now on. `Ok(None)`
    /// when there is no such dead letter. Replaying twice sends twice.
    ///
    /// # Errors
    /// [`StoreError::Replay`] when the broker did not acknowledge the record
    /// (nothing is marked); [`StoreError::Database`].
    pub async fn replay(
        &self,
        id: &str,
        template: &KafkaTemplate,
    ) -> Result<Option<SendResult>, StoreError> {
        let Some(letter) = self.get(id).await? else {
            return Ok(None);
        };
        let mut record = match &letter.key {
            Some(k) => ProducerRecord::keyed(letter.original_topic.clone(), k.clone()),
            None => ProducerRecord::keyless(letter.original_topic.clone()),
        };
        if let Some(v) = &letter.payload {
            record = record.value(v.clone());
        }
        for (k, v) in to_headers(&letter.headers) {
            record = record.header(k, v);
        }
        record = record.header(REPLAYED_FROM, id.to_owned());
        let sent = template.send(record).await.map_err(StoreError::Replay)?;
        sqlx::query("UPDATE kafka_dead_letters SET replayed_at = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        tracing::info!(dead_letter = %id, topic = %sent.topic, partition = sent.partition, offset = sent.offset, "dead letter replayed");
        Ok(Some(sent))
    }
}
