/**
 * The face model of the demo's synthetic faces (synth_faces.ts), drawn with the rasteriser of ./canvas.ts.
 * An identity is a set of traits drawn once from its own seeded stream — COARSE ones that survive down-sampling to 8–16 px (face oval size and shape, skin, hair
 * colour, volume, length and hair line, eye/nose/mouth positions and sizes, beard, lip colour) and FINE
 * ones that need ≥ 32–64 px of face (eyebrow thickness/arch/tilt/taper, iris colour, eye tilt, lid
 * line, a plaid skin texture of two plane waves with a 3.9–6.2 px period at 112 px, 1–4 moles of 1–2 px
 * radius, 0–3 thin wrinkle/scar lines ~1 px wide). Each image adds nuisance (`Nuisance`): a similarity
 * transform (±4 % shift, ±7 % scale, ±8° roll), a small yaw-like shift of the inner features,
 * expression (smile, open mouth, raised brows), a random background with blobs, a random shirt colour,
 * a lighting ramp with gain and colour cast, and noise. Units of the face model: the image's shorter
 * side; origin at the face centre, y down.
 */
import type { Rng } from '../../shared/rng.js';
import { Canvas, type Rgb } from './canvas.js';

export { Canvas, type Rgb } from './canvas.js';

const U = (r: Rng, a: number, b: number): number => a + (b - a) * r.next();
const mix = (c0: Rgb, c1: Rgb, t: number): Rgb => [c0[0] + (c1[0] - c0[0]) * t, c0[1] + (c1[1] - c0[1]) * t, c0[2] + (c1[2] - c0[2]) * t];
const shade = (c: Rgb, f: number): Rgb => [c[0] * f, c[1] * f, c[2] * f];
const pick = <T>(r: Rng, xs: readonly T[]): T => xs[r.int(0, xs.length - 1)];
const anyColor = (r: Rng): Rgb => [r.int(20, 235), r.int(20, 235), r.int(20, 235)];

const HAIR: Rgb[] = [[28, 24, 22], [62, 42, 30], [110, 75, 45], [200, 165, 105], [140, 62, 32], [165, 160, 155]];
const IRIS: Rgb[] = [[55, 32, 20], [100, 62, 32], [118, 98, 48], [65, 112, 68], [70, 110, 170], [118, 128, 140]];

/** Identity traits visible even at 8–16 px. Lengths in face units (see the file comment). */
export interface CoarseTraits {
  female: boolean;
  skin: Rgb;
  hair: Rgb;
  lip: Rgb;
  /** Half-width and half-height of the face oval; jaw width and chin length relative to them. */
  faceA: number;
  faceB: number;
  jaw: number;
  chin: number;
  bald: boolean;
  /** Hair above the face top, hair half-width relative to faceA, length below the face (long hair). */
  hairTop: number;
  hairWidth: number;
  hairLength: number;
  /** Lowest point of the fringe (y), its horizontal offset (parting) and tilt. */
  hairline: number;
  part: number;
  fringeTilt: number;
  eyeY: number;
  eyeDX: number;
  eyeA: number;
  eyeB: number;
  noseY: number;
  noseW: number;
  mouthY: number;
  mouthW: number;
  lipT: number;
  /** Beard opacity, 0 = none. */
  beard: number;
  earY: number;
}

/** Identity traits that need ≥ 32–64 px to be seen. */
export interface FineTraits {
  iris: Rgb;
  eyeTilt: number;
  lid: number;
  brow: { len: number; gap: number; tilt: number; arch: number; hw: number; taper: number; dark: number };
  /** Skin texture: plane waves (angle in face coordinates, period in face units, relative amplitude). */
  waves: { angle: number; period: number; amp: number; phase: number }[];
  marks: { x: number; y: number; r: number; alpha: number }[];
  lines: { x: number; y: number; len: number; angle: number; hw: number }[];
}

export interface Identity {
  coarse: CoarseTraits;
  fine: FineTraits;
}

/** An identity's traits, from its own stream (e.g. rng(seed, key, role, index)). */
export function drawIdentity(r: Rng): Identity {
  const female = r.next() < 0.5;
  const t = r.next();
  const base = t < 0.5 ? mix([242, 210, 188], [200, 148, 112], t * 2) : mix([200, 148, 112], [100, 66, 46], (t - 0.5) * 2);
  const skin: Rgb = [base[0] + U(r, -8, 8), base[1] + U(r, -6, 6), base[2] + U(r, -8, 8)];
  const hair = mix(pick(r, HAIR), pick(r, HAIR), U(r, 0, 0.4));
  const faceA = U(r, 0.22, 0.29);
  const faceB = U(r, 0.29, 0.36);
  const bald = !female && r.next() < 0.12;
  const long = r.next() < (female ? 0.8 : 0.15);
  const eyeA = U(r, 0.03, 0.042);
  const coarse: CoarseTraits = {
    female, skin, hair, lip: mix(skin, [175, 60, 72], U(r, 0.25, female ? 0.7 : 0.45)),
    faceA, faceB, jaw: U(r, 0.72, 0.95), chin: U(r, 0.95, 1.1), bald,
    hairTop: U(r, 0.02, 0.1), hairWidth: U(r, 1.04, 1.32), hairLength: long ? U(r, 0.1, 0.45) : U(r, 0, 0.05),
    hairline: U(r, -0.25, -0.11), part: U(r, -0.09, 0.09), fringeTilt: U(r, -0.3, 0.3),
    eyeY: U(r, -0.07, 0.01), eyeDX: U(r, 0.085, 0.125), eyeA, eyeB: eyeA * U(r, 0.42, 0.62),
    noseY: U(r, 0.07, 0.13), noseW: U(r, 0.028, 0.048),
    mouthY: U(r, 0.17, 0.25), mouthW: U(r, 0.05, 0.085), lipT: U(r, 0.011, 0.022),
    beard: !female && r.next() < 0.3 ? U(r, 0.35, 0.9) : 0, earY: U(r, -0.05, 0.03),
  };
  const a0 = U(r, 0, Math.PI);
  const wave = (angle: number): FineTraits['waves'][number] => ({ angle, period: U(r, 0.035, 0.055), amp: U(r, 0.05, 0.1), phase: U(r, 0, 2 * Math.PI) });
  const fine: FineTraits = {
    iris: mix(pick(r, IRIS), pick(r, IRIS), U(r, 0, 0.3)), eyeTilt: U(r, -0.15, 0.15), lid: U(r, 0.003, 0.007),
    brow: { len: U(r, 0.06, 0.09), gap: U(r, 0.032, 0.055), tilt: U(r, -0.2, 0.35), arch: U(r, -0.004, 0.018), hw: U(r, 0.005, 0.014), taper: U(r, 0.3, 1), dark: U(r, 0, 0.6) },
    waves: [wave(a0), wave(a0 + U(r, Math.PI / 4, (3 * Math.PI) / 4))],
    marks: Array.from({ length: r.int(1, 4) }, () => ({ x: U(r, -0.75, 0.75), y: U(r, -0.55, 0.75), r: U(r, 0.008, 0.015), alpha: U(r, 0.6, 0.95) })),
    lines: Array.from({ length: r.int(0, 3) }, () => ({ x: U(r, -0.6, 0.6), y: U(r, -0.75, 0.6), len: U(r, 0.04, 0.09), angle: U(r, -1.2, 1.2), hw: U(r, 0.004, 0.006) })),
  };
  return { coarse, fine };
}

/** What changes from image to image of one identity. */
export interface Nuisance {
  dx: number;
  dy: number;
  scale: number;
  rot: number;
  /** Horizontal shift of eyes, nose and mouth inside the oval (a hint of yaw). */
  yaw: number;
  smile: number;
  open: number;
  browRaise: number;
  bg0: Rgb;
  bg1: Rgb;
  bgAngle: number;
  blobs: { x: number; y: number; r: number; c: Rgb }[];
  shirt: Rgb;
  gain: number;
  gx: number;
  gy: number;
  cast: Rgb;
  noise: number;
}

/** A fresh nuisance draw; `geometry` false keeps pose and expression fixed (for separability checks). */
export function drawNuisance(r: Rng, geometry = true): Nuisance {
  const g = geometry ? 1 : 0;
  const isOpen = r.next() < 0.25;
  const open = U(r, 0.3, 1);
  return {
    dx: g * U(r, -0.04, 0.04), dy: g * U(r, -0.04, 0.04), scale: 1 + g * U(r, -0.07, 0.07), rot: g * U(r, -0.14, 0.14), yaw: g * U(r, -0.02, 0.02),
    smile: g * U(r, -0.004, 0.012), open: g && isOpen ? open : 0, browRaise: g * U(r, -0.006, 0.008),
    bg0: anyColor(r), bg1: anyColor(r), bgAngle: U(r, 0, 2 * Math.PI),
    blobs: Array.from({ length: r.int(1, 3) }, () => ({ x: U(r, 0, 1), y: U(r, 0, 1), r: U(r, 0.1, 0.3), c: anyColor(r) })),
    shirt: anyColor(r), gain: U(r, 0.8, 1.15), gx: U(r, -0.45, 0.45), gy: U(r, -0.3, 0.3),
    cast: [U(r, 0.94, 1.06), U(r, 0.96, 1.04), U(r, 0.94, 1.06)], noise: U(r, 2, 6),
  };
}

/** Another image of the same media (a nearby video frame): small changes of pose, expression, light. */
export function jitterNuisance(n: Nuisance, r: Rng): Nuisance {
  return {
    ...n, dx: n.dx + U(r, -0.008, 0.008), dy: n.dy + U(r, -0.008, 0.008), scale: n.scale * (1 + U(r, -0.015, 0.015)),
    rot: n.rot + U(r, -0.03, 0.03), smile: n.smile + U(r, -0.002, 0.002), gain: n.gain * (1 + U(r, -0.03, 0.03)),
  };
}

let scratch: Canvas | null = null;

/** Renders one face as interleaved RGB bytes (width·height·3); `noiseSeed` keys the pixel noise. */
export function renderFace(id: Identity, n: Nuisance, width: number, height: number, noiseSeed: number): Uint8Array {
  const c = id.coarse;
  const f = id.fine;
  if (!scratch || scratch.width !== width || scratch.height !== height) scratch = new Canvas(width, height);
  const cv = scratch; // every pixel is overwritten by the background first
  const S = Math.min(width, height);
  const k = S * n.scale;
  const cos = Math.cos(n.rot);
  const sin = Math.sin(n.rot);
  const ox = width / 2 + n.dx * S;
  const oy = height / 2 + (0.02 + n.dy) * S;
  const X = (x: number, y: number): number => ox + k * (cos * x - sin * y);
  const Y = (x: number, y: number): number => oy + k * (sin * x + cos * y);
  const ell = (x: number, y: number, a: number, b: number, phi: number, col: Rgb, alpha = 1, soft = 1): void =>
    cv.ellipse(X(x, y), Y(x, y), a * k, b * k, phi + n.rot, col, alpha, soft);
  const line = (xy: number[], hw: number[], col: Rgb, alpha: number): void =>
    cv.polyline(xy.map((v, i) => (i % 2 === 0 ? X(v, xy[i + 1]) : Y(xy[i - 1], v))), hw.map((h) => h * k), col, alpha);
  const { faceA: A, faceB: B, skin } = c;
  const yw = n.yaw;

  cv.gradient(n.bg0, n.bg1, Math.cos(n.bgAngle), Math.sin(n.bgAngle));
  for (const b of n.blobs) cv.ellipse(b.x * width, b.y * height, b.r * S, b.r * S, 0, b.c, 0.8, b.r * S * 0.5);
  if (!c.bald && c.hairLength > 0.02) {
    const top = -(B + c.hairTop);
    const bottom = B * 0.6 + c.hairLength;
    ell(0, (top + bottom) / 2, A * c.hairWidth * 0.98, (bottom - top) / 2, 0, shade(c.hair, 0.9), 1, 1.5);
  }
  ell(0, B * 0.85, A * 0.48, 0.2, 0, shade(skin, 0.82), 1, 1.5);
  ell(0, B + 0.36, A * 2.3, 0.26, 0, n.shirt, 1, 1.5);
  if (!c.bald) ell(0, -B * 0.3, A * c.hairWidth, B * 0.7 + c.hairTop, 0, c.hair, 1, 1.5);
  for (const s of [-1, 1]) ell(s * A * 0.97, c.earY, 0.032, 0.058, 0, shade(skin, 0.9));
  ell(0, -0.1 * B, A, 0.9 * B, 0, skin);
  ell(0, 0.25 * B, A * c.jaw, 0.75 * B * c.chin, 0, skin);

  // fine: skin texture (waves fixed to the face), moles, wrinkles
  const px0 = X(0, 0);
  const py0 = Y(0, 0);
  cv.waves(px0, py0, A * k, B * k, n.rot, f.waves.map((w) => {
    const kk = (2 * Math.PI) / (w.period * k);
    const kx = kk * Math.cos(w.angle + n.rot);
    const ky = kk * Math.sin(w.angle + n.rot);
    return { kx, ky, amp: w.amp, phase: w.phase - kx * px0 - ky * py0 };
  }));
  for (const m of f.marks) ell(m.x * A, m.y * B, m.r, m.r, 0, mix(skin, [80, 50, 38], 0.8), m.alpha);
  for (const l of f.lines) {
    const ex = (Math.cos(l.angle) * l.len) / 2;
    const ey = (Math.sin(l.angle) * l.len) / 2;
    line([l.x * A - ex, l.y * B - ey, l.x * A, l.y * B, l.x * A + ex, l.y * B + ey], [l.hw * 0.5, l.hw, l.hw * 0.5], shade(skin, 0.62), 0.85);
  }

  if (c.beard > 0) ell(yw * 0.5, B * 0.55, A * 0.92, B * 0.5, 0, c.hair, c.beard, 2.5);
  ell(yw, c.noseY - 0.05, c.noseW * 0.45, 0.05, 0, shade(skin, 0.86), 0.55, 2.5);
  ell(yw, c.noseY, c.noseW, c.noseW * 0.6, 0, shade(skin, 0.93), 0.7, 2);
  for (const s of [-1, 1]) ell(yw + s * c.noseW * 0.5, c.noseY + c.noseW * 0.25, 0.009, 0.005, s * 0.3, shade(skin, 0.45), 0.7);

  const mw = c.mouthW * (1 + n.smile * 4);
  if (n.open > 0) ell(yw, c.mouthY + n.open * c.lipT * 0.5, mw * 0.8, n.open * c.lipT, 0, [60, 25, 30]);
  ell(yw, c.mouthY - c.lipT * 0.45, mw, c.lipT * 0.55, 0, c.lip, 0.95);
  ell(yw, c.mouthY + c.lipT * (0.55 + n.open), mw * 0.82, c.lipT * 0.75, 0, c.lip, 0.95);
  line([yw - mw, c.mouthY - n.smile, yw, c.mouthY + n.smile * 0.5, yw + mw, c.mouthY - n.smile], [0.002, 0.004, 0.002], shade(c.lip, 0.45), 0.9);
  if (c.beard > 0.4) ell(yw, c.mouthY - c.lipT - 0.018, mw * 1.05, 0.016, 0, c.hair, c.beard, 1.5);

  const browColor = mix(c.hair, [20, 15, 12], f.brow.dark);
  for (const s of [-1, 1]) {
    const ex = yw + s * c.eyeDX;
    const ey = c.eyeY;
    const phi = s * f.eyeTilt;
    ell(ex, ey, c.eyeA, c.eyeB, phi, [236, 232, 226]);
    ell(ex + yw * 0.3, ey, c.eyeB * 0.95, c.eyeB * 0.95, 0, f.iris);
    ell(ex + yw * 0.3, ey, c.eyeB * 0.42, c.eyeB * 0.42, 0, [15, 12, 12]);
    const lid: number[] = [];
    for (const t of [-1, -0.5, 0, 0.5, 1]) {
      const lx = t * c.eyeA * 1.05;
      const ly = -c.eyeB * Math.sqrt(1 - t * t * 0.9);
      lid.push(ex + lx * Math.cos(phi) - ly * Math.sin(phi), ey + lx * Math.sin(phi) + ly * Math.cos(phi));
    }
    line(lid, [f.lid * 0.5, f.lid, f.lid, f.lid, f.lid * 0.5], [35, 25, 22], 0.9);
    // eyebrow: a quadratic Bézier from the inner end to the outer one, tapered
    const b = f.brow;
    const base = ey - b.gap - n.browRaise;
    const ix = ex - s * b.len * 0.45;
    const qx = ex + s * b.len * 0.55;
    const qy = base - b.tilt * b.len;
    const mx = (ix + qx) / 2;
    const my = (base + qy) / 2 - 2 * b.arch;
    const pts: number[] = [];
    const hws: number[] = [];
    for (let j = 0; j <= 5; j++) {
      const t = j / 5;
      pts.push((1 - t) ** 2 * ix + 2 * t * (1 - t) * mx + t * t * qx, (1 - t) ** 2 * base + 2 * t * (1 - t) * my + t * t * qy);
      hws.push(b.hw * (1 + (b.taper - 1) * t));
    }
    line(pts, hws, browColor, 0.92);
  }

  if (!c.bald) {
    const fh = (c.hairline + B + c.hairTop) / 2;
    ell(c.part, c.hairline - fh, A * 1.02, fh, c.fringeTilt, c.hair, 1, 1.2);
  }
  cv.light(n.gain, n.gx, n.gy, n.cast);
  return cv.toBytes(n.noise, noiseSeed);
}
