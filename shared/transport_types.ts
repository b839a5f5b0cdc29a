/**
 * The transport's public surface, shared by the socket wrappers (./transport.ts) and the stream machinery
 * under them (./streams.ts): the options, the two endpoint interfaces and the errors a send can reject
 * with. No code that touches a socket lives here.
 */
import type { BlobPool } from './pool.js';
import type { Logger } from './log.js';
import type { Message, MessageType } from './protocol.js';
import type { ZapPolicy } from './zap.js';

/**
 * CURVE on the coordinator's ROUTER: its key pair (Z85) and who may connect (a ZAP policy, ./zap.ts).
 * `mismatch` hears of a client that did not speak CURVE at all (no key to show): its reason code.
 */
export interface CurveServer extends ZapPolicy { publicKey: string; secretKey: string; mismatch?(code: string): void }
/** CURVE on a worker's DEALER: its key pair and the coordinator's public key (Z85). */
export interface CurveClient { publicKey: string; secretKey: string; serverKey: string }

export interface Envelope { peer: string; msg: Message }
/** What a stream's head announces: its message type, the streamed field and its size. */
export interface StreamAnnounce { type: MessageType; field: string; bytes: number }
export interface TransportOptions {
  chunkBytes?: number;
  maxMessageBytes?: number;
  log?: Logger;
  /** How long close() (and process exit) may spend delivering queued messages. Default 1000 ms. */
  lingerMs?: number;
  /** ZMTP heartbeat interval; the connection is dropped after 6 silent intervals. 0 disables. Default 5000. */
  heartbeatMs?: number;
  /**
   * Where streamed blobs (weights, gradients) are received: reused buffers, and through `maxLent` a bound
   * on how many are received at once. Give each back with pool.give when done. Default: a fresh buffer
   * per stream, no bound.
   */
  pool?: BlobPool;
  /** Decode inline multi-frame result gradients as frame views (see DecodeLimits.chunks). */
  chunks?: boolean;
  /** Weights and gradients of at least this many bytes travel as a pulled stream. Default 64 KiB. */
  streamBytes?: number;
  /** A pulled stream with no part for this long is dropped (warn). Default 60000. */
  streamTimeoutMs?: number;
  /**
   * ZMQ_RCVHWM: messages libzmq reads ahead per peer before it stops reading that connection (the sender
   * then waits). Bounds the stream parts held in memory when the application lags. Default 1000 (libzmq's).
   * Keep it large where the event loop blocks for long (a worker computing): ZMTP heartbeats are not read
   * while a peer's queue is full.
   */
  receiveHighWaterMark?: number;
  /**
   * Whether to take a stream `peer` announces. A refused stream gets no buffer and no pull (the peer is
   * told `drop`), and its message is dropped. Default: every stream. The coordinator takes gradients of
   * the model's size from ready workers only.
   */
  admit?: (peer: string, s: StreamAnnounce) => boolean;
}
export interface CoordinatorTransport {
  readonly endpoint: string;
  send(peer: string, msg: Message): Promise<void>;
  messages(): AsyncIterable<Envelope>;
  /**
   * A lost worker: drop its incomplete incoming messages (their buffers go back to the pool) and its
   * streams not yet pulled (their send() rejects with PeerGoneError).
   */
  forget(peer: string): void;
  close(): Promise<void>;
}
export interface WorkerTransport {
  send(msg: Message): Promise<void>;
  messages(): AsyncIterable<Message>;
  close(): Promise<void>;
}

/** The coordinator sent to a peer that is not (or no longer) connected: treat that worker as lost. */
export class PeerGoneError extends Error {
  constructor(readonly peer: string, options?: { cause?: unknown }) {
    super(`peer ${peer} is gone (EHOSTUNREACH)`, options);
    this.name = 'PeerGoneError';
  }
}

/** The peer is connected but its outgoing queue is full (ZMQ_SNDHWM messages not yet taken): it is stuck. */
export class PeerBusyError extends Error {
  constructor(readonly peer: string, options?: { cause?: unknown }) {
    super(`peer ${peer} is not draining its queue (EAGAIN at the high-water mark)`, options);
    this.name = 'PeerBusyError';
  }
}

/** send() after close(), or a queued send that the close cut off. */
export class TransportClosedError extends Error {
  constructor(options?: { cause?: unknown }) {
    super('transport is closed', options);
    this.name = 'TransportClosedError';
  }
}
