/**
 * The worker's life: connect to the coordinator (a DEALER: ZeroMQ connects and reconnects by itself,
 * resolving the host name again each time), say HELLO until a WELCOME comes, build the model from the
 * WELCOME's config, keep the weights of the latest WEIGHTS, compute each WORK item by item (a micro-batch
 * is the unit: its BN statistics are its own) and answer one RESULT per micro-batch as soon as it is
 * done. Heartbeats go out every heartbeatMs, between items too (one micro-batch's compute blocks the
 * event loop: workers.timeoutMs must exceed it). Lifecycle, as a Kubernetes Job needs it:
 * - HELLO at once, again after helloRetryMs, doubling up to helloMaxMs (`waiting_for_coordinator`),
 *   until a WELCOME. A HELLO sent while nothing listens waits in the DEALER's queue (the coordinator
 *   gets and answers every queued one: later WELCOMEs of the same run are ignored); the retries cover
 *   one that reached a coordinator which then died. A coordinator that does not know us (it restarted)
 *   answers our heartbeats with an error: HELLO again, at most once per helloRetryMs.
 * - giveUpMs without a word from any coordinator (compute not counted): return 1 (0: never).
 * - END: return 0 ('finished', 'stopped') or 1 ('failed', 'evicted'); with `rejoin`, an END with code
 *   'stopped' or 'failed' (a coordinator will resume) is not the end: wait for the next one.
 * - `signal` aborted (SIGTERM): finish the micro-batch in hand, hand back the rest of the request, say
 *   BYE (the coordinator plans unanswered micro-batches again, as for a lost worker), return 0 — after
 *   stopTimeoutMs at the latest.
 */
import { BlobPool } from '../shared/pool.js';
import { PROTOCOL_VERSION, type Message } from '../shared/protocol.js';
import { connectWorker } from '../shared/transport.js';
import { LIFECYCLE_DEFAULTS, type Lifecycle, type WorkerRunArgs } from './lifecycle.js';
import { WorkerSession } from './session.js';

export { LIFECYCLE_DEFAULTS, type Lifecycle, type WorkerRunArgs } from './lifecycle.js';
export { modelHash } from './session.js';

const DEADLINE = Symbol('deadline');

/** Resolves when `signal` is aborted (never without one). */
const aborted = (signal?: AbortSignal) => new Promise<void>((resolve) => (signal?.aborted ? resolve() : signal?.addEventListener('abort', () => resolve(), { once: true })));

/** Resolves after `ms`; `cancel` clears the timer. */
function delay(ms: number, unref = false): { done: Promise<void>; cancel: () => void } {
  let timer: NodeJS.Timeout | undefined;
  const done = new Promise<void>((resolve) => { timer = setTimeout(resolve, ms); if (unref) timer.unref(); });
  return { done, cancel: () => clearTimeout(timer) };
}

/**
 * Runs until END (0), the stop signal (0), a fatal error (1) or no coordinator for giveUpMs (1).
 * Messages are handled one at a time; between them the loop wakes at least every second to retry the
 * HELLO, check the give-up time and notice the stop signal.
 */
export async function runWorker(args: WorkerRunArgs): Promise<number> {
  const o: Lifecycle = { ...LIFECYCLE_DEFAULTS, ...args.lifecycle };
  const log = args.log;
  const pool = new BlobPool(1);
  const t = connectWorker(args.coordinator, { log, pool, curve: args.curve ?? undefined });
  const session = new WorkerSession(t, args, pool, o);
  const stop = aborted(args.signal);
  // from the stop signal on, the goodbye has stopTimeoutMs: then we leave whatever is pending
  const deadline: Promise<typeof DEADLINE> = stop.then(() => delay(o.stopTimeoutMs, true).done).then(() => DEADLINE);
  const messages = t.messages()[Symbol.asyncIterator]();
  let next: Promise<IteratorResult<Message>> | null = null;
  let lastContact = Date.now();
  log.info('connecting', { event: 'connecting', coordinator: args.coordinator, protocol: PROTOCOL_VERSION, backend: args.backend.name, giveUpSeconds: o.giveUpMs / 1000 });
  session.join(lastContact);
  try {
    for (;;) {
      if (args.signal?.aborted) return await leave(String(args.signal.reason ?? 'stop signal'));
      const now = Date.now();
      if (o.giveUpMs > 0 && now - lastContact > o.giveUpMs) {
        log.error('coordinator_unreachable', { event: 'coordinator_unreachable', coordinator: args.coordinator, waitedSeconds: Math.round((now - lastContact) / 1000) });
        return 1;
      }
      const untilHello = session.tick(now);
      const untilGiveUp = o.giveUpMs > 0 ? lastContact + o.giveUpMs - now + 1 : Infinity;
      const nap = delay(Math.max(10, Math.min(1000, untilHello, untilGiveUp)));
      next ??= messages.next();
      const r = await Promise.race([next, stop, nap.done]);
      nap.cancel();
      if (!r) continue; // woken by the timer or the stop signal
      next = null;
      if (r.done) {
        log.error('transport_closed', { event: 'transport_closed' });
        return 1;
      }
      const msg = r.value;
      lastContact = Date.now();
      let code: number | null | typeof DEADLINE;
      try {
        code = await Promise.race([session.handle(msg), deadline]);
      } catch (err) {
        // e.g. OutOfMemoryError: tell the coordinator (it plans the work again elsewhere) and stop
        log.error('worker_failed', { event: 'worker_failed', error: (err as Error).message });
        const requestId = msg.type === 'work' ? msg.requestId : null;
        await t.send({ type: 'error', requestId, code: 'fatal', message: `fatal: ${(err as Error).message}` }).catch(() => undefined);
        await t.send({ type: 'bye', reason: (err as Error).message }).catch(() => undefined);
        return 1;
      }
      if (code === DEADLINE) return timedOut();
      lastContact = Date.now(); // a long computation is not silence from the coordinator
      if (code !== null) return code;
    }
  } finally {
    session.stop();
    await t.close();
  }

  /** The stop signal: the results computed so far are sent (handle() awaited them); say BYE. */
  async function leave(reason: string): Promise<number> {
    session.stop();
    log.info('goodbye', { event: 'goodbye', reason, handedBack: session.handedBack });
    return (await Promise.race([t.send({ type: 'bye', reason: `stopping: ${reason}` }).catch(() => undefined), deadline])) === DEADLINE ? timedOut() : 0;
  }

  function timedOut(): number { // exit 0 all the same: the coordinator drops us after workers.timeoutMs
    log.warn('stop_timeout', { event: 'stop_timeout', seconds: o.stopTimeoutMs / 1000 });
    return 0;
  }
}
