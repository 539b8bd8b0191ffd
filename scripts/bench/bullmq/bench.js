#!/usr/bin/env node
// scripts/bench/bullmq/bench.js — the BullMQ side of scripts/bench/queue.sh: the same two
// measurements examples/queue-bench makes of tollgate's queues, on the same Redis.
//
//   node bench.js throughput --url redis://127.0.0.1:PORT/0 [--tasks 50000] [--concurrency 50]
//        [--remove-on-complete true|false] [--chunk 1000] [--timeout 600] [--label L]
//     Adds --tasks no-op jobs with queue.addBulk (chunks of --chunk; timed and reported apart),
//     then runs one Worker with --concurrency and a processor that does nothing, until every
//     job has completed. Jobs/s from the first processor call to the last 'completed' event
//     (emitted when moveToFinished has returned), on this process's clock.
//
//   node bench.js precision --url ... [--tasks 100] [--max 10] [--duration 1000]
//        [--workers 3] [--slots 2] [--window-ms 1000]
//     --workers Workers (each with its own connections) with --slots concurrency each and
//     BullMQ's limiter {max, duration} (global to the queue, kept in Redis). Every start is
//     recorded on the local clock: BullMQ decides on the workers' clocks (moveToActive is
//     given the worker's Date.now()), so there is no Redis-clock time to record. Reports, per
//     clock, the most starts in any window [t, t + window) and the smallest gap between
//     consecutive starts: `local_clock` (performance.timeOrigin + performance.now(), µs, at the
//     processor's call), `date_now` (Date.now(), ms, at the same moment) and `processed_on`
//     (job.processedOn, ms: the time the worker gave moveToActive).
//
// Both read INFO commandstats and INFO cpu before and after the measured phase and report
// Redis's side per job, as examples/queue-bench does, and send ECHO queue-bench:work:start
// and :end around it (markers in a MONITOR log). Prints one JSON line. Loopback only.
'use strict';

const { Queue, Worker } = require('bullmq');
const IORedis = require('ioredis');
const { performance } = require('node:perf_hooks');
const { randomUUID } = require('node:crypto');

function usage(code) {
  process.stderr.write(
    'usage: node bench.js throughput|precision --url redis://127.0.0.1:PORT/0 [options]\n' +
      '(see the comment at the top of bench.js)\n',
  );
  process.exit(code);
}

function parseArgs(argv) {
  const [command, ...rest] = argv;
  if (!command || command === '-h' || command === '--help') usage(command ? 0 : 2);
  const opts = {};
  for (let i = 0; i < rest.length; i += 2) {
    const key = rest[i];
    if (!key.startsWith('--') || i + 1 >= rest.length) {
      process.stderr.write(`bad argument: ${key}\n`);
      usage(2);
    }
    opts[key.slice(2)] = rest[i + 1];
  }
  return { command, opts };
}

function int(opts, name, dflt, min, max) {
  const v = opts[name] === undefined ? dflt : Number(opts[name]);
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new Error(`--${name} must be a whole number in ${min}..${max}`);
  }
  return v;
}

function connectionOf(url) {
  const u = new URL(url);
  if (u.protocol !== 'redis:') throw new Error('--url must be redis://');
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if (!(host === 'localhost' || host.startsWith('127.') || host === '::1')) {
    throw new Error('--url must be on a loopback address; this benchmark only targets loopback');
  }
  const db = u.pathname && u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0;
  // maxRetriesPerRequest: null is what BullMQ requires of a Worker's connection.
  return { host, port: Number(u.port || 6379), db, maxRetriesPerRequest: null };
}

const round2 = (x) => Math.round(x * 100) / 100;
const round3 = (x) => Math.round(x * 1000) / 1000;

// Redis's counters: per command (calls, µs), and its CPU seconds.
async function redisSide(r) {
  const text = (await r.info('commandstats')) + '\n' + (await r.info('cpu'));
  const commands = new Map();
  let cpu = 0;
  for (const line of text.split(/\r?\n/)) {
    let m = /^cmdstat_([^:]+):(.*)$/.exec(line);
    if (m) {
      const fields = Object.fromEntries(m[2].split(',').map((kv) => kv.split('=')));
      commands.set(m[1], [Number(fields.calls || 0), Number(fields.usec || 0)]);
      continue;
    }
    m = /^used_cpu_(sys|user):([0-9.]+)/.exec(line);
    if (m) cpu += Number(m[2]);
  }
  return { commands, cpu };
}

// What Redis did between two readings, per job (the same fields as examples/queue-bench).
function redisDelta(before, after, jobs) {
  const per = (x) => x / Math.max(jobs, 1);
  const byCommand = {};
  let calls = 0;
  let scripts = 0;
  let scriptUsec = 0;
  for (const [name, [c2, u2]] of [...after.commands.entries()].sort()) {
    if (name === 'info') continue;
    const [c1, u1] = before.commands.get(name) || [0, 0];
    const c = c2 - c1;
    const u = u2 - u1;
    if (c > 0) {
      byCommand[name] = round2(per(c));
      calls += c;
      if (name === 'eval' || name === 'evalsha' || name.startsWith('fcall')) {
        scripts += c;
        scriptUsec += u;
      }
    }
  }
  const cpu = Math.max(after.cpu - before.cpu, 0);
  return {
    commands_per_task: round2(per(calls)),
    scripts_per_task: round2(per(scripts)),
    script_usec_per_task: round2(per(scriptUsec)),
    cpu_usec_per_task: round2(per(cpu * 1e6)),
    cpu_secs: round2(cpu),
    per_task_by_command: byCommand,
  };
}

function withTimeout(promise, secs, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not done within ${secs} s`)), secs * 1000);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function addAll(queue, n, chunk, jobOpts) {
  const started = performance.now();
  for (let i = 0; i < n; i += chunk) {
    const jobs = [];
    for (let k = i; k < Math.min(i + chunk, n); k++) {
      jobs.push({ name: 'noop', data: { i: k }, opts: jobOpts });
    }
    await queue.addBulk(jobs);
  }
  return (performance.now() - started) / 1000;
}

async function throughput(opts) {
  const connection = connectionOf(opts.url);
  const tasks = int(opts, 'tasks', 50000, 1, 10000000);
  const concurrency = int(opts, 'concurrency', 50, 1, 4096);
  const chunk = int(opts, 'chunk', 1000, 1, 100000);
  const timeout = int(opts, 'timeout', 600, 1, 3600);
  const removeOnComplete = (opts['remove-on-complete'] || 'true') === 'true';
  const name = `bench_tp_${randomUUID().replace(/-/g, '')}`;
  const probe = new IORedis(connection);
  const queue = new Queue(name, { connection });
  await queue.waitUntilReady();
  const pushSecs = await addAll(queue, tasks, chunk, { removeOnComplete, removeOnFail: false });
  const waiting = await queue.getWaitingCount();
  if (waiting !== tasks) throw new Error(`${waiting} jobs waiting after adding ${tasks}`);

  let firstStart = Infinity;
  let lastDone = 0;
  let completed = 0;
  let failed = 0;
  let resolveDone;
  const done = new Promise((resolve) => {
    resolveDone = resolve;
  });
  const worker = new Worker(
    name,
    async () => {
      const now = performance.now();
      if (now < firstStart) firstStart = now;
    },
    { connection, concurrency, autorun: false },
  );
  worker.on('completed', () => {
    lastDone = performance.now();
    completed += 1;
    if (completed + failed === tasks) resolveDone();
  });
  worker.on('failed', () => {
    failed += 1;
    if (completed + failed === tasks) resolveDone();
  });
  worker.on('error', (e) => process.stderr.write(`worker error: ${e}\n`));
  await worker.waitUntilReady();
  const before = await redisSide(probe);
  await probe.echo('queue-bench:work:start');
  const cpuBefore = process.cpuUsage();
  const running = worker.run();
  await withTimeout(done, timeout, 'throughput');
  const cpu = process.cpuUsage(cpuBefore);
  await probe.echo('queue-bench:work:end');
  const after = await redisSide(probe);
  await worker.close();
  await running;
  const secs = (lastDone - firstStart) / 1000;
  const counts = await queue.getJobCounts('waiting', 'active', 'completed', 'failed');
  await queue.obliterate({ force: true });
  await queue.close();
  probe.disconnect();
  return {
    bench: 'throughput',
    impl: 'bullmq',
    label: opts.label || '',
    tasks,
    concurrency,
    add_chunk: chunk,
    remove_on_complete: removeOnComplete,
    push_secs: round2(pushSecs),
    pushed_per_sec: Math.round(tasks / pushSecs),
    work_secs: round3(secs),
    tasks_per_sec: secs > 0 ? Math.round(completed / secs) : 0,
    completed,
    failed,
    client_cpu_usec_per_task: round2((cpu.user + cpu.system) / tasks),
    job_counts_after: counts,
    redis: redisDelta(before, after, tasks),
  };
}

// The most starts in any window [t, t + window) and the smallest gap, of sorted times.
function windowStats(sorted, window) {
  let most = 0;
  let lo = 0;
  for (let hi = 0; hi < sorted.length; hi++) {
    while (sorted[hi] - sorted[lo] >= window) lo += 1;
    most = Math.max(most, hi - lo + 1);
  }
  let minGap = Infinity;
  for (let i = 1; i < sorted.length; i++) minGap = Math.min(minGap, sorted[i] - sorted[i - 1]);
  return { most, minGap: Number.isFinite(minGap) ? minGap : 0 };
}

// times in µs.
function clockReport(times, windowUs) {
  const sorted = [...times].sort((a, b) => a - b);
  const { most, minGap } = windowStats(sorted, windowUs);
  const span = sorted.length ? sorted[sorted.length - 1] - sorted[0] : 0;
  const gaps = Math.max(sorted.length - 1, 0);
  return {
    most_in_window: most,
    min_gap_ms: round3(minGap / 1000),
    mean_gap_ms: gaps ? round3(span / 1000 / gaps) : 0,
    span_secs: round3(span / 1e6),
    starts_per_sec: span > 0 ? round3((gaps * 1e6) / span) : 0,
  };
}

async function precision(opts) {
  const connection = connectionOf(opts.url);
  const tasks = int(opts, 'tasks', 100, 2, 100000);
  const max = int(opts, 'max', 10, 1, 1000000);
  const duration = int(opts, 'duration', 1000, 1, 3600000);
  const workers = int(opts, 'workers', 3, 1, 64);
  const slots = int(opts, 'slots', 2, 1, 256);
  const windowMs = int(opts, 'window-ms', 1000, 1, 3600000);
  const timeout = int(opts, 'timeout', 600, 1, 3600);
  const name = `bench_precision_${randomUUID().replace(/-/g, '')}`;
  const probe = new IORedis(connection);
  const queue = new Queue(name, { connection });
  await queue.waitUntilReady();
  await addAll(queue, tasks, 1000, { removeOnComplete: true, removeOnFail: false });

  const starts = [];
  let completed = 0;
  let failed = 0;
  let resolveDone;
  const done = new Promise((resolve) => {
    resolveDone = resolve;
  });
  const all = [];
  for (let w = 0; w < workers; w++) {
    const worker = new Worker(
      name,
      async (job) => {
        starts.push({
          local_us: (performance.timeOrigin + performance.now()) * 1000,
          date_now_ms: Date.now(),
          processed_on_ms: job.processedOn,
        });
      },
      { connection, concurrency: slots, limiter: { max, duration }, autorun: false },
    );
    worker.on('completed', () => {
      completed += 1;
      if (completed + failed === tasks) resolveDone();
    });
    worker.on('failed', () => {
      failed += 1;
      if (completed + failed === tasks) resolveDone();
    });
    worker.on('error', (e) => process.stderr.write(`worker error: ${e}\n`));
    await worker.waitUntilReady();
    all.push(worker);
  }
  const before = await redisSide(probe);
  await probe.echo('queue-bench:work:start');
  const running = all.map((w) => w.run());
  await withTimeout(done, timeout, 'precision');
  await probe.echo('queue-bench:work:end');
  const after = await redisSide(probe);
  await Promise.all(all.map((w) => w.close()));
  await Promise.all(running);
  await queue.obliterate({ force: true });
  await queue.close();
  probe.disconnect();
  const windowUs = windowMs * 1000;
  return {
    bench: 'precision',
    impl: 'bullmq',
    label: opts.label || '',
    rate: `${max}/${duration}ms`,
    tasks,
    starts: starts.length,
    workers,
    slots_per_worker: slots,
    window_ms: windowMs,
    completed,
    failed,
    local_clock: clockReport(
      starts.map((s) => s.local_us),
      windowUs,
    ),
    date_now: clockReport(
      starts.map((s) => s.date_now_ms * 1000),
      windowUs,
    ),
    processed_on: clockReport(
      starts.filter((s) => s.processed_on_ms).map((s) => s.processed_on_ms * 1000),
      windowUs,
    ),
    redis: redisDelta(before, after, tasks),
  };
}

async function main() {
  const { command, opts } = parseArgs(process.argv.slice(2));
  if (!opts.url) throw new Error('--url is needed');
  let report;
  if (command === 'throughput') report = await throughput(opts);
  else if (command === 'precision') report = await precision(opts);
  else {
    process.stderr.write(`unknown command: ${command}\n`);
    usage(2);
  }
  process.stdout.write(JSON.stringify(report) + '\n');
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`error: ${e && e.stack ? e.stack : e}\n`);
    process.exit(1);
  },
);
