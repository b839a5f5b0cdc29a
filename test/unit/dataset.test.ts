/**
 * shared/data/{identity_meta,boxes,dataset}.ts: parsing identity_meta.csv (rows copied from the
 * real excerpt: re-quoted names, missing Sample_Num with a trailing comma, the header; plus the official
 * unquoted form and a name with a comma), file:line errors; loose boxes and cropBox (margin, outward
 * rounding, clamping); readDataset on temp folders (both layouts, hidden files, non-images, trainList
 * with missing files, Flag-0 exclusions, an identity without images, boxes, missing/empty roots) and on
 * the real ../shared/datasets/lfw_devtrain (298 identities, 2,282 images) and vggface2_samples.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { boxKey, cropBox, parseLooseBoxes } from '../../shared/data/boxes.js';
import { readDataset, DatasetError, type ReadDatasetArgs } from '../../shared/data/dataset.js';
import { CsvFormatError, parseIdentityMeta, readIdentityMeta, splitCsvLine } from '../../shared/data/identity_meta.js';
import { datasetsDir, needDatasets, repoRoot } from '../../shared/paths.js';

const DATASETS = datasetsDir ?? '/nonexistent';
const META_EXCERPT = join(DATASETS, 'face_protocol_formats', 'vggface2_identity_meta_excerpt.csv');

function tmp(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'dataset-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Creates each path (relative to dir) as a small file; a trailing '/' makes a directory. */
function touch(dir: string, paths: string[]): void {
  for (const p of paths) {
    if (p.endsWith('/')) mkdirSync(join(dir, p), { recursive: true });
    else {
      mkdirSync(dirname(join(dir, p)), { recursive: true });
      writeFileSync(join(dir, p), 'x');
    }
  }
}

const args = (root: string, o: Partial<ReadDatasetArgs> = {}): ReadDatasetArgs => ({ root, trainList: null, identityMeta: null, boxes: null, ...o });
const keys = (ds: { byIdentity: { key: string }[][] }): string[][] => ds.byIdentity.map((l) => l.map((e) => e.key));

// rows copied verbatim from the real excerpt (header, Flag 0 and 1, missing Sample_Num), the official
// unquoted form (tensorbay comment), a synthetic name with a comma inside quotes, CRLF and a blank line
const META = [
  'Class_ID, Name, Sample_Num, Flag, Gender',
  'n000001," ""14th_Dalai_Lama""",424,0, m',
  'n000002," ""A_Fine_Frenzy""",315,1, f',
  'n000030," ""Abdüllatif_Şener""",268,1, m',
  'n000659," ""Anne-Marie_Duff""",0, f,',
  'n000660," ""Anne-Sophie_Briest""",1, f,',
  'n000900, "14th_Dalai_Lama_official",424,0, m,',
  'n000901," ""Alvarez, Rafael""",120,1, m\r',
  '',
  'n000902, "Alvarez, Rafael", ,1, m',
].join('\n');

test('splitCsvLine: quotes, doubled quotes, commas inside quotes, blanks around quotes', () => {
  assert.deepEqual(splitCsvLine('a,b,,c'), ['a', 'b', '', 'c']);
  assert.deepEqual(splitCsvLine('n1," ""x, y""",3, m,'), ['n1', ' "x, y"', '3', ' m', '']);
  assert.deepEqual(splitCsvLine('n1,  "q" ,2'), ['n1', 'q', '2']);
  assert.throws(() => splitCsvLine('n1,"open,2'), /unterminated/);
  assert.throws(() => splitCsvLine('n1,"a"b,2'), /after a closing quote/);
});

test('identity_meta: the real row shapes', () => {
  const m = parseIdentityMeta(META, 'meta.csv');
  assert.equal(m.size, 8);
  assert.deepEqual(m.get('n000001'), { name: '14th_Dalai_Lama', sampleNum: 424, flag: 0, gender: 'm' });
  assert.deepEqual(m.get('n000002'), { name: 'A_Fine_Frenzy', sampleNum: 315, flag: 1, gender: 'f' });
  assert.equal(m.get('n000030')!.name, 'Abdüllatif_Şener');
  assert.deepEqual(m.get('n000659'), { name: 'Anne-Marie_Duff', sampleNum: null, flag: 0, gender: 'f' });
  assert.deepEqual(m.get('n000660'), { name: 'Anne-Sophie_Briest', sampleNum: null, flag: 1, gender: 'f' });
  assert.deepEqual(m.get('n000900'), { name: '14th_Dalai_Lama_official', sampleNum: 424, flag: 0, gender: 'm' });
  assert.deepEqual(m.get('n000901'), { name: 'Alvarez, Rafael', sampleNum: 120, flag: 1, gender: 'm' });
  assert.deepEqual(m.get('n000902'), { name: 'Alvarez, Rafael', sampleNum: null, flag: 1, gender: 'm' });
  // no header at all (one copy on GitHub has none), BOM
  assert.equal(parseIdentityMeta('\ufeffn000002," ""A""",315,1, f\n').get('n000002')!.flag, 1);
});

test('identity_meta: the real excerpt (700 rows: 27 with Flag 0, 49 without Sample_Num)', { skip: needDatasets }, () => {
  const m = readIdentityMeta(META_EXCERPT);
  assert.equal(m.size, 700);
  const all = [...m.values()];
  assert.equal(all.filter((r) => r.flag === 0).length, 27);
  assert.equal(all.filter((r) => r.sampleNum === null).length, 49);
  assert.deepEqual(m.get('n000106'), { name: 'Agata_Passent', sampleNum: 279, flag: 0, gender: 'f' });
  assert.ok(all.every((r) => !r.name.includes('"') && r.name === r.name.trim()));
});

test('identity_meta: malformed lines are errors with file:line', () => {
  const bad = (row: string, re: RegExp) => {
    assert.throws(() => parseIdentityMeta(`Class_ID, Name, Sample_Num, Flag, Gender\n\nn000002," ""A""",315,1, f\n${row}\n`, 'm.csv'), (err: unknown) => {
      assert.ok(err instanceof CsvFormatError);
      assert.equal(err.line, 4);
      assert.match(err.message, /^m\.csv:4: /);
      assert.match(err.message, re);
      return true;
    });
  };
  bad('n000003," ""B""",315,2, f', /Flag/);
  bad('n000003," ""B""",315,1, x', /Gender/);
  bad('n000003," ""B""",-3,1, m', /Sample_Num/);
  bad('n000003," ""B""",1', /fields/);
  bad('n000003," ""B""",1,2,3,4,5', /fields/);
  bad('n000003," ""B,315,1, m', /unterminated/);
  bad('n000002," ""A""",315,1, f', /duplicate/);
  bad('," ""A""",315,1, f', /Class_ID/);
});

test('loose boxes: header, quoted ids, extension-less keys, errors with file:line', () => {
  const text = 'NAME_ID,X,Y,W,H\r\n"n000001/0001_01",60,60,79,109\r\nn000001/0002_01.jpg,-4,81.5,207,295\r\n"n000001/0003_01", 58, 32, 75, 103\r\n';
  const b = parseLooseBoxes(text, 'bb.csv');
  assert.deepEqual([...b.entries()], [
    ['n000001/0001_01', [60, 60, 79, 109]],
    ['n000001/0002_01', [-4, 81.5, 207, 295]],
    ['n000001/0003_01', [58, 32, 75, 103]],
  ]);
  assert.equal(boxKey('n000001/0001_01.JPG'), 'n000001/0001_01');
  // the char-by-char path and the general path agree
  assert.deepEqual(parseLooseBoxes('"a/1",-3,-1,5,6\na/2,-3,-1,5,6\n "a/3" ,-3,-1.0,5,6e0\n"a/4",-3,-1,5,6,\n'),
    new Map([['a/1', [-3, -1, 5, 6]], ['a/2', [-3, -1, 5, 6]], ['a/3', [-3, -1, 5, 6]], ['a/4', [-3, -1, 5, 6]]]));
  assert.throws(() => parseLooseBoxes('NAME_ID,X,Y,W,H\n"a/1",1,2,3\n', 'bb.csv'), /^CsvFormatError: bb\.csv:2: expected/);
  assert.throws(() => parseLooseBoxes('"a/1",1,2,0,4\n', 'bb.csv'), /bb\.csv:1: W and H/);
  assert.throws(() => parseLooseBoxes('"a/1",1,2,x,4\n', 'bb.csv'), /bb\.csv:1: X,Y,W,H must be numbers/);
  assert.throws(() => parseLooseBoxes('"a/1",1,2,3,4\n"a/1.jpg",1,2,3,4\n', 'bb.csv'), /bb\.csv:2: duplicate/);
});

test('cropBox: margin on each side, outward rounding, clamping, never empty', () => {
  assert.deepEqual(cropBox([60, 60, 80, 100], 0, 500, 500), { left: 60, top: 60, width: 80, height: 100 });
  // margin 0.3: 24 px left/right, 30 px top/bottom
  assert.deepEqual(cropBox([60, 60, 80, 100], 0.3, 500, 500), { left: 36, top: 30, width: 128, height: 160 });
  // 0.3 × 79 = 23.7 → left 60 - 23.7 = 36.3 → 36, right 60 + 79 + 23.7 = 162.7 → 163
  assert.deepEqual(cropBox([60, 60, 79, 109], 0.3, 500, 500), { left: 36, top: 27, width: 127, height: 175 });
  // clamped to the image
  assert.deepEqual(cropBox([10, 5, 100, 100], 0.3, 120, 110), { left: 0, top: 0, width: 120, height: 110 });
  assert.deepEqual(cropBox([-4, 81.5, 207, 295], 0, 200, 300), { left: 0, top: 81, width: 200, height: 219 });
  // entirely outside: the whole image
  assert.deepEqual(cropBox([900, 900, 10, 10], 0.3, 100, 80), { left: 0, top: 0, width: 100, height: 80 });
  assert.throws(() => cropBox([0, 0, 1, 1], -0.1, 10, 10), RangeError);
  assert.throws(() => cropBox([0, 0, 1, 1], 0.1, 0, 10), RangeError);
});

test('readDataset: folder layout, sorted, hidden files and non-images ignored, empty identity excluded', (t) => {
  const root = tmp(t);
  touch(root, [
    'Bob/b2.JPG', 'Bob/b1.jpg', 'Bob/.hidden.jpg', 'Bob/notes.txt', 'Bob/sub/deep.jpg',
    'Alice/a.png', 'Alice/c.pgm', 'Alice/b.webp', 'Alice/d.jpeg',
    'Empty/readme.txt', '.git/x.jpg', 'README.md', 'Zed/',
  ]);
  const ds = readDataset(args(root));
  assert.equal(ds.layout, 'folder');
  assert.equal(ds.root, root);
  assert.deepEqual(ds.identities, ['Alice', 'Bob']);
  assert.deepEqual(keys(ds), [['Alice/a.png', 'Alice/b.webp', 'Alice/c.pgm', 'Alice/d.jpeg'], ['Bob/b1.jpg', 'Bob/b2.JPG']]);
  assert.deepEqual(ds.byIdentity[1][0], { key: 'Bob/b1.jpg', path: join(root, 'Bob', 'b1.jpg'), identity: 'Bob', label: 1, box: null });
  assert.deepEqual(ds.excluded.map((e) => e.identity), ['Empty', 'Zed']);
  assert.match(ds.excluded[0].reason, /no images/);
  assert.deepEqual(ds.missingListed, { count: 0, examples: [] });
});

test('readDataset: symlinked identity folders and images are followed, dangling links ignored', (t) => {
  const root = tmp(t);
  touch(root, ['real/A/1.jpg', 'data/B/2.jpg']);
  symlinkSync(join(root, 'real', 'A'), join(root, 'data', 'A'));
  symlinkSync(join(root, 'real', 'A', '1.jpg'), join(root, 'data', 'B', '3.jpg'));
  symlinkSync(join(root, 'nowhere.jpg'), join(root, 'data', 'B', '4.jpg'));
  const ds = readDataset(args(join(root, 'data')));
  assert.deepEqual(keys(ds), [['A/1.jpg'], ['B/2.jpg', 'B/3.jpg']]);
});

test('readDataset: VGGFace2 layout, identity_meta Flag 0 excluded, boxes, labels after exclusions', (t) => {
  const root = tmp(t);
  touch(root, ['train/n000002/0002_01.jpg', 'train/n000002/0001_01.jpg', 'train/n000001/0001_01.jpg', 'train/n000659/0001_01.jpg',
    'train/n000003/0001_01.jpg', 'test/n000009/0001_01.jpg', 'n000777/0001_01.jpg']);
  writeFileSync(join(root, 'identity_meta.csv'), META);
  mkdirSync(join(root, 'bb_landmark'));
  writeFileSync(join(root, 'bb_landmark', 'loose_bb_train.csv'), 'NAME_ID,X,Y,W,H\n"n000002/0001_01",60,60,79,109\n"n000003/0001_01",1,2,3,4\n"n000099/0001_01",1,2,3,4\n');
  const ds = readDataset(args(root, { identityMeta: 'identity_meta.csv', boxes: 'bb_landmark/loose_bb_train.csv' }));
  assert.equal(ds.layout, 'vggface2');
  assert.deepEqual(ds.identities, ['n000002', 'n000003']); // n000003 is not in the meta file: kept
  assert.deepEqual(ds.excluded.map((e) => e.identity), ['n000001', 'n000659']);
  assert.match(ds.excluded[0].reason, /Flag 0/);
  assert.deepEqual(ds.byIdentity[0].map((e) => [e.key, e.label, e.box]), [['n000002/0001_01.jpg', 0, [60, 60, 79, 109]], ['n000002/0002_01.jpg', 0, null]]);
  assert.deepEqual(ds.byIdentity[1].map((e) => [e.key, e.label, e.path]), [['n000003/0001_01.jpg', 1, join(root, 'train', 'n000003', '0001_01.jpg')]]);
  assert.equal(ds.withoutBox, 1);
  // rows for other images are ignored, a repeated row for a used image is an error with file:line
  writeFileSync(join(root, 'bb2.csv'), '"n000099/0001_01",1,2,3,4\n"n000099/0001_01",1,2,3,4\n"n000003/0001_01",1,2,3,4\n"n000003/0001_01.jpg",1,2,3,4\n');
  assert.throws(() => readDataset(args(root, { boxes: 'bb2.csv' })), (e: unknown) =>
    e instanceof DatasetError && e.message.includes(`${join(root, 'bb2.csv')}:4: duplicate NAME_ID n000003/0001_01`));
});

test('readDataset: trainList uses exactly the listed files, counts and skips missing ones', (t) => {
  const root = tmp(t);
  touch(root, ['train/n000002/0001_01.jpg', 'train/n000002/0002_01.jpg', 'train/n000002/0003_01.jpg', 'train/n000003/0001_01.jpg',
    'train/n000004/0001_01.jpg', 'train/n000001/0001_01.jpg']);
  writeFileSync(join(root, 'train_list.txt'), 'n000002/0003_01.jpg\r\nn000002/0001_01.jpg\n\nn000003/0009_01.jpg\nn000005/0001_01.jpg\nn000001/0001_01.jpg\n');
  writeFileSync(join(root, 'meta.csv'), META);
  const ds = readDataset(args(root, { trainList: 'train_list.txt', identityMeta: join(root, 'meta.csv') }));
  assert.deepEqual(keys(ds), [['n000002/0001_01.jpg', 'n000002/0003_01.jpg']]); // n000004 not listed
  assert.deepEqual(ds.missingListed, { count: 2, examples: ['n000003/0009_01.jpg', 'n000005/0001_01.jpg'] });
  assert.deepEqual(ds.excluded.map((e) => e.identity), ['n000001', 'n000003', 'n000005']);
  assert.match(ds.excluded[1].reason, /none of its 1 listed images exist/);

  writeFileSync(join(root, 'dup.txt'), 'n000002/0001_01.jpg\nn000002/0001_01.jpg\n');
  assert.throws(() => readDataset(args(root, { trainList: 'dup.txt' })), (e: unknown) => e instanceof DatasetError && /dup\.txt:2: .* listed twice/.test(e.message));
  writeFileSync(join(root, 'bad.txt'), 'n000002/0001_01.jpg\n0001_01.jpg\n');
  assert.throws(() => readDataset(args(root, { trainList: 'bad.txt' })), /bad\.txt:2: expected <identity>\/<image>/);
  writeFileSync(join(root, 'none.txt'), 'n000002/0009_01.jpg\n');
  assert.throws(() => readDataset(args(root, { trainList: 'none.txt' })), /no usable identity/);
  assert.throws(() => readDataset(args(root, { trainList: 'absent.txt' })), (e: unknown) => e instanceof DatasetError && /absent\.txt \(ENOENT\)/.test(e.message));
});

test('readDataset: missing root, file root, empty root, no identity folders, bad meta → DatasetError naming the path', (t) => {
  const root = tmp(t);
  const missing = join(root, 'nope');
  assert.throws(() => readDataset(args(missing)), (e: unknown) => e instanceof DatasetError && e.message.includes(missing) && /does not exist/.test(e.message));
  touch(root, ['file.txt', 'empty/', 'flat/a.jpg', 'emptyids/A/', 'emptyids/B/x.txt', 'vgg/train/']);
  assert.throws(() => readDataset(args(join(root, 'file.txt'))), /not a directory/);
  assert.throws(() => readDataset(args(join(root, 'empty'))), (e: unknown) => e instanceof DatasetError && e.message.includes(join(root, 'empty')) && /is empty/.test(e.message));
  assert.throws(() => readDataset(args(join(root, 'vgg'))), (e: unknown) => e instanceof DatasetError && e.message.includes(join(root, 'vgg', 'train')));
  assert.throws(() => readDataset(args(join(root, 'flat'))), /no identity folders in/);
  assert.throws(() => readDataset(args(join(root, 'emptyids'))), (e: unknown) => e instanceof DatasetError && /all 2 excluded/.test(e.message));
  touch(root, ['ok/A/1.jpg']);
  writeFileSync(join(root, 'bad_meta.csv'), 'Class_ID, Name, Sample_Num, Flag, Gender\nA," ""x""",1,7, m\n');
  assert.throws(() => readDataset(args(join(root, 'ok'), { identityMeta: join(root, 'bad_meta.csv') })), (e: unknown) =>
    e instanceof DatasetError && e.message.includes(`${join(root, 'bad_meta.csv')}:2`));
});

test('readDataset: the real lfw_devtrain (298 identities, 2,282 images, matching identities.tsv)', { skip: needDatasets }, () => {
  const root = join(DATASETS, 'lfw_devtrain');
  const t0 = performance.now();
  const ds = readDataset(args(root));
  const ms = performance.now() - t0;
  assert.equal(ds.layout, 'folder');
  assert.equal(ds.identities.length, 298);
  assert.equal(ds.byIdentity.flat().length, 2282);
  assert.deepEqual(ds.excluded, []);
  const tsv = readFileSync(join(root, 'identities.tsv'), 'utf8').trim().split('\n').map((l) => l.split('\t'));
  assert.deepEqual(ds.identities, tsv.map((r) => r[0]).sort());
  for (const [name, shipped] of tsv) assert.equal(ds.byIdentity[ds.identities.indexOf(name)].length, Number(shipped));
  assert.equal(ds.byIdentity[0][0].key, 'Ahmed_Chalabi/Ahmed_Chalabi_0001.jpg');
  console.log(`# lfw_devtrain listed in ${ms.toFixed(1)} ms`);
});

test('readDataset: vggface2_samples crops (3 test identities; n000106 has Flag 0 in the real meta excerpt)', { skip: needDatasets }, (t) => {
  const loose = readDataset(args(join(DATASETS, 'vggface2_samples', 'loose_crop')));
  assert.deepEqual(loose.identities, ['n000106', 'n007241', 'n008937']);
  assert.deepEqual(loose.byIdentity.map((l) => l.length), [6, 19, 7]);
  assert.equal(loose.byIdentity[0][0].key, 'n000106/0001_03.jpg');
  const tight = readDataset(args(join(DATASETS, 'vggface2_samples', 'tight_crop'), { identityMeta: META_EXCERPT }));
  assert.deepEqual(tight.identities, ['n007241', 'n008937']);
  assert.deepEqual(tight.excluded.map((e) => e.identity), ['n000106']);
  assert.deepEqual(tight.byIdentity[0].map((e) => e.label), new Array(19).fill(0));
  // the samples folder itself holds no images directly inside its two sub-folders
  assert.throws(() => readDataset(args(join(DATASETS, 'vggface2_samples'))), DatasetError);
  // as a VGGFace2 root: <root>/train → the loose crops
  const root = tmp(t);
  symlinkSync(join(DATASETS, 'vggface2_samples', 'loose_crop'), join(root, 'train'));
  writeFileSync(join(root, 'train_list.txt'), 'n007241/0002_01.jpg\nn008937/0001_01.jpg\nn008937/9999_01.jpg\n');
  const v = readDataset(args(root, { trainList: 'train_list.txt' }));
  assert.equal(v.layout, 'vggface2');
  assert.deepEqual(keys(v), [['n007241/0002_01.jpg'], ['n008937/0001_01.jpg']]);
  assert.equal(v.missingListed!.count, 1);
});
