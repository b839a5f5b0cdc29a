/**
 * shared/data/decode.ts and jpeg.ts against Pillow 9.4's Image.open(path).convert('RGB'): MD5 digests
 * of its pixels from test/fixtures/make_pil_decode_reference.py, for every JPEG of lfw_devtrain and
 * vggface2_samples (when ../shared/datasets is there) and for small JPEGs made by that script (odd sizes,
 * 4:2:0, 4:4:4, 2x1 sampling, restart markers, 16-bit tables: the fast path; 4:2:2, greyscale,
 * progressive: handed to the reference decoder). Both decoders must give Pillow's pixels exactly. Also:
 * a failed fast decode leaves nothing behind, transient decodes reuse one buffer, boxes and RGBX output.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { datasetsDir, fixturesDir, needDatasets } from '../../shared/paths.js';
import { decodeImage, decodeImageSync, decodeJpegReference, jpegCodec } from '../../shared/data/decode.js';
import { decodeBaselineJpeg } from '../../shared/data/jpeg.js';

interface Reference { pillow: string; files: Record<string, [number, number, string]>; datasets: Record<string, string> }
const ref = JSON.parse(readFileSync(join(fixturesDir, 'pil_decode_reference.json'), 'utf8')) as Reference;
const md5 = (b: Uint8Array): string => createHash('md5').update(b).digest('hex');
const FALLBACK = new Set(['jpeg/odd_422.jpg', 'jpeg/odd_grey.jpg', 'jpeg/odd_progressive.jpg']);

describe('decode: JPEG against Pillow', () => {
  it(`fixture made with Pillow ${ref.pillow}`, () => {
    assert.equal(ref.pillow, '9.4.0');
    assert.equal(Object.keys(ref.files).length, 11);
  });

  for (const [name, [width, height, digest]] of Object.entries(ref.files)) {
    it(`${name}: ${FALLBACK.has(name) ? 'reference decoder' : 'fast path'} = Pillow`, async () => {
      const path = join(fixturesDir, name);
      const fast = decodeBaselineJpeg(readFileSync(path));
      if (FALLBACK.has(name)) assert.equal(fast, null, 'not for the fast path');
      else {
        assert.ok(fast, 'decoded by the fast path');
        assert.deepEqual([fast.width, fast.height, md5(fast.data)], [width, height, digest]);
      }
      const img = await decodeImage(path);
      assert.deepEqual([img.width, img.height, img.channels ?? 3, md5(img.data)], [width, height, 3, digest]);
      assert.equal(md5((await decodeJpegReference(path)).data), digest, 'reference decoder');
    });
  }

  it(`every JPEG of lfw_devtrain and vggface2_samples (${Object.keys(ref.datasets).length}): fast path = Pillow, reference decoder = Pillow on every 10th`, { skip: needDatasets }, async (t) => {
    let n = 0;
    for (const [rel, digest] of Object.entries(ref.datasets)) {
      const path = join(datasetsDir!, rel);
      const fast = decodeBaselineJpeg(readFileSync(path));
      assert.ok(fast, `${rel}: fast path`);
      assert.equal(md5(fast.data).slice(0, 16), digest, rel);
      if (n++ % 10 === 0) assert.equal(md5((await decodeJpegReference(path)).data).slice(0, 16), digest, `${rel}: reference decoder`);
    }
    t.diagnostic(`${n} images, 0 differing bytes`);
  });
});

describe('decode: fast path edges', () => {
  const good = readFileSync(join(fixturesDir, 'jpeg/face_420.jpg'));
  const want = ref.files['jpeg/face_420.jpg'][2];

  it('entropy data cut short, corrupt codes, a foreign marker or a table cut short: null (reference decoder), and the next image is unaffected', () => {
    const cut = Buffer.concat([good.subarray(0, good.length >> 1), Buffer.from([0xff, 0xd9])]);
    const noise = Buffer.from(good);
    for (let i = good.length >> 1; i < (good.length >> 1) + 64; i++) noise[i] = 0xfe; // long runs of 1s: no valid code
    const marker = Buffer.from(good);
    marker[good.length >> 1] = 0xff;
    marker[(good.length >> 1) + 1] = 0xc4;
    const dht = good.indexOf(Buffer.from([0xff, 0xc4]));
    const shortTable = Buffer.from(good);
    shortTable.writeUInt16BE(shortTable.readUInt16BE(dht + 2) - 5, dht + 2); // the last table's symbols cut short
    for (const bad of [cut, noise, marker, shortTable]) {
      assert.equal(decodeBaselineJpeg(bad), null);
      assert.equal(md5(decodeBaselineJpeg(good)!.data), want);
    }
  });

  it('transient decodes share one buffer; others are fresh', async () => {
    const small = join(fixturesDir, 'jpeg/odd_420.jpg');
    const a = decodeBaselineJpeg(good, true)!;
    const b = decodeBaselineJpeg(readFileSync(small), true)!;
    assert.equal(a.data.buffer, b.data.buffer);
    assert.equal(md5(b.data), ref.files['jpeg/odd_420.jpg'][2]);
    const c = decodeBaselineJpeg(good)!;
    const d = decodeBaselineJpeg(good)!;
    assert.notEqual(c.data.buffer, d.data.buffer);
    assert.equal(md5(c.data), want);
    await jpegCodec();
    const e = decodeImageSync(small, null, false, true)!;
    assert.equal(e.data.buffer, a.data.buffer, 'in the kernels\' memory');
    assert.equal(md5(e.data), ref.files['jpeg/odd_420.jpg'][2]);
  });

  it('a box is cut out of the decoded image, from either decoder, RGB or RGBX', async () => {
    await jpegCodec();
    const full = (await decodeImage(join(fixturesDir, 'jpeg/face_420.jpg'))).data;
    const box = { left: 17, top: 29, width: 33, height: 41 };
    for (const name of ['jpeg/face_420.jpg', 'jpeg/face_420.jpg#rgbx']) {
      const rgbx = name.endsWith('#rgbx');
      const img = decodeImageSync(join(fixturesDir, 'jpeg/face_420.jpg'), () => box, rgbx)!;
      assert.deepEqual([img.width, img.height], [33, 41]);
      const bpp = img.channels ?? 3;
      for (let y = 0; y < 41; y++) {
        for (let x = 0; x < 33; x++) {
          for (let c = 0; c < 3; c++) assert.equal(img.data[(y * 33 + x) * bpp + c], full[((y + 29) * 250 + x + 17) * 3 + c]);
        }
      }
    }
    const rgbx = decodeImageSync(join(fixturesDir, 'jpeg/odd_grey.jpg'), null, true)!; // reference decoder: RGBX
    assert.equal(rgbx.channels, 4);
    assert.equal(md5(decodeImageSync(join(fixturesDir, 'jpeg/odd_grey.jpg'))!.data), ref.files['jpeg/odd_grey.jpg'][2]);
  });
});
