//! Queue deliveries as the engine's workers handle them (`event_worker::handle_delivery`):
//! trigger names on the worker-trigger queue, `{"id": "<uuid>"}` job messages on the job and
//! priority queues, anything on the dead-letter queue, with the version, dead-letter and job
//! action attributes, over an embedded orchestrator.
//!
//! Input: one byte choosing the queue (of `QueueType::all()`), one flag byte (bit 0: an
//! `OrchestratorVersion` attribute, bit 1: a `DeadLetterReason` attribute, bit 2: a `JobAction`
//! attribute), one byte of receive count, then sections separated by
//! [`orchestrator_fuzz::SEP`]: the body, the version, the reason, the action. `$JOB1` … `$JOB4`
//! in the body name the seeded jobs.
//!
//! Checked: no panic, no hang; the parsers agree with their printers.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use orchestrator::{
    core::client::queue::Delivery,
    types::queue::{
        JobQueueMessage, QueueType, WorkerTriggerType, JOB_ACTION_ATTRIBUTE,
        ORCHESTRATOR_VERSION_ATTRIBUTE,
    },
    worker::event_worker::{handle_delivery, DEAD_LETTER_REASON_ATTRIBUTE},
};
use orchestrator_fuzz::{engine::engine, sections};

fuzz_target!(|data: &[u8]| {
    let Some(([queue, flags, receive_count], rest)) = data.split_first_chunk::<3>() else {
        return;
    };
    let engine = engine();
    let queues = QueueType::all();
    let queue = queues[usize::from(*queue) % queues.len()];
    let parts = sections(rest);
    let text = |i: usize| parts.get(i).map(|p| String::from_utf8_lossy(p).into_owned());
    let body = engine.with_job_ids(&text(0).unwrap_or_default());

    if let Some(trigger) = WorkerTriggerType::from_message_body(&body) {
        assert_eq!(WorkerTriggerType::from_message_body(trigger.name()), Some(trigger));
    }
    if let Ok(m) = serde_json::from_str::<JobQueueMessage>(&body) {
        let again = serde_json::to_string(&m).expect("serialises");
        assert_eq!(serde_json::from_str::<JobQueueMessage>(&again).expect("parses back"), m);
    }

    let mut attributes = HashMap::new();
    if flags & 1 != 0 {
        attributes.insert(ORCHESTRATOR_VERSION_ATTRIBUTE.to_owned(), text(1).unwrap_or_default());
    }
    if flags & 2 != 0 {
        attributes.insert(DEAD_LETTER_REASON_ATTRIBUTE.to_owned(), text(2).unwrap_or_default());
    }
    if flags & 4 != 0 {
        // `Process`, `Verify` or anything else (an unknown action counts as none).
        attributes.insert(JOB_ACTION_ATTRIBUTE.to_owned(), text(3).unwrap_or_default());
    }
    let delivery = Delivery {
        message_id: "fuzz-message".to_owned(),
        receipt: "fuzz-receipt".to_owned(),
        body,
        attributes,
        receive_count: u32::from(*receive_count),
    };
    engine.runtime.block_on(async {
        handle_delivery(&engine.config, queue, delivery).await;
        engine.drain(&[QueueType::JobHandleFailure, queue]).await;
    });
    engine.truncate_alerts();
});
