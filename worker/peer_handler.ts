/**
 * The worker's answers to the peer exchange's control messages (state, state_request, fetch_state,
 * reduce, commit), over its PeerRole (./peer.ts). A reduce or a fetch waits on peers, so it runs in the
 * background and answers when done: the message loop stays free for the next plan (a new attempt
 * supersedes one that waits on a lost peer) and for END.
 */
import type { Config } from '../shared/config/schema.js';
import type { Logger } from '../shared/log.js';
import type { ModelSpec } from '../shared/model/spec.js';
import type { BlobPool } from '../shared/pool.js';
import type { Message } from '../shared/protocol.js';
import type { WorkerTransport } from '../shared/transport.js';
import { AttemptEndedError } from '../shared/dataplane/exchange.js';
import { defaultAdvertise, PeerRole } from './peer.js';
import type { KeyPair } from '../shared/security/keys.js';
import { refusalLogger } from '../shared/security/refused.js';
import type { Trainer } from './trainer.js';

type PeerMessage = Extract<Message, { type: 'state' | 'state_request' | 'fetch_state' | 'reduce' | 'commit' }>;
const PEER_TYPES = new Set(['state', 'state_request', 'fetch_state', 'reduce', 'commit']);
export const isPeerMessage = (m: Message): m is PeerMessage => PEER_TYPES.has(m.type);

/** Elements per data-plane message (as the coordinator's plans say; also the state transfer's chunk). */
const CHUNK_ELEMS = 1 << 19;

export interface PeerHost {
  /** The trainer to hand new weights to (null before a WELCOME). */
  trainer(): Trainer | null;
  /** The weights version the worker now computes with. */
  setVersion(v: number): void;
}

export class PeerHandler {
  private role: PeerRole | null = null;
  /**
   * Fault injection for tests and the stress script: DATAPLANE_FAULT=NAME:die-in-reduce:STEP makes the
   * worker called NAME kill itself (SIGKILL) in that step's reduce, after its data went out and before
   * it reports: its peers are mid-exchange or done, the coordinator is waiting for it.
   */
  private readonly fault: string | null;

  private readonly refused = refusalLogger(() => this.log, 'data');

  /** `keys`: the worker's CURVE key pair when it talks CURVE to the coordinator; the data plane then does too. */
  constructor(private readonly t: WorkerTransport, private readonly pool: BlobPool, private readonly log: Logger, private readonly host: PeerHost, name: string,
    private readonly keys: KeyPair | null = null) {
    const f = process.env.DATAPLANE_FAULT ?? '';
    this.fault = f.startsWith(`${name}:`) ? f.slice(name.length + 1) : null;
  }

  /** After a WELCOME: the data plane for this run (null in the central exchange). */
  async open(config: Config, spec: ModelSpec, coordinator: string, advertise?: string): Promise<{ id: string; endpoint: string } | null> {
    await this.close();
    if (config.training.exchange !== 'peer') return null;
    const bind = config.workers.dataBind;
    // CURVE: peers dial us with our id as the server key and show a key of the coordinator's allow-list (from the WELCOME)
    const allowed = new Set(config.security.allowedWorkers);
    const curve = this.keys && allowed.size > 0 ? { client: this.keys, allow: (k: string) => allowed.has(k), refused: (k: string, addr: string) => this.refused(k, addr, 'key-not-allowed') } : null;
    this.role = await PeerRole.open({ params: spec.trainableCount, bind, advertise: advertise ?? defaultAdvertise(coordinator), chunkElems: CHUNK_ELEMS, curve });
    this.log.info('data_plane', { event: 'data_plane', id: this.role.id, endpoint: this.role.endpoint });
    return { id: this.role.id, endpoint: this.role.endpoint };
  }

  /** Keeps a micro-batch's gradient for the reduce (WORK with keep). */
  keep(step: number, index: number, grad: Float32Array): void {
    if (!this.role) throw new Error('a WORK with keep, but no data plane (training.exchange is not "peer")');
    this.role.keep(step, index, grad);
  }

  async handle(msg: PeerMessage): Promise<void> {
    const role = this.role;
    if (!role) {
      if (msg.type === 'state') this.pool.give(msg.state);
      this.log.warn('unexpected_message', { event: 'unexpected_message', type: msg.type, reason: 'no data plane' });
      return;
    }
    switch (msg.type) {
      case 'state':
        try {
          role.load(msg.version, msg.state);
        } finally {
          this.pool.give(msg.state);
        }
        this.live(msg.version, msg.bnStats);
        await this.t.send({ type: 'state_ready', version: msg.version });
        return;
      case 'state_request':
        if (role.version !== msg.version) return void (await this.t.send({ type: 'error', requestId: null, code: 'state-refused', message: `have version ${role.version}` }));
        await this.t.send({ type: 'state', version: role.version, state: role.snapshot(), bnStats: null });
        return;
      case 'fetch_state':
        role.fetch({ id: msg.fromId, endpoint: msg.fromEndpoint }, msg.version, 60_000).then(() => {
          this.live(msg.version, msg.bnStats);
          return this.t.send({ type: 'state_ready', version: msg.version });
        }, (err: Error) => this.t.send({ type: 'error', requestId: null, code: 'state-refused', message: err.message })).catch(() => undefined);
        return;
      case 'reduce': {
        const { step, attempt } = msg.plan;
        const die = this.fault === `die-in-reduce:${step}`; // test only, see the constructor
        role.reduce(msg.plan).then(async () => {
          if (die) process.kill(process.pid, 'SIGKILL');
          await this.t.send({ type: 'reduced', step, attempt });
        }, (err: Error) => {
          if (err instanceof AttemptEndedError) return; // a newer attempt runs, or the run is over
          this.log.warn('reduce_failed', { event: 'reduce_failed', step, attempt, error: err.message });
          return this.t.send({ type: 'error', requestId: null, code: 'reduce-failed', message: err.message });
        }).catch(() => undefined);
        return;
      }
      case 'commit':
        role.commit(msg.step, msg.attempt, msg.version);
        this.live(msg.version, msg.bnStats);
        return;
    }
  }

  /** The role's live weights (with these BN statistics) become the trainer's, as `version`. */
  private live(version: number, bnStats: Float32Array | null): void {
    const trainer = this.host.trainer();
    if (trainer && bnStats) trainer.setState({ weights: this.role!.weights, bnStats });
    this.host.setVersion(version);
  }

  async close(): Promise<void> {
    const r = this.role;
    this.role = null;
    await r?.close();
  }
}
