/**
 * A tiny rasteriser for the demo's synthetic faces (synth_faces.ts): a float RGB canvas (0…255 per
 * channel, interleaved, row-major) with analytically anti-aliased shapes — rotated ellipses and tapered
 * polylines get a coverage of clamp(0.5 − d, 0, 1) from the signed distance d of the pixel centre to the
 * edge (first-order for ellipses: g/|∇g| with g the implicit function): smooth edges at the cost of
 * one sample per pixel instead of supersampling's many; a shape thinner than a pixel gets its width as
 * peak coverage. `soft` widens an edge to a ramp of `soft` pixels (hair, shading, background blobs).
 * Shapes are alpha-blended in painter's order; only the pixels within reach of a shape are visited
 * (per row, the span of the ellipse grown by soft + 1 px).
 */

export type Rgb = readonly [number, number, number];

export class Canvas {
  /** Interleaved RGB, 0…255 (not clamped until `toBytes`). */
  readonly px: Float32Array;

  constructor(readonly width: number, readonly height: number) {
    if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
      throw new RangeError(`canvas: bad size ${width}x${height}`);
    }
    this.px = new Float32Array(width * height * 3);
  }

  /** Linear gradient from c0 to c1 along the unit direction (dx, dy), over the whole canvas. */
  gradient(c0: Rgb, c1: Rgb, dx: number, dy: number): void {
    const { width: w, height: h, px } = this;
    const n = Math.hypot(dx, dy) || 1;
    const ux = dx / n / w;
    const uy = dy / n / h;
    for (let y = 0, i = 0; y < h; y++) {
      for (let x = 0; x < w; x++, i += 3) {
        const t = Math.min(1, Math.max(0, 0.5 + (x + 0.5 - w / 2) * ux + (y + 0.5 - h / 2) * uy));
        px[i] = c0[0] + (c1[0] - c0[0]) * t;
        px[i + 1] = c0[1] + (c1[1] - c0[1]) * t;
        px[i + 2] = c0[2] + (c1[2] - c0[2]) * t;
      }
    }
  }

  /** Pixel rows [y0, y1) within r of cy, clipped to the canvas. */
  private rows(cy: number, r: number): [number, number] {
    return [Math.max(0, Math.floor(cy - r)), Math.min(this.height, Math.ceil(cy + r))];
  }

  private blend(i: number, c: Rgb, a: number): void {
    const px = this.px;
    px[i] += (c[0] - px[i]) * a;
    px[i + 1] += (c[1] - px[i + 1]) * a;
    px[i + 2] += (c[2] - px[i + 2]) * a;
  }

  /** Coverage of pixel (x, y) by the ellipse (centre, half-axes a, b, rotation phi), edge ramp `soft` px. */
  private static ellipseCoverage(dx: number, dy: number, cos: number, sin: number, a2: number, b2: number, soft: number): number {
    const lx = dx * cos + dy * sin;
    const ly = -dx * sin + dy * cos;
    const qx = lx / a2;
    const qy = ly / b2;
    const g = lx * qx + ly * qy - 1;
    const gm2 = 4 * (qx * qx + qy * qy);
    // |d| = |g|/|∇g| ≥ soft/2: fully in or out, no square root needed (most pixels)
    if (g * g >= 0.25 * soft * soft * gm2) return g < 0 ? 1 : 0;
    return 0.5 - g / (Math.sqrt(gm2) * soft);
  }

  /**
   * Sets [spanX0, spanX1) to the columns of row y whose pixel centres lie in the ellipse (centre, rotation
   * cos/sin, half-axes a + m, b + m), clipped to the canvas; false when the row misses it. With the margin
   * m = soft + 1 this holds every pixel an edge ramp of `soft` px can reach, so only these are visited.
   */
  private span(y: number, cx: number, cy: number, cos: number, sin: number, a: number, b: number): boolean {
    const dy = y + 0.5 - cy;
    const ia = 1 / (a * a);
    const ib = 1 / (b * b);
    const qa = cos * cos * ia + sin * sin * ib;
    const qb = 2 * dy * cos * sin * (ia - ib);
    const qc = dy * dy * (sin * sin * ia + cos * cos * ib) - 1;
    const disc = qb * qb - 4 * qa * qc;
    if (disc < 0) return false;
    const r = Math.sqrt(disc);
    this.spanX0 = Math.max(0, Math.floor(cx - 0.5 + (-qb - r) / (2 * qa)));
    this.spanX1 = Math.min(this.width, Math.ceil(cx - 0.5 + (-qb + r) / (2 * qa)) + 1);
    return this.spanX0 < this.spanX1;
  }

  private spanX0 = 0;
  private spanX1 = 0;

  /** A filled ellipse: centre (cx, cy), half-axes a, b (px), rotated by phi (radians, clockwise on screen). */
  ellipse(cx: number, cy: number, a: number, b: number, phi: number, color: Rgb, alpha = 1, soft = 1): void {
    if (!(a > 0 && b > 0)) return;
    const [y0, y1] = this.rows(cy, Math.max(a, b) + soft + 1);
    const cos = Math.cos(phi);
    const sin = Math.sin(phi);
    const a2 = a * a;
    const b2 = b * b;
    // a shape thinner than a pixel covers at most its width: scale the peak coverage down
    const peak = Math.min(1, 2 * Math.min(a, b)) * alpha;
    for (let y = y0; y < y1; y++) {
      if (!this.span(y, cx, cy, cos, sin, a + soft + 1, b + soft + 1)) continue;
      for (let x = this.spanX0; x < this.spanX1; x++) {
        const cov = Canvas.ellipseCoverage(x + 0.5 - cx, y + 0.5 - cy, cos, sin, a2, b2, soft);
        if (cov > 0) this.blend((y * this.width + x) * 3, color, cov * peak);
      }
    }
  }

  /**
   * A stroked open polyline through pts = [x0, y0, x1, y1, …] with half-width hw[k] at point k
   * (linearly interpolated along each segment: tapered strokes). One blend per pixel with the distance
   * to the nearest segment, so joints are not darkened twice.
   */
  polyline(pts: readonly number[], hw: readonly number[], color: Rgb, alpha = 1): void {
    const n = pts.length / 2;
    if (n < 2 || hw.length !== n) throw new RangeError('polyline: need ≥ 2 points and one half-width per point');
    let minX = Infinity, maxX = -Infinity, minY = Infinity, maxY = -Infinity;
    for (let k = 0; k < n; k++) {
      minX = Math.min(minX, pts[2 * k]);
      maxX = Math.max(maxX, pts[2 * k]);
      minY = Math.min(minY, pts[2 * k + 1]);
      maxY = Math.max(maxY, pts[2 * k + 1]);
    }
    const pad = Math.max(...hw) + 2;
    const x0 = Math.max(0, Math.floor(minX - pad));
    const x1 = Math.min(this.width, Math.ceil(maxX + pad));
    const y0 = Math.max(0, Math.floor(minY - pad));
    const y1 = Math.min(this.height, Math.ceil(maxY + pad));
    for (let y = y0; y < y1; y++) {
      for (let x = x0; x < x1; x++) {
        const px = x + 0.5;
        const py = y + 0.5;
        let best = Infinity;
        let bestHw = 0;
        for (let k = 0; k + 1 < n; k++) {
          const ax = pts[2 * k], ay = pts[2 * k + 1];
          const ex = pts[2 * k + 2] - ax, ey = pts[2 * k + 3] - ay;
          const len2 = ex * ex + ey * ey;
          const t = len2 > 0 ? Math.min(1, Math.max(0, ((px - ax) * ex + (py - ay) * ey) / len2)) : 0;
          const w = hw[k] + (hw[k + 1] - hw[k]) * t;
          const qx = px - ax - t * ex;
          const qy = py - ay - t * ey;
          const d = Math.sqrt(qx * qx + qy * qy) - w;
          if (d < best) {
            best = d;
            bestHw = w;
          }
        }
        const cov = Math.min(Math.min(1, 2 * bestHw), Math.max(0, 0.5 - best));
        if (cov > 0) this.blend((y * this.width + x) * 3, color, cov * alpha);
      }
    }
  }

  /**
   * Multiplies the pixels inside an ellipse (as `ellipse`) by 1 + Σ amp·sin(kx·x + ky·y + phase): a
   * texture of plane waves (k in radians per pixel) painted on a region, e.g. skin.
   */
  waves(cx: number, cy: number, a: number, b: number, phi: number, waves: readonly { kx: number; ky: number; phase: number; amp: number }[]): void {
    const [y0, y1] = this.rows(cy, Math.max(a, b) + 2);
    const cos = Math.cos(phi);
    const sin = Math.sin(phi);
    const px = this.px;
    const nw = waves.length;
    const sn = new Float64Array(nw); // sin and cos of each wave's argument at the current pixel
    const cs = new Float64Array(nw);
    const stepS = waves.map((w) => Math.sin(w.kx));
    const stepC = waves.map((w) => Math.cos(w.kx));
    for (let y = y0; y < y1; y++) {
      if (!this.span(y, cx, cy, cos, sin, a + 2, b + 2)) continue;
      const x0 = this.spanX0;
      for (let j = 0; j < nw; j++) {
        const w = waves[j];
        const arg = w.kx * (x0 + 0.5) + w.ky * (y + 0.5) + w.phase;
        sn[j] = Math.sin(arg);
        cs[j] = Math.cos(arg);
      }
      for (let x = x0; x < this.spanX1; x++) {
        const cov = Canvas.ellipseCoverage(x + 0.5 - cx, y + 0.5 - cy, cos, sin, a * a, b * b, 1);
        let m = 0;
        for (let j = 0; j < nw; j++) {
          if (cov > 0) m += waves[j].amp * sn[j];
          const s1 = sn[j] * stepC[j] + cs[j] * stepS[j]; // advance by kx (angle addition)
          cs[j] = cs[j] * stepC[j] - sn[j] * stepS[j];
          sn[j] = s1;
        }
        if (cov <= 0) continue;
        const f = 1 + cov * m;
        const i = (y * this.width + x) * 3;
        px[i] *= f;
        px[i + 1] *= f;
        px[i + 2] *= f;
      }
    }
  }

  /**
   * Lighting: every pixel times gain·cast[c]·(1 + gx·(x/w − ½) + gy·(y/h − ½)), a linear ramp of
   * strength |(gx, gy)| across the canvas and a colour cast.
   */
  light(gain: number, gx: number, gy: number, cast: Rgb): void {
    const { width: w, height: h, px } = this;
    for (let y = 0, i = 0; y < h; y++) {
      const fy = 1 + gy * ((y + 0.5) / h - 0.5);
      for (let x = 0; x < w; x++, i += 3) {
        const f = gain * (fy + gx * ((x + 0.5) / w - 0.5));
        px[i] *= f * cast[0];
        px[i + 1] *= f * cast[1];
        px[i + 2] *= f * cast[2];
      }
    }
  }

  /**
   * Rounds to bytes after adding grey noise of standard deviation `sigma` (the same value on the three
   * channels of a pixel; triangular: the sum of the two 16-bit halves of a xorshift32 seeded with
   * `noiseSeed` — cheap and deterministic).
   */
  toBytes(sigma: number, noiseSeed: number): Uint8Array {
    const px = this.px;
    const out = new Uint8Array(px.length);
    let s = noiseSeed >>> 0 || 0x2545f491;
    const scale = (sigma * Math.sqrt(6)) / 65536; // (u1 + u2)/2^16 − 1, u 16-bit uniform: variance ≈ 1/6
    for (let i = 0; i < px.length; i += 3) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      const v = ((s & 0xffff) + (s >>> 16) - 65535) * scale + 0.5; // + 0.5: round by truncation
      for (let c = i; c < i + 3; c++) {
        const q = px[c] + v;
        out[c] = q <= 0 ? 0 : q >= 255 ? 255 : q | 0;
      }
    }
    return out;
  }
}
