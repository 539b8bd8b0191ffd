//! The conformance suite on the embedded store.

mod conformance;

use std::sync::Arc;

use tollgate_queue::MemoryQueues;

macro_rules! on_memory {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            conformance::$name(Arc::new(MemoryQueues::new())).await;
        }
    )*};
}

on_memory!(
    lifecycle,
    priorities_then_fifo,
    strict_spacing,
    retries_back_off_then_dead_letter,
    expired_leases_come_back,
    heartbeats_keep_the_lease,
    delayed_tasks_wait,
    bad_input_is_refused,
    idle_empty_queues_expire,
    nothing_is_lost_under_concurrency,
    ack_and_reserve_chains,
    concurrent_chains_share_out_every_task,
    due_while_leased,
    worker_processes_make_a_fleet,
);
