/**
 * The protocol's JSON schemas and their compiled validators: which binary fields each message type
 * carries (`BLOBS`), the scalar header fields of every message and control type, and the checks that
 * encode and decode share (header schema, a work message's shape).
 */
import { Ajv, type ValidateFunction } from 'ajv';
import { END_CODES, ERROR_CODES, PROTOCOL_VERSION, ProtocolError, type ControlType, type DType, type MessageType, type WorkItem, type WorkRefs } from './protocol_types.js';

interface BlobSpec { field: string; dtype: DType; nullable: boolean; streamable: boolean }
export interface BlobHeader { field: string; dtype: DType; bytes: number; frames: number; stream?: number }
export const CTOR = { f32: Float32Array, u8: Uint8Array, i32: Int32Array } as const;

const blob = (field: string, dtype: DType, nullable = false, streamable = false): BlobSpec => ({ field, dtype, nullable, streamable });
export const BLOBS: Record<MessageType, BlobSpec[]> = {
  hello: [], welcome: [], ready: [], heartbeat: [], bye: [], end: [], error: [],
  state: [blob('state', 'f32', false, true), blob('bnStats', 'f32', true)], state_request: [],
  fetch_state: [blob('bnStats', 'f32')], state_ready: [], reduce: [], reduced: [], commit: [blob('bnStats', 'f32')],
  weights: [blob('weights', 'f32', false, true), blob('bnStats', 'f32')],
  work: [blob('images', 'u8'), blob('labels', 'i32')],
  result: [blob('gradSum', 'f32', true, true), blob('bnStats', 'f32', true), blob('features', 'f32', true)],
};

const str = { type: 'string' };
/** Names that end up in every log line (a worker's name, host, backend): short, no control characters. */
const shortStr = { type: 'string', minLength: 1, maxLength: 256, pattern: '^[^\\u0000-\\u001f\\u007f]*$' };
const nat = { type: 'integer', minimum: 0 };
const int = { type: 'integer' };
const mode = { enum: ['train', 'validate', 'features'] };
const NON_FINITE = ['NaN', 'Infinity', '-Infinity'];
const obj = (props: Record<string, object>) => ({
  type: 'object', additionalProperties: false, required: Object.keys(props), properties: props,
});
const nullable = (s: object) => ({ anyOf: [s, { type: 'null' }] });
const num = { type: 'number' };
/** shared/dataplane/exchange.ts ReducePlan */
const PLAN = obj({
  step: int, attempt: nat, units: nat, samples: { type: 'integer', minimum: 1 }, chunkElems: { type: 'integer', minimum: 1 },
  members: { type: 'array', minItems: 1, items: obj({ id: str, endpoint: str }) },
  range: { type: 'array', minItems: 2, maxItems: 2, items: nat },
  blocks: { type: 'array', items: obj({ lo: nat, size: { type: 'integer', minimum: 1 }, holder: str }) },
  sgd: obj({ lr: num, momentum: num, weightDecay: num, first: { type: 'boolean' } }),
  wireFormat: { enum: ['fp32', 'bf16', 'fp16'] },
});
const FIELDS: Record<MessageType, Record<string, object>> = {
  hello: { name: shortStr, pid: nat, host: shortStr, backend: shortStr, capacity: { type: 'number', minimum: 0 } },
  welcome: { runId: str, config: {}, modelHash: str },
  ready: { modelHash: str, dataId: nullable(str), dataEndpoint: nullable(str), dataHash: nullable(str) },
  weights: { version: int },
  work: { requestId: nat, step: int, mode, weightsVersion: int, imageSize: { type: 'integer', minimum: 1 }, keep: { type: 'boolean' },
    refs: nullable(obj({ split: { enum: ['train', 'res24', 'full'] }, images: { type: 'array', items: { type: 'array', minItems: 1, maxItems: 3, items: nat } } })),
    items: { type: 'array', items: obj({ id: str, count: nat, index: nat }) } },
  state: { version: int }, state_request: { version: int }, state_ready: { version: int },
  fetch_state: { version: int, fromId: str, fromEndpoint: str },
  reduce: { plan: PLAN }, reduced: { step: int, attempt: nat }, commit: { step: int, attempt: nat, version: int },
  result: { requestId: nat, step: int, mode, items: { type: 'array', items: obj({ id: str, count: nat,
    lossSum: { anyOf: [{ type: 'number' }, { enum: NON_FINITE }] }, correct: nat, finite: { type: 'boolean' } }) } },
  heartbeat: {}, bye: { reason: str }, end: { code: { enum: [...END_CODES] }, reason: str },
  error: { requestId: { anyOf: [nat, { type: 'null' }] }, code: { enum: [...ERROR_CODES] }, message: str },
};

function blobSchema(b: BlobSpec): object {
  const s = obj({ field: { const: b.field }, dtype: { const: b.dtype },
    bytes: b.nullable ? { type: 'integer', minimum: -1 } : nat, frames: nat }) as { properties: Record<string, object> };
  if (b.streamable) s.properties.stream = nat; // optional: present when the bytes come as a stream
  return s;
}

function headerSchema(type: MessageType): object {
  const blobs = BLOBS[type].map(blobSchema);
  const blobsSchema = blobs.length ? { type: 'array', items: blobs, minItems: blobs.length, maxItems: blobs.length }
    : { type: 'array', maxItems: 0 };
  return obj({ v: { const: PROTOCOL_VERSION }, type: { const: type }, ...FIELDS[type], blobs: blobsSchema });
}

const CONTROL_FIELDS: Record<ControlType, Record<string, object>> = {
  pull: { stream: nat }, part: { stream: nat, offset: nat }, drop: { stream: nat, reason: str }, gone: { stream: nat, reason: str },
};

export const ajv = new Ajv({ allErrors: false, strict: true });
export const VALIDATORS = new Map<string, ValidateFunction>(
  (Object.keys(BLOBS) as MessageType[]).map((t) => [t, ajv.compile(headerSchema(t))]),
);
export const CONTROL_VALIDATORS = new Map<string, ValidateFunction>((Object.keys(CONTROL_FIELDS) as ControlType[]).map((t) =>
  [t, ajv.compile(obj({ v: { const: PROTOCOL_VERSION }, type: { const: t }, ...CONTROL_FIELDS[t] }))]));

export type Header = Record<string, unknown> & { type: MessageType; blobs: BlobHeader[] };

export function checkHeader(h: Record<string, unknown>, what: string): Header {
  const type = String(h.type);
  const validate = VALIDATORS.get(type)!;
  if (!validate(h)) {
    throw new ProtocolError('schema', `${what} '${type}' header: ${ajv.errorsText(validate.errors)}`);
  }
  return h as Header;
}

export function checkWorkShape(imageSize: number, items: WorkItem[], images: number, labels: number, what: string, refs: WorkRefs | null = null): void {
  const n = items.reduce((s, it) => s + it.count, 0);
  if (refs) { // the worker loads the images: one reference per image, none sent
    const width = refs.split === 'train' ? 3 : 1;
    if (refs.images.length !== n || refs.images.some((r) => r.length !== width) || images !== 0 || labels !== 0) {
      throw new ProtocolError('work-shape', `${what} 'work': ${n} images by reference need ${n} ${refs.split} references of ${width} numbers and no image or label bytes`);
    }
    return;
  }
  const want = n * imageSize * imageSize * 3;
  if (images !== want || labels !== n) {
    throw new ProtocolError('work-shape', `${what} 'work': ${n} images of ${imageSize}² need ${want} image bytes `
      + `and ${n} labels, got ${images} and ${labels}`);
  }
}
