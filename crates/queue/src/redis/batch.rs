//! Group commit for the hot path. A busy worker's slots each acknowledge a task and reserve
//! the next ([`QueueStore::ack_and_reserve`](crate::QueueStore::ack_and_reserve)); those that
//! one process sends for one queue while earlier ones are in Redis go together, as one call of
//! ack_reserve.lua for all of them. Each slot gets the reply it would have had alone (the
//! script does the same work lease by lease), and Redis runs one script, with one read of the
//! queue's settings and one write of its hash and bucket, instead of one per slot.
//!
//! Nothing waits on a timer to fill a batch: a call that finds the queue's batcher idle goes
//! at once (after letting the runtime's ready tasks run), so a lone slot's latency is one
//! round trip, as before. Under load, calls made while `IN_FLIGHT` batches are in Redis wait
//! for one of them to return and then go together.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tollgate_core::Error as CoreError;
use tollgate_redis::RedisStore;

use super::reply::Reply;
use super::{ACK_RESERVE, arg, keys, lost, unknown};
use crate::store::QueueResult;
use crate::task::{Lease, Reservation};

/// The most leases in one script call: bounds the script's run (each lease is an ack and a
/// reserve, about eight commands).
const MAX_BATCH: usize = 32;
/// The payload bytes one batch's reply should stay under: with large payloads a batch is cut
/// to fewer leases, so that a reply crosses a slow link well within the command timeout.
const REPLY_BUDGET: usize = 512 * 1024;
/// Batches of one queue in Redis at once: one running, one queued behind it, so Redis never
/// waits for this process between two.
const IN_FLIGHT: usize = 2;
/// The most times a batcher lets other tasks run, before taking a batch, while requests keep
/// coming in.
const MAX_YIELDS: usize = 8;
/// A queue's batcher that has had nothing to do for this long stops (the next call starts a
/// new one), so a process that used many short-lived queues keeps no task for each.
const IDLE: Duration = Duration::from_secs(30);

/// One slot's call: the lease's task and attempt (not the whole lease: its payload would be
/// copied for nothing), and where the answer goes.
struct Request {
    task: String,
    attempt: u32,
    reply: oneshot::Sender<QueueResult<Reservation>>,
}

impl Request {
    fn new(lease: &Lease, reply: oneshot::Sender<QueueResult<Reservation>>) -> Request {
        Request {
            task: lease.task.clone(),
            attempt: lease.attempt,
            reply,
        }
    }
}

type Sender = mpsc::UnboundedSender<Request>;

/// The batchers of the queues this process acknowledges tasks on.
#[derive(Debug)]
pub(super) struct Batchers {
    queues: Mutex<HashMap<String, Sender>>,
    idle: Duration,
}

impl Default for Batchers {
    fn default() -> Batchers {
        Batchers::with_idle(IDLE)
    }
}

impl Batchers {
    fn with_idle(idle: Duration) -> Batchers {
        Batchers {
            queues: Mutex::default(),
            idle,
        }
    }

    /// Acknowledges `lease` and reserves the next task of its queue, in a batch with the other
    /// slots' calls for that queue. The queue's name must be valid (`keys`).
    pub(super) async fn ack_and_reserve(
        &self,
        store: &RedisStore,
        lease: &Lease,
    ) -> QueueResult<Reservation> {
        let (tx, rx) = oneshot::channel();
        let mut request = Request::new(lease, tx);
        // A batcher that stopped (idle) refuses the request: start another and send again.
        loop {
            let sender = self.sender(store, &lease.queue);
            match sender.send(request) {
                Ok(()) => break,
                Err(mpsc::error::SendError(back)) => {
                    request = back;
                    self.queues
                        .lock()
                        .retain(|_, s| !s.same_channel(&sender) && !s.is_closed());
                }
            }
        }
        rx.await.unwrap_or_else(|_| {
            // Only if the runtime dropped the batch (shutting down): it may have run.
            Err(CoreError::Store {
                message: "the acknowledgement's batch was dropped before Redis answered"
                    .to_string(),
                transient: true,
            }
            .into())
        })
    }

    fn sender(&self, store: &RedisStore, queue: &str) -> Sender {
        let mut queues = self.queues.lock();
        if let Some(sender) = queues.get(queue).filter(|s| !s.is_closed()) {
            return sender.clone();
        }
        queues.retain(|_, s| !s.is_closed());
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(batcher(store.clone(), queue.to_string(), rx, self.idle));
        queues.insert(queue.to_string(), tx.clone());
        tx
    }
}

/// One queue's batcher: takes the requests waiting, up to `MAX_BATCH`, as soon as fewer than
/// `IN_FLIGHT` batches are in Redis, and runs them.
async fn batcher(
    store: RedisStore,
    queue: String,
    mut requests: mpsc::UnboundedReceiver<Request>,
    idle: Duration,
) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    // The largest payload seen lately (decaying), which sizes the batches.
    let payload = Arc::new(AtomicUsize::new(0));
    loop {
        let first = match tokio::time::timeout(idle, requests.recv()).await {
            Ok(Some(first)) => first,
            Ok(None) => return,
            Err(_idle) => {
                // Refuse new requests, then run those that came meanwhile: none is dropped.
                requests.close();
                let mut rest = Vec::new();
                while let Some(request) = requests.recv().await {
                    rest.push(request);
                }
                for chunk in chunks(rest) {
                    let _largest_payload = run(&store, &queue, chunk).await;
                }
                return;
            }
        };
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        // The batch that just returned woke its slots, which are about to send their next
        // calls: let them run while that grows the batch (going at once sent half-empty
        // batches and left Redis idle between them: 36–42k tasks/s against 54–61k).
        for _ in 0..MAX_YIELDS {
            let waiting = requests.len();
            tokio::task::yield_now().await;
            if requests.len() == waiting {
                break;
            }
        }
        let most = batch_limit(payload.load(Ordering::Relaxed));
        let mut batch = vec![first];
        while batch.len() < most {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let (store, queue, payload) = (store.clone(), queue.clone(), payload.clone());
        tokio::spawn(async move {
            let largest = run(&store, &queue, batch).await;
            let seen = payload.load(Ordering::Relaxed);
            payload.store(next_payload_estimate(seen, largest), Ordering::Relaxed);
            drop(slot);
        });
    }
}

/// The most leases a batch may hold when the largest payload seen lately is `payload` bytes.
fn batch_limit(payload: usize) -> usize {
    (REPLY_BUDGET / payload.max(1)).clamp(1, MAX_BATCH)
}

/// The payload size the next batches are sized for: the largest of the last batch, or the
/// previous estimate decaying by an eighth per batch (so one large task does not shrink the
/// batches for long, and a run of large ones keeps them small).
fn next_payload_estimate(previous: usize, largest: usize) -> usize {
    largest.max(previous - previous / 8)
}

fn chunks(mut requests: Vec<Request>) -> Vec<Vec<Request>> {
    let mut out = Vec::new();
    while !requests.is_empty() {
        let rest = requests.split_off(requests.len().min(MAX_BATCH));
        out.push(std::mem::replace(&mut requests, rest));
    }
    out
}

/// Runs one batch and answers each request; returns the largest payload given out (bytes).
async fn run(store: &RedisStore, queue: &str, batch: Vec<Request>) -> usize {
    let mut largest = 0;
    let args: Vec<Vec<u8>> = batch
        .iter()
        .flat_map(|r| [arg(&r.task), arg(r.attempt)])
        .collect();
    let what = "acknowledge tasks and reserve the next";
    let replies = match store.eval(&ACK_RESERVE, &keys(queue), &args, what).await {
        Ok(value) => Reply::new(value).per_lease(batch.len()),
        Err(e) => Err(e.into()),
    };
    match replies {
        Ok(Some(replies)) => {
            for (request, reply) in batch.into_iter().zip(replies) {
                let answer = match reply.int_at(0) {
                    Ok(5) => Err(lost(queue, &request.task, request.attempt)),
                    _ => reply.reservation(queue),
                };
                if let Ok(Reservation::Task(lease)) = &answer {
                    largest = largest.max(lease.payload.len());
                }
                let _ = request.reply.send(answer);
            }
        }
        Ok(None) => {
            for request in batch {
                let _ = request.reply.send(Err(unknown(queue)));
            }
        }
        Err(e) => {
            for request in batch {
                let _ = request.reply.send(Err(e.clone()));
            }
        }
    }
    largest
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tollgate_redis::RedisStore;
    use tollgate_testkit::redis::RedisServer;

    use super::*;
    use crate::{NewTask, QueueError, QueueSpec, QueueStore, RedisQueues};

    /// A queue with `tasks` tasks, and `leases` of them reserved.
    async fn queue_with_leases(server: &RedisServer, tasks: u32, leases: u32) -> Vec<Lease> {
        let queues = RedisQueues::open(&server.url()).await.expect("connect");
        let spec = QueueSpec::new("1000/1s".parse().expect("rate"))
            .name("b")
            .burst(1000);
        queues.create(spec).await.expect("create");
        for n in 0..tasks {
            let task = NewTask::json(n.to_string()).expect("payload");
            queues.push("b", task).await.expect("push");
        }
        let mut out = Vec::new();
        for _ in 0..leases {
            match queues.reserve("b", "w").await.expect("reserve") {
                Reservation::Task(lease) => out.push(lease),
                other => panic!("no task: {other:?}"),
            }
        }
        out
    }

    /// One script call for three leases answers each as if it had come alone, in order: the
    /// stale lease is refused, the others acknowledged and given the next tasks.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_answers_each_lease_in_turn() {
        let server = RedisServer::start().expect("redis-server");
        let leases = queue_with_leases(&server, 5, 3).await;
        let store = RedisStore::open(&server.url()).await.expect("connect");
        let queues = RedisQueues::new(store.clone());
        queues.ack(&leases[0]).await.expect("ack");
        let mut answers = Vec::new();
        let mut batch = Vec::new();
        for lease in &leases {
            let (reply, answer) = oneshot::channel();
            batch.push(Request::new(lease, reply));
            answers.push(answer);
        }
        run(&store, "b", batch).await;
        let mut got = Vec::new();
        for answer in answers {
            got.push(answer.await.expect("answered"));
        }
        assert!(
            matches!(&got[0], Err(QueueError::LeaseLost { task, .. }) if *task == leases[0].task),
            "{:?}",
            got[0]
        );
        let ids: Vec<&str> = got[1..]
            .iter()
            .map(|a| match a {
                Ok(Reservation::Task(lease)) => lease.task.as_str(),
                other => panic!("no task: {other:?}"),
            })
            .collect();
        assert_eq!(ids, ["0000000000000004", "0000000000000005"]);
        let s = queues.stats("b").await.expect("stats");
        assert_eq!(
            (s.started, s.completed, s.in_flight, s.waiting),
            (5, 3, 2, 0)
        );
    }

    /// Large payloads make small batches, back to full ones as they stop coming.
    #[test]
    fn payloads_size_the_batches() {
        assert_eq!(batch_limit(0), MAX_BATCH);
        assert_eq!(batch_limit(100), MAX_BATCH);
        assert_eq!(batch_limit(64 * 1024), 8);
        assert_eq!(batch_limit(1 << 20), 1, "a 1 MiB payload goes alone");
        let mut estimate = next_payload_estimate(0, 1 << 20);
        assert_eq!(batch_limit(estimate), 1);
        let mut batches = 0;
        while batch_limit(estimate) < MAX_BATCH {
            estimate = next_payload_estimate(estimate, 100);
            batches += 1;
            assert!(batches < 100, "the estimate never came down: {estimate}");
        }
        assert!(batches > 5, "came back after {batches} small batches");
        assert_eq!(next_payload_estimate(estimate, 200_000), 200_000);
    }

    /// A batcher idle for its time stops; the next call starts another and is answered.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_idle_batcher_stops_and_the_next_call_starts_another() {
        let server = RedisServer::start().expect("redis-server");
        let leases = queue_with_leases(&server, 4, 2).await;
        let store = RedisStore::open(&server.url()).await.expect("connect");
        let batchers = Batchers::with_idle(Duration::from_millis(100));
        let next = batchers
            .ack_and_reserve(&store, &leases[0])
            .await
            .expect("ack, reserve");
        assert!(matches!(next, Reservation::Task(_)), "{next:?}");
        let first = batchers.queues.lock().get("b").cloned().expect("a batcher");
        let until = tokio::time::Instant::now() + Duration::from_secs(10);
        while !first.is_closed() {
            assert!(
                tokio::time::Instant::now() < until,
                "the batcher never stopped"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let next = batchers
            .ack_and_reserve(&store, &leases[1])
            .await
            .expect("ack, reserve after a restart");
        assert!(matches!(next, Reservation::Task(_)), "{next:?}");
        let queues = batchers.queues.lock();
        assert_eq!(queues.len(), 1);
        assert!(queues.values().all(|s| !s.is_closed()));
    }
}
