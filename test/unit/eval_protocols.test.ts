/**
 * coordinator/eval/protocols: the four protocol readers, detection and the missing-image check.
 * Small files in a temp dir for each format (template/media mapping, NIST labels from SUBJECT_ID and
 * boxes, LFW folds and de-duplicated images, dense pairs), every kind of bad line named by file:line,
 * CRLF and trailing blanks accepted, missing images both ways; then the real LFW files in
 * ../shared/datasets (skipped when absent): pairsDevTest (500 + 500 pairs, every image present),
 * View 2 pairs.txt (6,000 pairs in 10 folds) and dense pairs over lfw_devtest. The reference counts
 * for the real files were computed independently in Python (/usr/bin/python3: split lines, build the
 * '<name>/<name>_%04d.jpg' paths, count distinct, os.path.isfile), not by this code.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { datasetsDir, needDatasets } from '../../shared/paths.js';
import { tempDir } from '../helpers/coordinator.js';
import { ProtocolError, scanIntRows, TemplateIds } from '../../coordinator/eval/protocols/common.js';
import { crossPairCount, readDense, sampleImpostors } from '../../coordinator/eval/protocols/dense.js';
import { readIjbbMeta } from '../../coordinator/eval/protocols/ijbb_meta.js';
import { readIjbbNist } from '../../coordinator/eval/protocols/ijbb_nist.js';
import { readLfwPairs } from '../../coordinator/eval/protocols/lfw_pairs.js';
import { checkImages, detectProtocol, readProtocol } from '../../coordinator/eval/protocols/index.js';
import type { EvalProtocol } from '../../coordinator/eval/types.js';

const ds = datasetsDir ?? '';
const lfwDevtest = join(ds, 'lfw_devtest');

/** Writes `files` (relative path → content) under `dir`, creating folders. */
function write(dir: string, files: Record<string, string>): void {
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(join(dir, rel, '..'), { recursive: true });
    writeFileSync(join(dir, rel), text);
  }
}

/** Asserts `fn` throws a ProtocolError whose message is exactly `msg` (string) or matches it (RegExp). */
function throwsAt(fn: () => unknown, msg: string | RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ProtocolError, `not a ProtocolError: ${String(err)}`);
    if (typeof msg === 'string') assert.equal(err.message, msg);
    else assert.match(err.message, msg);
    return true;
  });
}

const pairsOf = (p: EvalProtocol) => ({ t1: [...p.pairs.t1], t2: [...p.pairs.t2], label: [...p.pairs.label] });

const FACES = '1.jpg 171707 69544\n2.jpg 171707 3720\n3.jpg 5 3720\r\n4.jpg\t007\t1\r\n5.jpg 185794 2\n\r\n\n';
const PAIRS = '171707 5 0\n7 5 1\r\n171707 185794 0\n   5   185794   1  \n\n\n';

function metaRoot(faces = FACES, pairs = PAIRS): string {
  const root = tempDir('ijbb-meta');
  write(root, { 'meta/ijbb_face_tid_mid.txt': faces, 'meta/ijbb_template_pair_label.txt': pairs, 'meta/ijbb_name_5pts_score.txt': 'not read, @#$\n' });
  return root;
}

test('ijbb-meta: dense template indices in order of appearance, media ids kept, CRLF and blank lines fine', () => {
  const root = metaRoot();
  const p = readIjbbMeta({ root });
  assert.equal(p.kind, 'ijbb-meta');
  assert.equal(p.imageRoot, root);
  assert.deepEqual(p.templates, ['171707', '5', '007', '185794']);
  assert.deepEqual(p.images.map((i) => [i.path, i.template, i.media, i.box]), [
    ['loose_crop/1.jpg', 0, 69544, null], ['loose_crop/2.jpg', 0, 3720, null], ['loose_crop/3.jpg', 1, 3720, null],
    ['loose_crop/4.jpg', 2, 1, null], ['loose_crop/5.jpg', 3, 2, null],
  ]);
  // '7' in the pair file is template '007' (ids are integers)
  assert.deepEqual(pairsOf(p), { t1: [0, 2, 0, 1], t2: [1, 1, 3, 3], label: [0, 1, 0, 1] });
  assert.ok(p.pairs.t1 instanceof Int32Array && p.pairs.t2 instanceof Int32Array && p.pairs.label instanceof Uint8Array);
  assert.deepEqual(readIjbbMeta({ root, cropDir: 'crops' }).images[0].path, 'crops/1.jpg');
});

test('ijbb-meta: every bad line is an error naming file:line and the problem', () => {
  const cases: [string, string, number, string][] = [
    // [faces, pairs, line, reason] (file: pairs unless the faces file is the bad one)
    [FACES, '171707 5 0\n5 185794\n', 2, "expected 3 blank-separated fields (tid_1 tid_2 label), got 2: '5 185794'"],
    [FACES, '171707 5 0 9\n', 1, "expected 3 blank-separated fields (tid_1 tid_2 label), got 4: '171707 5 0 9'"],
    [FACES, '\n171707 x5 0\n', 2, "tid_2 must be an integer, got 'x5'"],
    [FACES, '5 5 0\n5-5 1\n', 2, "expected 3 blank-separated fields (tid_1 tid_2 label), got 2: '5-5 1'"],
    [FACES, '171707 5.0 0\n', 1, "tid_2 must be an integer, got '5.0'"],
    [FACES, '171707 5 0\r\n5 5 2\r\n', 2, 'label must be 0 (impostor) or 1 (genuine), got 2'],
    [FACES, '171707 5 0\n5 99 1\n', 2, 'tid_2 99 is not a template of ijbb_face_tid_mid.txt'],
    [FACES, '99999999999999999 5 1\n', 1, "tid_1 is out of range, got '99999999999999999'"],
  ];
  for (const [faces, pairs, line, reason] of cases) {
    const root = metaRoot(faces, pairs);
    throwsAt(() => readIjbbMeta({ root }), `${join(root, 'meta', 'ijbb_template_pair_label.txt')}:${line}: ${reason}`);
  }
  const facesCases: [string, number, string][] = [
    ['1.jpg 1 2\n2.jpg 1\n', 2, "expected 3 blank-separated fields (image_name template_id media_id), got 2: '2.jpg 1'"],
    ['1.jpg t1 2\n', 1, "template_id must be an integer, got 't1'"],
    ['1.jpg 1 2\n2.jpg 1 m\n', 2, "media_id must be an integer, got 'm'"],
    ['../1.jpg 1 2\n', 1, "image path must not contain '..', got '../1.jpg'"],
  ];
  for (const [faces, line, reason] of facesCases) {
    const root = metaRoot(faces, '1 1 1\n');
    throwsAt(() => readIjbbMeta({ root }), `${join(root, 'meta', 'ijbb_face_tid_mid.txt')}:${line}: ${reason}`);
  }
  const empty = tempDir('ijbb-meta');
  throwsAt(() => readIjbbMeta({ root: empty }), /^cannot read IJB-B faces file .*ijbb_face_tid_mid\.txt \(ENOENT\)$/);
});

test('TemplateIds and scanIntRows: table and Map lookups agree, long ids through the slow path', () => {
  const ids = new TemplateIds();
  assert.equal(ids.add(40, '40'), 0);
  assert.equal(ids.add(3, '003'), 1);
  assert.equal(ids.add(40, '040'), 0);
  assert.deepEqual([ids.get(40), ids.get(3), ids.get(4), ids.get(-1), ids.get(1e9)], [0, 1, -1, -1, -1]); // table
  ids.add(Number.MAX_SAFE_INTEGER, 'big');
  ids.add(-7, '-7');
  assert.deepEqual([ids.get(40), ids.get(3), ids.get(Number.MAX_SAFE_INTEGER), ids.get(-7), ids.get(4)], [0, 1, 2, 3, -1]); // Map
  assert.deepEqual(ids.names, ['40', '003', 'big', '-7']);
  const rows: number[][] = [];
  scanIntRows('\uFEFF1 , -2\r\n\n9007199254740991,0012\n  \n', 'f', ['a', 'b'], 'comma', (v, line) => rows.push([...v, line]));
  assert.deepEqual(rows, [[1, -2, 1], [9007199254740991, 12, 3]]);
  throwsAt(() => scanIntRows('1,2\n1 2\n', 'f', ['a', 'b'], 'comma', () => {}), "f:2: expected 2 comma-separated fields (a b), got 1: '1 2'");
  throwsAt(() => scanIntRows('1,2,\n', 'f', ['a', 'b'], 'comma', () => {}), "f:1: expected 2 comma-separated fields (a b), got 3: '1,2,'");
  throwsAt(() => scanIntRows('1,\n', 'f', ['a', 'b'], 'comma', () => {}), "f:1: b must be an integer, got ''");
});

const HEADER = 'TEMPLATE_ID,SUBJECT_ID,FILENAME,SIGHTING_ID,FACE_X,FACE_Y,FACE_WIDTH,FACE_HEIGHT,RIGHT_EYE_X,RIGHT_EYE_Y,LEFT_EYE_X,LEFT_EYE_Y,NOSE_X,NOSE_Y';
const NIST: Record<string, string> = {
  'ijbb_1N_gallery_S1.csv': `${HEADER}\n1,101,img/1.jpg,11,10,20,30,40,,,,,,\n1,101,img/2.jpg,12,-5.5,0,100.25,120,1,2,3,4,5,6\n2,102,frames/3.png,13,0,0,50,60,,,,,,\n`,
  // the older release: FRAME, another column order, CRLF, a trailing blank line
  'ijbb_1N_gallery_S2.csv': 'SUBJECT_ID,TEMPLATE_ID,FILENAME,FRAME,SIGHTING_ID,FACE_X,FACE_Y,FACE_WIDTH,FACE_HEIGHT\r\n103,500,img/4.jpg,0,14,1,2,3,4\r\n\r\n',
  'ijbb_1N_probe_mixed.csv': 'template_id, subject_id, filename, sighting_id, face_x, face_y, face_width, face_height\n' +
    '9000,101,img/5.jpg,15,1,1,2,2\n9000,101,frames/6.png,16,1,1,2,2\n9001,103,img/1.jpg,11,10,20,30,40\n9002,104,"img/7.jpg",17,0,0,9,9\n',
  'ijbb_11_S1_S2_matches.csv': '9000,1\n9000,2\n9001,500\n9002, 1\r\n9001,2\r\n\r\n',
};

test('ijbb-nist: images with boxes and SIGHTING_ID media, labels from SUBJECT_ID, columns found by name', () => {
  const dir = tempDir('ijbb-nist');
  write(dir, NIST);
  const p = readIjbbNist({ dir });
  assert.equal(p.kind, 'ijbb-nist');
  assert.equal(p.imageRoot, dir);
  assert.equal(readIjbbNist({ dir, imageRoot: '/data/IJB-B/images' }).imageRoot, '/data/IJB-B/images');
  assert.deepEqual(p.templates, ['1', '2', '500', '9000', '9001', '9002']);
  assert.deepEqual(p.images.map((i) => [i.path, i.template, i.media]), [
    ['img/1.jpg', 0, 11], ['img/2.jpg', 0, 12], ['frames/3.png', 1, 13], ['img/4.jpg', 2, 14],
    ['img/5.jpg', 3, 15], ['frames/6.png', 3, 16], ['img/1.jpg', 4, 11], ['img/7.jpg', 5, 17],
  ]);
  assert.deepEqual(p.images[1].box, { left: -5.5, top: 0, width: 100.25, height: 120 });
  assert.deepEqual(p.images[3].box, { left: 1, top: 2, width: 3, height: 4 });
  // subjects: 1→101, 2→102, 500→103, 9000→101, 9001→103, 9002→104
  assert.deepEqual(pairsOf(p), { t1: [3, 3, 4, 5, 4], t2: [0, 1, 2, 0, 1], label: [1, 0, 1, 0, 0] });
});

test('ijbb-nist: bad headers, rows and matches are errors naming file:line', () => {
  const S1 = 'ijbb_1N_gallery_S1.csv';
  const cases: [string, string, number, string][] = [
    [S1, 'TEMPLATE_ID,SUBJECT_ID,FILENAME,SIGHTING_ID,FACE_X,FACE_Y,FACE_W,FACE_HEIGHT\n1,2,a.jpg,1,1,1,1,1\n', 1,
      "unknown header: needs TEMPLATE_ID,SUBJECT_ID,FILENAME,SIGHTING_ID,FACE_X,FACE_Y,FACE_WIDTH,FACE_HEIGHT; missing FACE_WIDTH (got 'TEMPLATE_ID,SUBJECT_ID,FILENAME,SIGHTING_ID,FACE_X,FACE_Y,FACE_W,FACE_HEIGHT')"],
    [S1, `${HEADER}\n1,101,img/1.jpg,11,10,20,30,40\n`, 2, 'expected 14 fields as in the header, got 8'],
    [S1, `${HEADER}\n\nT1,101,img/1.jpg,11,10,20,30,40,,,,,,\n`, 3, "TEMPLATE_ID must be an integer, got 'T1'"],
    [S1, `${HEADER}\n1,101,img/1.jpg,11,10,20,0,40,,,,,,\n`, 2, 'FACE_WIDTH and FACE_HEIGHT must be > 0, got 0,40'],
    [S1, `${HEADER}\n1,101,img/1.jpg,11,10,,30,40,,,,,,\n`, 2, "FACE_X,FACE_Y,FACE_WIDTH,FACE_HEIGHT must be numbers, got '10,,30,40'"],
    [S1, `${HEADER}\n1,101,img/1.jpg,s,10,20,30,40,,,,,,\n`, 2, "SIGHTING_ID must be an integer, got 's'"],
    [S1, `${HEADER}\n1,101,a.jpg,1,1,1,1,1,,,,,,\n1,999,b.jpg,1,1,1,1,1,,,,,,\n`, 3, 'template 1 has SUBJECT_ID 999 here but 101 at {file}:2'],
    ['ijbb_11_S1_S2_matches.csv', '9000,1\n9000,77\n', 2, 'tid_2 77 is not a template of the template files'],
    ['ijbb_11_S1_S2_matches.csv', '9000,1,1\n', 1, "expected 2 comma-separated fields (tid_1 tid_2), got 3: '9000,1,1'"],
    ['ijbb_11_S1_S2_matches.csv', 'TEMPLATE_ID_1,TEMPLATE_ID_2\n', 1, "tid_1 must be an integer, got 'TEMPLATE_ID_1'"],
  ];
  for (const [file, text, line, reason] of cases) {
    const dir = tempDir('ijbb-nist');
    write(dir, { ...NIST, [file]: text });
    throwsAt(() => readIjbbNist({ dir }), `${join(dir, file)}:${line}: ${reason.replace('{file}', join(dir, file))}`);
  }
});

test('lfw-pairs: folds from the header, one template per distinct image, bad lines named', () => {
  const dir = tempDir('lfw');
  // 2 folds x (1 matched + 1 mismatched); Ann_Lee_0002 is used twice
  write(dir, { 'pairs.txt': '2\t1\nAnn_Lee\t1\t2\nAnn_Lee\t2\tBo_Xu\t10\r\nBo_Xu 3 12\nCy\t1\tAnn_Lee\t1\n\n' });
  const { protocol: p, folds, perFold } = readLfwPairs({ file: join(dir, 'pairs.txt') });
  assert.deepEqual([folds, perFold, p.kind, p.imageRoot], [2, 1, 'lfw-pairs', dir]);
  assert.deepEqual(p.templates, ['Ann_Lee/Ann_Lee_0001.jpg', 'Ann_Lee/Ann_Lee_0002.jpg', 'Bo_Xu/Bo_Xu_0010.jpg', 'Bo_Xu/Bo_Xu_0003.jpg', 'Bo_Xu/Bo_Xu_0012.jpg', 'Cy/Cy_0001.jpg']);
  assert.deepEqual(p.images.map((i) => [i.path, i.template, i.media]), p.templates.map((t, k) => [t, k, k]));
  assert.deepEqual(pairsOf(p), { t1: [0, 1, 3, 5], t2: [1, 2, 4, 0], label: [1, 0, 1, 0] });
  assert.equal(readLfwPairs({ file: join(dir, 'pairs.txt'), imageRoot: '/lfw' }).protocol.imageRoot, '/lfw');

  const cases: [string, number, string][] = [
    ['10 300 7\n', 1, "expected a header '<folds><TAB><pairs per fold>' or '<pairs>', got '10 300 7'"],
    ['1\nA\t1\tB\t2\nA\t1\tB\t2\n', 2, "expected a matched pair 'name n1 n2' (fold 1, matched pair 1 of 1), got 4 fields: 'A\t1\tB\t2'"],
    ['1\nA\t1\t2\nA\t1\t2\n', 3, "expected a mismatched pair 'name1 n1 name2 n2' (fold 1, mismatched pair 1 of 1), got 3 fields: 'A\t1\t2'"],
    ['1\nA\t0\t2\n', 2, "image number must be a positive integer, got '0'"],
    ['1\nA\t1\tx\n', 2, "image number must be a positive integer, got 'x'"],
    ['1\nA\t3\t3\n', 2, 'matched pair names image 3 of A twice'],
    ['1\nA\t1\t2\nA\t1\tA\t3\n', 3, 'mismatched pair names A twice'],
    ['1\n../A\t1\t2\n', 2, "bad person name '../A'"],
    ['1\nA\t1\t2\nA\t1\tB\t2\nA\t1\t2\n', 4, 'more pairs than the header announces (1 folds x 2 x 1 = 2)'],
    ['2\t1\nA\t1\t2\nA\t1\tB\t2\n\n', 3, 'the header announces 4 pairs (2 folds x 2 x 1), the file ends after 2'],
  ];
  for (const [text, line, reason] of cases) {
    write(dir, { 'bad.txt': text });
    throwsAt(() => readLfwPairs({ file: join(dir, 'bad.txt') }), `${join(dir, 'bad.txt')}:${line}: ${reason}`);
  }
});

test('dense: listing rules, every genuine pair, impostors exactly as asked, too many refused', () => {
  const root = tempDir('dense');
  write(root, {
    'README.md': '', 'Bob/1.jpg': '', 'Bob/2.png': '', 'Bob/3.JPG': '', 'Bob/.hidden.jpg': '', 'Bob/notes.txt': '',
    'alice/a.pgm': '', 'carol/x.webp': '', 'carol/y.jpeg': '', 'empty/readme.txt': '',
  });
  const p = readDense({ root, impostorPairs: 11 });
  assert.deepEqual(p.templates, ['Bob/1.jpg', 'Bob/2.png', 'Bob/3.JPG', 'alice/a.pgm', 'carol/x.webp', 'carol/y.jpeg']);
  assert.deepEqual(p.images.map((i) => [i.template, i.media, i.box]), [0, 1, 2, 3, 4, 5].map((k) => [k, k, null]));
  // genuine (0,1) (0,2) (1,2) (4,5), then all 11 cross pairs sorted
  const cross = [[0, 3], [0, 4], [0, 5], [1, 3], [1, 4], [1, 5], [2, 3], [2, 4], [2, 5], [3, 4], [3, 5]];
  const gen = [[0, 1], [0, 2], [1, 2], [4, 5]];
  assert.deepEqual(pairsOf(p), { t1: [...gen, ...cross].map((x) => x[0]), t2: [...gen, ...cross].map((x) => x[1]), label: [1, 1, 1, 1, ...cross.map(() => 0)] });
  assert.equal(readDense({ root }).pairs.t1.length, 8); // default: as many impostors as genuine pairs
  assert.equal(crossPairCount([3, 1, 2]), 11);
  assert.deepEqual(pairsOf(readDense({ root, impostorPairs: 12 })), pairsOf(p), 'more than every cross pair: all of them');
  throwsAt(() => sampleImpostors([3, 1, 2], 12, 0), 'dense: 12 impostor pairs asked for, but there are only 11 cross-identity pairs');
  throwsAt(() => readDense({ root: join(root, 'empty') }), `dense: no images in ${join(root, 'empty')}/<identity>/`);
});

test('dense impostor sample: uniform over cross-identity pairs, distinct, both sampling branches', () => {
  const counts = [1, 2, 3]; // identities of images 0 | 1 2 | 3 4 5: 11 cross pairs
  const identity = [0, 1, 1, 2, 2, 2];
  const key = (a: number, b: number) => a * 6 + b;
  for (const [k, seeds] of [[1, 11000], [6, 2000]] as const) { // k = 1: rejection; 2k >= 11: full list + Fisher–Yates
    const hits = new Map<number, number>();
    for (let seed = 0; seed < seeds; seed++) {
      const { a, b } = sampleImpostors(counts, k, seed);
      assert.equal(new Set([...a].map((x, i) => key(x, b[i]))).size, k);
      for (let i = 0; i < k; i++) {
        assert.ok(a[i] < b[i] && identity[a[i]] !== identity[b[i]]);
        if (i > 0) assert.ok(key(a[i - 1], b[i - 1]) < key(a[i], b[i])); // sorted
        hits.set(key(a[i], b[i]), (hits.get(key(a[i], b[i])) ?? 0) + 1);
      }
    }
    // each pair is in a sample with probability k / 11: mean seeds*k/11, 5 standard deviations allowed
    const mean = (seeds * k) / 11;
    const sd = Math.sqrt(seeds * (k / 11) * (1 - k / 11));
    assert.equal(hits.size, 11);
    for (const h of hits.values()) assert.ok(Math.abs(h - mean) < 5 * sd, `count ${h} vs mean ${mean.toFixed(1)} ± ${(5 * sd).toFixed(1)}`);
  }
  assert.deepEqual(sampleImpostors(counts, 5, 3), sampleImpostors(counts, 5, 3));
  assert.equal(sampleImpostors(counts, 0, 1).a.length, 0);
});

test('checkImages: missing images refused with a list, or dropped with the pairs they leave imageless', () => {
  const root = metaRoot();
  write(root, { 'loose_crop/1.jpg': 'x', 'loose_crop/3.jpg': 'x', 'loose_crop/4.jpg': 'x' });
  mkdirSync(join(root, 'loose_crop', '5.jpg')); // a folder is not an image
  const p = readIjbbMeta({ root });
  throwsAt(() => checkImages(p), `2 of 5 images missing under ${root} (${p.source}); first 2: loose_crop/2.jpg, loose_crop/5.jpg. ` +
    'Use allowMissing to drop them and the pairs they leave without images');
  const before = pairsOf(p);
  const r = checkImages(p, { allowMissing: true });
  // 2.jpg: template 171707 keeps 1.jpg; 5.jpg: template 185794 has no image left → its 2 pairs go
  assert.deepEqual([r.missingImages, r.droppedImages, r.droppedTemplates, r.droppedPairs, r.missing], [2, 2, 1, 2, ['loose_crop/2.jpg', 'loose_crop/5.jpg']]);
  assert.deepEqual(r.protocol.images.map((i) => i.path), ['loose_crop/1.jpg', 'loose_crop/3.jpg', 'loose_crop/4.jpg']);
  assert.deepEqual(r.protocol.templates, p.templates); // indices unchanged
  assert.deepEqual(pairsOf(r.protocol), { t1: [0, 2], t2: [1, 1], label: [0, 1] });
  assert.deepEqual(pairsOf(p), before); // input untouched
  write(root, { 'loose_crop/2.jpg': 'x', 'loose_crop/5.jpg/x': '' });
  assert.equal(checkImages(p, { allowMissing: true }).droppedPairs, 2);
});

test('detection: folders and files of every kind; explicit kinds; unknown paths and misplaced imageRoot refused', () => {
  const meta = metaRoot();
  const nist = tempDir('ijbb-nist');
  write(nist, NIST);
  const dense = tempDir('dense');
  write(dense, { 'a/1.jpg': '', 'b/1.jpg': '' });
  assert.deepEqual(detectProtocol(meta), { kind: 'ijbb-meta', path: meta });
  assert.deepEqual(detectProtocol(join(meta, 'meta')), { kind: 'ijbb-meta', path: meta });
  assert.deepEqual(detectProtocol(join(meta, 'meta', 'ijbb_template_pair_label.txt')), { kind: 'ijbb-meta', path: meta });
  assert.deepEqual(detectProtocol(nist), { kind: 'ijbb-nist', path: nist });
  assert.deepEqual(detectProtocol(join(nist, 'ijbb_1N_gallery_S1.csv')), { kind: 'ijbb-nist', path: nist });
  assert.deepEqual(detectProtocol(dense), { kind: 'dense', path: dense });
  write(dense, { 'pairs.txt': '1\na\t1\t2\na\t1\tb\t1\n' });
  assert.deepEqual(detectProtocol(dense), { kind: 'lfw-pairs', path: join(dense, 'pairs.txt') });
  assert.deepEqual(detectProtocol(dense, 'dense'), { kind: 'dense', path: dense });
  assert.deepEqual(detectProtocol(dense, 'auto'), { kind: 'lfw-pairs', path: join(dense, 'pairs.txt') });
  assert.equal(readProtocol({ path: dense }).kind, 'lfw-pairs');
  assert.equal(readProtocol({ path: dense, kind: 'dense', impostorPairs: 1, seed: 3 }).pairs.t1.length, 1);
  assert.equal(readProtocol({ path: meta }).pairs.t1.length, 4);
  assert.equal(readProtocol({ path: nist, imageRoot: '/x' }).imageRoot, '/x');
  const empty = tempDir('none');
  throwsAt(() => detectProtocol(empty), /^cannot tell the protocol kind of /);
  throwsAt(() => detectProtocol(join(empty, 'nope')), /^protocol path .*nope does not exist$/);
  throwsAt(() => detectProtocol(empty, 'lfw-pairs'), `lfw-pairs: no pairs.txt or pairsDevTest.txt in ${empty}`);
  assert.deepEqual(pairsOf(readProtocol({ path: meta, seed: 1, impostorPairs: 9 })), pairsOf(readIjbbMeta({ root: meta }))); // dense-only args ignored
  throwsAt(() => readProtocol({ path: dense, kind: 'dense', imageRoot: '/x' }), /imageRoot does not apply/);
  throwsAt(() => detectProtocol(meta, 'ijbc' as never), /^unknown protocol kind 'ijbc'/);
});

test('real LFW pairsDevTest: 500 genuine then 500 impostor pairs over 1,549 distinct images, all present', { skip: needDatasets }, () => {
  const p = readProtocol({ path: lfwDevtest });
  assert.equal(p.source, `lfw-pairs: ${join(lfwDevtest, 'pairsDevTest.txt')}`);
  assert.equal(p.pairs.t1.length, 1000);
  assert.deepEqual([...p.pairs.label], [...Array(500).fill(1), ...Array(500).fill(0)]);
  assert.equal(p.images.length, 1549);
  assert.equal(p.templates.length, 1549);
  assert.deepEqual(p.templates.slice(0, 3), ['Abdullah_Gul/Abdullah_Gul_0013.jpg', 'Abdullah_Gul/Abdullah_Gul_0014.jpg', 'Abdullah_Gul/Abdullah_Gul_0016.jpg']);
  assert.equal(p.templates[1548], 'Vicente_Fernandez/Vicente_Fernandez_0003.jpg');
  const r = checkImages(p);
  assert.deepEqual([r.missingImages, r.droppedPairs, r.protocol], [0, 0, p]);
});

test('real LFW View 2 pairs.txt: 6,000 pairs in 10 folds of 300 + 300; most images absent here', { skip: needDatasets }, () => {
  const file = join(ds, 'face_protocol_formats', 'lfw_pairs_view2.txt');
  assert.deepEqual(detectProtocol(file), { kind: 'lfw-pairs', path: file });
  const { protocol: p, folds, perFold } = readLfwPairs({ file, imageRoot: lfwDevtest });
  assert.deepEqual([folds, perFold, p.pairs.t1.length, p.templates.length], [10, 300, 6000, 7701]);
  for (let f = 0; f < 10; f++) {
    const fold = [...p.pairs.label.subarray(f * 600, (f + 1) * 600)];
    assert.deepEqual(fold, [...Array(300).fill(1), ...Array(300).fill(0)]);
  }
  assert.deepEqual([p.templates[p.pairs.t1[0]], p.templates[p.pairs.t2[0]]], ['Abel_Pacheco/Abel_Pacheco_0001.jpg', 'Abel_Pacheco/Abel_Pacheco_0004.jpg']);
  assert.deepEqual([p.pairs.t1[5999], p.pairs.t2[5999]], [7354, 7632]); // Slobodan_Milosevic 2, Sok_An 1
  // against the lfw_devtest images (which cover View 1 only): 6,571 of 7,701 missing
  assert.throws(() => checkImages(p), (err: Error) => {
    const listed = /first 20: (.*)\. Use allowMissing/.exec(err.message)![1].split(', ');
    assert.match(err.message, /^6571 of 7701 images missing under /);
    assert.deepEqual([listed.length, listed[0]], [20, 'Abel_Pacheco/Abel_Pacheco_0001.jpg']);
    return true;
  });
  const r = checkImages(p, { allowMissing: true });
  const kept = r.protocol.pairs.label;
  assert.deepEqual([r.missingImages, r.droppedPairs, kept.length, kept.reduce((s, l) => s + l, 0)], [6571, 5633, 367, 298]);
  assert.equal(r.missing.length, 20);
});

test('real dense over lfw_devtest: 983 genuine pairs, impostors as asked, distinct, seeded', { skip: needDatasets }, () => {
  const p = readProtocol({ path: lfwDevtest, kind: 'dense', impostorPairs: 5000, seed: 7 });
  const who = p.templates.map((t) => t.split('/')[0]);
  const sizes = new Map<string, number>();
  for (const w of who) sizes.set(w, (sizes.get(w) ?? 0) + 1);
  const genuine = [...sizes.values()].reduce((s, n) => s + (n * (n - 1)) / 2, 0);
  assert.deepEqual([p.images.length, sizes.size, genuine], [1549, 963, 983]);
  const { t1, t2, label } = p.pairs;
  assert.equal(t1.length, 983 + 5000);
  const keys = new Set<number>();
  for (let i = 0; i < t1.length; i++) {
    assert.equal(label[i], i < 983 ? 1 : 0);
    assert.equal(who[t1[i]] === who[t2[i]], i < 983);
    assert.ok(t1[i] < t2[i]);
    keys.add(t1[i] * 1549 + t2[i]);
  }
  assert.equal(keys.size, 5983);
  const again = readProtocol({ path: lfwDevtest, kind: 'dense', impostorPairs: 5000, seed: 7 });
  assert.deepEqual(pairsOf(again), pairsOf(p));
  // another seed: another sample; two independent 5,000-samples of the 1,197,943 cross pairs share ~21
  const other = readProtocol({ path: lfwDevtest, kind: 'dense', impostorPairs: 5000, seed: 8 }).pairs;
  let shared = 0;
  for (let i = 983; i < t1.length; i++) if (keys.has(other.t1[i] * 1549 + other.t2[i])) shared++;
  assert.ok(shared < 100, `${shared} of 5000 impostor pairs shared by seeds 7 and 8`);
  assert.equal(readProtocol({ path: lfwDevtest, kind: 'dense' }).pairs.t1.length, 983 * 2);
});
