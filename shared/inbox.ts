/**
 * Received messages on their way to the application, in order per peer: a message still waiting for its
 * stream (a slot with no `msg` yet) holds back that peer's later messages, heartbeats excepted (they are
 * passed on at once, so a peer waiting for its turn to upload still counts as alive). One consumer.
 */
import type { Message } from './protocol.js';
import type { Envelope } from './transport_types.js';

/** A message in a peer's queue: null until its stream is complete. */
export interface Slot { msg: Message | null }

export class PeerInbox {
  private readonly held = new Map<string, Slot[]>();
  private readonly ready: Envelope[] = [];
  private wake: (() => void) | null = null;
  private ended = false;
  private receiving = false;

  /** A complete message: handed on now, or after the peer's messages still waiting for their streams. */
  put(peer: string, msg: Message): void {
    const q = this.held.get(peer);
    if (q && msg.type !== 'heartbeat') q.push({ msg });
    else this.deliver(peer, msg);
  }

  /** A message still waiting for its stream: the peer's later messages wait behind it. */
  hold(peer: string, slot: Slot): void {
    const q = this.held.get(peer) ?? [];
    q.push(slot);
    this.held.set(peer, q);
  }

  /** Takes a slot out (its stream was dropped) and hands on what it held back. */
  remove(peer: string, slot: Slot): void {
    const q = this.held.get(peer);
    const i = q?.indexOf(slot) ?? -1;
    if (q && i >= 0) q.splice(i, 1);
    this.flush(peer);
  }

  /** Hands on the peer's complete messages, up to the first still waiting for its stream. */
  flush(peer: string): void {
    const q = this.held.get(peer);
    if (!q) return;
    while (q.length && q[0].msg) this.deliver(peer, q.shift()!.msg!);
    if (!q.length) this.held.delete(peer);
  }

  /** Forgets what the peer has waiting. */
  dropPeer(peer: string): void {
    this.held.delete(peer);
  }

  /** No more messages: `incoming()` ends once what is ready has been taken. */
  end(): void {
    this.ended = true;
    this.wake?.();
  }

  private deliver(peer: string, msg: Message): void {
    this.ready.push({ peer, msg });
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  /** Complete messages, in order per peer, until `end()`. */
  async *incoming(): AsyncGenerator<Envelope> {
    if (this.receiving) throw new Error('messages() is already being iterated: use one loop per transport');
    this.receiving = true;
    try {
      for (;;) {
        const e = this.ready.shift();
        if (e) {
          yield e;
          continue;
        }
        if (this.ended) return;
        await new Promise<void>((resolve) => (this.wake = resolve));
      }
    } finally {
      this.receiving = false;
    }
  }
}
