/**
 * What a peer's RESULT must be before anything of it is added (pure): an answer to units of a request
 * given to that peer and not yet answered, with their sizes, in the request's mode and step, and blobs of
 * the model's shapes. A failed check names an offence code; its text is for people.
 */
import type { ItemResult, Message, Mode } from '../../shared/protocol.js';

type ResultMessage = Extract<Message, { type: 'result' }>;

/** How a peer broke the protocol (counted against it; see ./offences.ts). */
export type OffenceCode =
  | 'unexpected-type' // a message a coordinator never takes (welcome, weights, work, end)
  | 'not-ready' // a result or error before READY
  | 'not-assigned' // a result or error for a request not given to this peer
  | 'bad-items' // no items, units not pending in the request, wrong counts
  | 'wrong-mode' // mode or step other than the request's
  | 'gradient' // gradient missing, of the wrong length, or where none belongs
  | 'bn-stats' // BN statistics missing or of the wrong length
  | 'features' // features missing or of the wrong length
  | 'stuck' // no answer within the micro-batch deadline
  | 'duplicate-name' // a HELLO with the name of another live worker
  | 'evicted'; // anything from an evicted worker

/** Sizes a result's blobs must have: the model's. */
export interface ResultShape {
  /** Gradient elements (spec.trainableCount). */
  gradient: number;
  /** BN statistics per finite training micro-batch (spec.bnStatCount). */
  bnStats: number;
  /** Features per image (spec.embeddingSize). */
  features: number;
}

/** The request a result claims to answer: its mode, step and unanswered units (id → images). */
export interface Expected {
  mode: Mode;
  step: number;
  pending: ReadonlyMap<string, number>;
  /** Training whose gradients stay on the worker (the peer exchange): a RESULT carries none. */
  keep?: boolean;
}

export interface Rejection {
  code: OffenceCode;
  detail: string;
  /** The request's units the result answered (to plan again); [] when its items cannot be trusted. */
  ids: string[];
}

/** A result that passed the dispatcher's checks but not its consumer's (thrown by an Accept). */
export class MalformedResultError extends Error {
  constructor(readonly code: OffenceCode, detail: string) {
    super(detail);
    this.name = 'MalformedResultError';
  }
}

const lengthOf = (a: Float32Array | Float32Array[]): number => (Array.isArray(a) ? a.reduce((s, c) => s + c.length, 0) : a.length);

/** null when `msg` is a well-formed answer to `want`, else why not. */
export function checkResult(msg: ResultMessage, want: Expected, shape: ResultShape): Rejection | null {
  const seen = new Set<string>();
  for (const it of msg.items) {
    const count = want.pending.get(it.id);
    if (count === undefined || seen.has(it.id)) return { code: 'bad-items', detail: `unit ${it.id} is not pending in this request`, ids: [] };
    if (it.count !== count) return { code: 'bad-items', detail: `unit ${it.id} has ${count} images, the result says ${it.count}`, ids: [] };
    if (it.correct > it.count) return { code: 'bad-items', detail: `unit ${it.id}: ${it.correct} correct of ${it.count}`, ids: [] };
    seen.add(it.id);
  }
  if (!seen.size) return { code: 'bad-items', detail: 'no items', ids: [] };
  const ids = [...seen];
  const no = (code: OffenceCode, detail: string): Rejection => ({ code, detail, ids });
  if (msg.mode !== want.mode || msg.step !== want.step) {
    return no('wrong-mode', `${msg.mode} result for step ${msg.step}, the request was ${want.mode} for step ${want.step}`);
  }
  const images = msg.items.reduce((s, it) => s + it.count, 0);
  const finite = msg.items.filter((it) => it.finite).length;
  const g = msg.gradSum === null ? null : lengthOf(msg.gradSum);
  if (want.mode === 'train') {
    if (g !== null && g !== shape.gradient) return no('gradient', `gradient has ${g} elements, expected ${shape.gradient}`);
    if (want.keep && g !== null) return no('gradient', 'a gradient in a result whose gradients stay on the worker');
    if (finite && g === null && !want.keep) return no('gradient', `${finite} finite micro-batch(es) without a gradient`);
    const bn = msg.bnStats?.length ?? null;
    if (finite && bn !== finite * shape.bnStats) return no('bn-stats', `BN statistics: ${bn ?? 'none'}, expected ${finite * shape.bnStats}`);
    if (!finite && bn !== null && bn !== 0) return no('bn-stats', 'BN statistics without a finite micro-batch');
  } else if (g !== null || msg.bnStats !== null) {
    return no('gradient', `a ${want.mode} result carries a gradient or BN statistics`);
  }
  const f = msg.features?.length ?? null;
  if (want.mode === 'features' ? f !== images * shape.features : f !== null) {
    return no('features', `features: ${f ?? 'none'}, expected ${want.mode === 'features' ? images * shape.features : 'none'}`);
  }
  return null;
}

/** Items of a result that were finite, in order, with their slice of the concatenated BN statistics. */
export function finiteItems(msg: ResultMessage, bnStatCount: number): { item: ItemResult; stats: Float32Array | null }[] {
  const out: { item: ItemResult; stats: Float32Array | null }[] = [];
  let k = 0;
  for (const item of msg.items) {
    if (!item.finite) continue;
    const stats = msg.bnStats ? msg.bnStats.subarray(k * bnStatCount, (k + 1) * bnStatCount) : null;
    k += 1;
    out.push({ item, stats });
  }
  return out;
}
