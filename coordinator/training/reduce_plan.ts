/**
 * Pure planning of a step's reduce in the peer exchange: who owns which shard and who sends which block
 * of the canonical tree (shared/dataplane/canonical.ts), from who computed which micro-batch. No sockets.
 */
import { blocksOf, coversExactly } from '../../shared/dataplane/canonical.js';
import type { ReducePlan } from '../../shared/dataplane/exchange.js';
import type { WireFormat } from '../../shared/dataplane/half.js';
import type { ShardSgdArgs } from '../../shared/optim/sgd_shard.js';
import type { ModelSpec } from '../../shared/model/spec.js';

/** A worker on the data plane: its id there and where peers reach it. */
export interface DataMember { id: string; endpoint: string }

export interface ReduceArgs {
  step: number;
  attempt: number;
  /** Workers that hold the current weights: the shard owners (in id order, so the plan is deterministic). */
  members: readonly DataMember[];
  /** Micro-batch index → the data id of the worker holding its gradient. */
  holders: ReadonlyMap<number, string>;
  units: number;
  samples: number;
  range: [number, number];
  sgd: ShardSgdArgs;
  chunkElems: number;
  wireFormat: WireFormat;
}

/** The reduced elements: every trainable one, or only the classifier's when fine-tuning the last layer. */
export function reduceRange(spec: ModelSpec, finetune: 'all' | 'classifier'): [number, number] {
  return finetune === 'classifier' ? [spec.trainableCount - spec.classifierCount, spec.trainableCount] : [0, spec.trainableCount];
}

/** Holders that are not members any more (their micro-batches must be computed again). */
export function lostHolders(holders: ReadonlyMap<number, string>, members: readonly DataMember[]): number[] {
  const ids = new Set(members.map((m) => m.id));
  return [...holders].filter(([, h]) => !ids.has(h)).map(([i]) => i).sort((a, b) => a - b);
}

export function planReduce(a: ReduceArgs): ReducePlan {
  if (a.members.length === 0) throw new Error('no worker holds the current weights');
  const byHolder = new Map<string, number[]>();
  for (const [i, h] of a.holders) byHolder.set(h, [...(byHolder.get(h) ?? []), i]);
  const ids = new Set(a.members.map((m) => m.id));
  const blocks = [...byHolder].flatMap(([holder, held]) => {
    if (!ids.has(holder)) throw new Error(`micro-batches ${held.join(',')} are held by ${holder}, not a member`);
    return blocksOf(held, a.units).map((b) => ({ ...b, holder }));
  });
  if (!coversExactly(blocks, a.units)) throw new Error(`the held micro-batches do not cover 0..${a.units - 1} exactly once`);
  const members = [...a.members].sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0)).map((m) => ({ id: m.id, endpoint: m.endpoint }));
  return { step: a.step, attempt: a.attempt, members, range: a.range, units: a.units, blocks, samples: a.samples, sgd: a.sgd, chunkElems: a.chunkElems, wireFormat: a.wireFormat };
}
