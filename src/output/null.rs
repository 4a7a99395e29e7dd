//! `null`: accepts and discards everything (FireLens routes its health-check input here).

use async_trait::async_trait;

use super::{Chunk, FlushError, Output};
use crate::config::{ConfigError, Section};

pub struct Null;

impl Null {
    pub fn from_section(section: &Section) -> Result<Self, ConfigError> {
        // Fluent Bit's null output takes stdout's format keys (only to benchmark encoding).
        for key in ["format", "json_date_key", "json_date_format"] {
            section.all(key).for_each(drop);
        }
        Ok(Null)
    }
}

#[async_trait]
impl Output for Null {
    async fn flush(&self, chunk: &mut Chunk) -> Result<(), FlushError> {
        let chunk = chunk.batches();
        tracing::trace!(
            "discarding {} bytes",
            chunk.iter().map(|b| b.bytes).sum::<usize>()
        );
        Ok(())
    }
}
