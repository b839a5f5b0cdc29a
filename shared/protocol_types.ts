/**
 * The wire protocol's vocabulary (see ./protocol.ts for the format): its version and size defaults, the
 * message and control unions, what a decode yields, and `ProtocolError`. Types and constants only.
 */
import type { BlobPool } from './pool.js';
import type { ReducePlan } from './dataplane/exchange.js';

export const PROTOCOL_VERSION = 5;
export const DEFAULT_CHUNK_BYTES = 4 * 1024 * 1024;
/** Streamable blobs (weights, gradients) of at least this many bytes travel as a pulled stream. */
export const DEFAULT_STREAM_BYTES = 64 * 1024;
/** A stream is cut into at most this many part messages (several frames each when chunkBytes is small). */
export const MAX_STREAM_PARTS = 256;
export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024 * 1024;
export const DEFAULT_MAX_HEADER_BYTES = 16 * 1024 * 1024;

export type Mode = 'train' | 'validate' | 'features';
/** A micro-batch of a WORK: its id, images, and index in its job (the canonical tree's leaf, for the peer exchange). */
export interface WorkItem { id: string; count: number; index: number }
/**
 * Images a worker loads itself (data.loadOn "worker"): indices into its dataset's sample lists, which
 * equal the coordinator's (READY's dataHash says so). 'train': [sample, epoch, position] per image (the
 * augmentation recipe); 'res24' / 'full': [sample] per validation image.
 */
export interface WorkRefs { split: 'train' | 'res24' | 'full'; images: number[][] }
export interface ItemResult { id: string; count: number; lossSum: number; correct: number; finite: boolean }
/**
 * Why an END: 'finished' (the run is over), 'stopped' (signal or campaign: a coordinator will resume),
 * 'failed' (a runtime failure: a coordinator may resume), 'evicted' (this worker broke the protocol).
 */
export const END_CODES = ['finished', 'stopped', 'failed', 'evicted'] as const;
export type EndCode = (typeof END_CODES)[number];
/**
 * What an ERROR is about: 'unknown-worker' (coordinator: say HELLO), 'not-welcomed' (worker: WORK before
 * WELCOME), 'stale-weights' (worker: WORK for weights it does not hold), 'fatal' (worker: it stops),
 * 'state-refused' (worker: the peer it was sent to for weights does not hold them), 'reduce-failed'
 * (worker: its part of a peer reduce could not run, e.g. a kept gradient is missing), 'no-dataset' (worker: WORK by
 * reference but it has no dataset of its own).
 */
export const ERROR_CODES = ['unknown-worker', 'not-welcomed', 'stale-weights', 'fatal', 'state-refused', 'reduce-failed', 'no-dataset'] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];
export type Message =
  | { type: 'hello'; name: string; pid: number; host: string; backend: string; capacity: number }
  | { type: 'welcome'; runId: string; config: unknown; modelHash: string }
  /** dataId / dataEndpoint: the worker's place on the peer data plane (null in the central exchange). */
  | { type: 'ready'; modelHash: string; dataId: string | null; dataEndpoint: string | null;
      /** data.loadOn "worker": the fingerprint of the worker's sample lists (must equal the coordinator's). */
      dataHash: string | null }
  | { type: 'weights'; version: number; weights: Float32Array; bnStats: Float32Array }
  /** keep: the peer exchange's training — keep each micro-batch's gradient for the reduce, send none. */
  /** refs (data.loadOn "worker"): the images to load from the worker's own copy of the dataset; images and labels are then empty. */
  | { type: 'work'; requestId: number; step: number; mode: Mode; weightsVersion: number; imageSize: number; keep: boolean; refs: WorkRefs | null;
      items: WorkItem[]; images: Uint8Array; labels: Int32Array }
  | { type: 'result'; requestId: number; step: number; mode: Mode; items: ItemResult[];
      /** A streamed gradient arrives whole, in a buffer lent by the receiver's pool (give it back once added);
       *  an inline multi-frame one decoded with `chunks: true` comes as its frames' views. */
      gradSum: Float32Array | Float32Array[] | null; bnStats: Float32Array | null; features: Float32Array | null }
  // the peer exchange (training.exchange "peer"; see shared/dataplane/ and coordinator/training/peer_sync.ts)
  /** Weights then momentum (2 × parameters) of `version`, with the BN running statistics: coordinator ⇄ worker. */
  | { type: 'state'; version: number; state: Float32Array; bnStats: Float32Array | null }
  /** Coordinator → worker: send your `state` (for a checkpoint). */
  | { type: 'state_request'; version: number }
  /** Coordinator → worker: take weights `version` from peer fromId at fromEndpoint; answered by state_ready. */
  | { type: 'fetch_state'; version: number; fromId: string; fromEndpoint: string; bnStats: Float32Array }
  | { type: 'state_ready'; version: number }
  /** Coordinator → worker: run your part of this step's reduce; answered by reduced. */
  | { type: 'reduce'; plan: ReducePlan }
  | { type: 'reduced'; step: number; attempt: number }
  /** Coordinator → worker: the reduce (step, attempt) holds everywhere: its weights become `version`. */
  | { type: 'commit'; step: number; attempt: number; version: number; bnStats: Float32Array }
  | { type: 'heartbeat' }
  | { type: 'bye'; reason: string }
  | { type: 'end'; code: EndCode; reason: string }
  | { type: 'error'; requestId: number | null; code: ErrorCode; message: string };
export type MessageType = Message['type'];

/** Transport control messages (see the header): never handed to the application. */
export type Control =
  | { type: 'pull'; stream: number }
  | { type: 'part'; stream: number; offset: number; data: Buffer[] }
  | { type: 'drop'; stream: number; reason: string }
  | { type: 'gone'; stream: number; reason: string };
export type ControlType = Control['type'];

/** The streamed blob of a head: the message is complete once `bytes` bytes of stream `id` are in. */
export interface StreamInfo { id: number; field: string; dtype: DType; bytes: number }

/** What one received multipart message is. */
export type Incoming =
  | { kind: 'message'; msg: Message }
  /** A message whose `stream.field` is still null: its bytes come as parts once pulled. */
  | { kind: 'head'; msg: Message; stream: StreamInfo }
  | { kind: 'control'; control: Control };

export type ProtocolErrorCode = 'bad-frames' | 'too-large' | 'bad-json' | 'version' | 'unknown-type' | 'schema'
  | 'frame-count' | 'blob-bytes' | 'blob-align' | 'blob-type' | 'work-shape' | 'bad-chunk' | 'stream' | 'internal';

/** A message that is not valid protocol. `reason` is a short human sentence; `code` a stable tag. */
export class ProtocolError extends Error {
  /** The stream a rejected head announced, when it could be read (so the sender can be told to drop it). */
  stream?: number;

  constructor(readonly code: ProtocolErrorCode, readonly reason: string) {
    super(reason);
    this.name = 'ProtocolError';
  }
}

export interface DecodeLimits {
  /** Sum of all frame lengths (header included) plus the bytes of an announced stream. Default 1 GiB. */
  maxMessageBytes?: number;
  /** Where multi-frame blobs of at least pool.minBytes are assembled (reused buffers); default: fresh. */
  pool?: BlobPool;
  /**
   * Return a multi-frame `result.gradSum` as Float32Array views of its frames instead of one
   * reassembled array (when every frame is 4-byte aligned): a reader that only sums it saves a copy of
   * the whole gradient and its memory. Default false.
   */
  chunks?: boolean;
  /** Length of the JSON header frame. Default 16 MiB. */
  maxHeaderBytes?: number;
}

export type DType = 'f32' | 'u8' | 'i32';
