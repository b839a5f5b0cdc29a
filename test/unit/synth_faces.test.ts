/**
 * tools/demo/synth_faces.ts (the `npm start` demo's synthetic faces) on a tiny data set:
 * determinism (same seed → byte-identical files, other seed → other images), the VGGFace2 layout as
 * readDataset lists it, the IJB-B meta files (images exist, templates of 1–3 media of 1–2 images,
 * pairs between listed templates, labels 0/1, genuine iff same subject, every genuine pair, the
 * requested number of impostors), caching (a second call writes nothing; other parameters regenerate;
 * leftovers of an interrupted run are cleaned), train and eval identities disjoint, and the pixel
 * separability check's shape and its one claim (fine traits live in the detail a 16-px image loses).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { readDataset } from '../../shared/data/dataset.js';
import { decodeImage } from '../../shared/data/decode.js';
import { readIdentityMeta } from '../../shared/data/identity_meta.js';
import { generateDemoData, identityOf, pixelSeparability, planEval, type DemoDataArgs } from '../../tools/demo/synth_faces.js';
import { tempDir } from '../helpers/coordinator.js';

const TINY = { seed: 7, identities: 3, imagesPerIdentity: 3, evalIdentities: 4, evalImagesPerIdentity: 5, size: 32, impostorPairs: 12 };

function scratch(t: { after: (fn: () => void) => void }): string {
  const dir = tempDir('synth-faces');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Relative path → sha256 of every file under dir (hidden entries included). */
function digest(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.set(relative(dir, p), createHash('sha256').update(readFileSync(p)).digest('hex'));
    }
  };
  walk(dir);
  return out;
}

const rows = (file: string): string[][] => readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map((l) => l.split(' '));

test('same seed → byte-identical files; another seed → other images', async (t) => {
  const base = scratch(t);
  const a = await generateDemoData({ dir: join(base, 'a'), ...TINY });
  const b = await generateDemoData({ dir: join(base, 'b'), ...TINY });
  const c = await generateDemoData({ dir: join(base, 'c'), ...TINY, seed: 8 });
  const [da, db, dc] = [a, b, c].map((r) => digest(r.dir));
  assert.equal(da.size, 3 * 3 + a.counts.evalImages + 6); // + train_list, identity_meta, tid_mid, pair_label, synth_tid_subject, DONE
  assert.deepEqual(db, da);
  const images = [...da.keys()].filter((k) => k.endsWith('.jpg'));
  assert.equal(images.length, 3 * 3 + a.counts.evalImages);
  const differ = images.filter((k) => dc.has(k) && dc.get(k) !== da.get(k)).length;
  assert.ok(differ >= 9, `only ${differ} images differ with another seed`);
});

test('the training set is a VGGFace2 folder that readDataset lists', async (t) => {
  const r = await generateDemoData({ dir: scratch(t), ...TINY });
  const ds = readDataset({ root: r.root, trainList: 'train_list.txt', identityMeta: 'identity_meta.csv', boxes: null });
  assert.equal(ds.layout, 'vggface2');
  assert.deepEqual(ds.identities, ['n000001', 'n000002', 'n000003']);
  assert.deepEqual(ds.excluded, []);
  assert.equal(ds.missingListed?.count, 0);
  assert.deepEqual(ds.byIdentity[1].map((e) => e.key), ['n000002/0001_01.jpg', 'n000002/0002_01.jpg', 'n000002/0003_01.jpg']);
  const meta = readIdentityMeta(r.identityMeta);
  assert.deepEqual([...meta.keys()], ds.identities);
  for (const m of meta.values()) {
    assert.equal(m.flag, 1);
    assert.equal(m.sampleNum, 3);
  }
  assert.match(readFileSync(r.identityMeta, 'utf8').split('\n')[0], /^Class_ID, Name, Sample_Num, Flag, Gender$/);
  const img = await decodeImage(ds.byIdentity[0][0].path);
  assert.equal(img.width, 32);
  assert.equal(img.height, 32);
});

test('the IJB-B meta files: images exist, templates of 1–3 media of 1–2 images, pairs and labels consistent', async (t) => {
  const r = await generateDemoData({ dir: scratch(t), ...TINY });
  const faces = rows(r.faceTidMid);
  assert.equal(faces.length, 4 * 5);
  const subjectOf = new Map(rows(join(r.ijbb, 'meta', 'synth_tid_subject.txt')).map(([tid, s]) => [tid, s]));
  const media = new Map<string, { tid: string; images: number }>();
  const templates = new Map<string, Set<string>>();
  faces.forEach((f, k) => {
    assert.equal(f.length, 3);
    const [name, tid, mid] = f;
    assert.equal(name, `${k + 1}.jpg`);
    assert.ok(existsSync(join(r.ijbb, 'loose_crop', name)), name);
    assert.ok(subjectOf.has(tid), `template ${tid} has no subject`);
    const m = media.get(mid) ?? { tid, images: 0 };
    assert.equal(m.tid, tid, `media ${mid} in two templates`);
    m.images++;
    media.set(mid, m);
    templates.set(tid, (templates.get(tid) ?? new Set()).add(mid));
  });
  for (const m of media.values()) assert.ok(m.images >= 1 && m.images <= 2);
  for (const ms of templates.values()) assert.ok(ms.size >= 1 && ms.size <= 3);
  assert.equal(templates.size, subjectOf.size);
  const perSubject = new Map<string, number>();
  for (const s of subjectOf.values()) perSubject.set(s, (perSubject.get(s) ?? 0) + 1);
  assert.equal(perSubject.size, 4);
  for (const n of perSubject.values()) assert.ok(n >= 2, 'every subject has ≥ 2 templates');

  const pairs = rows(r.templatePairLabel);
  const seen = new Set<string>();
  let genuine = 0;
  for (const [t1, t2, label] of pairs) {
    assert.ok(templates.has(t1) && templates.has(t2), `pair ${t1} ${t2}: unknown template`);
    assert.ok(Number(t1) < Number(t2));
    assert.ok(label === '0' || label === '1');
    assert.equal(label === '1', subjectOf.get(t1) === subjectOf.get(t2), `pair ${t1} ${t2} labelled ${label}`);
    assert.ok(!seen.has(`${t1} ${t2}`), 'duplicate pair');
    seen.add(`${t1} ${t2}`);
    if (label === '1') genuine++;
  }
  const allGenuine = [...perSubject.values()].reduce((s, n) => s + (n * (n - 1)) / 2, 0);
  assert.equal(genuine, allGenuine);
  assert.equal(pairs.length - genuine, 12);
  assert.deepEqual(r.counts, { identities: 3, trainImages: 9, evalIdentities: 4, evalImages: 20, templates: templates.size, media: media.size, genuine, impostor: 12 });
});

test('planEval: at least two templates per identity, even with 2 or 3 images', () => {
  for (const n of [2, 3, 4, 7, 16]) {
    const plan = planEval(1, 30, n);
    assert.equal(plan.images.length, 30 * n);
    for (let s = 0; s < 30; s++) assert.ok(plan.templateSubject.filter((x) => x === s).length >= 2, `n=${n} subject ${s}`);
  }
});

test('caching: a second call writes nothing; other parameters regenerate; an interrupted run is cleaned up', async (t) => {
  const dir = scratch(t);
  const args: DemoDataArgs = { dir, ...TINY };
  const first = await generateDemoData(args);
  assert.equal(first.generated, true);
  const probe = join(dir, 'train', 'n000001', '0001_01.jpg');
  const before = statSync(probe);
  const again = await generateDemoData(args);
  assert.equal(again.generated, false);
  assert.deepEqual(again.counts, first.counts);
  assert.equal(again.hash, first.hash);
  const after = statSync(probe);
  assert.equal(after.mtimeMs, before.mtimeMs);
  assert.equal(after.ino, before.ino);

  const bigger = await generateDemoData({ ...args, imagesPerIdentity: 4 });
  assert.equal(bigger.generated, true);
  assert.notEqual(bigger.hash, first.hash);
  assert.equal(readdirSync(join(dir, 'train', 'n000001')).length, 4);
  assert.equal(readFileSync(bigger.trainList, 'utf8').split('\n').filter(Boolean).length, 12);

  // an interrupted run: DONE gone and a stale staging folder of a dead process left behind
  rmSync(join(dir, 'DONE'));
  mkdirSync(join(dir, '.staging-4194305', 'train'), { recursive: true });
  const redo = await generateDemoData({ ...args, imagesPerIdentity: 4 });
  assert.equal(redo.generated, true);
  assert.ok(existsSync(join(dir, 'DONE')));
  assert.deepEqual(readdirSync(dir).filter((n) => n.startsWith('.')), []);
});

test('train and eval identities are disjoint', async (t) => {
  const r = await generateDemoData({ dir: scratch(t), ...TINY });
  const train = Array.from({ length: 50 }, (_, i) => JSON.stringify(identityOf(TINY.seed, 'train', i)));
  const evals = Array.from({ length: 50 }, (_, j) => JSON.stringify(identityOf(TINY.seed, 'eval', j)));
  assert.equal(new Set([...train, ...evals]).size, 100);
  const classIds = new Set(readDataset({ root: r.root, trainList: null, identityMeta: null, boxes: null }).identities);
  for (const [, subject] of rows(join(r.ijbb, 'meta', 'synth_tid_subject.txt'))) assert.ok(!classIds.has(subject));
  await assert.rejects(generateDemoData({ dir: join(r.dir, 'x'), ...TINY, evalImagesPerIdentity: 1 }), /evalImagesPerIdentity must be an integer in \[2/);
});

test('pixelSeparability: one row per resolution; fine traits live in the detail a 16-px image loses', () => {
  const s = pixelSeparability({ identities: 8, imagesPerIdentity: 6, size: 64, resolutions: [16], traits: 'fine', aligned: true });
  assert.equal(s.chance, 1 / 8);
  assert.deepEqual(s.accuracy.map((a) => a.side), ['full', 'detail', 16]);
  for (const a of s.accuracy) assert.ok(a.accuracy >= 0 && a.accuracy <= 1);
  const acc = (side: string | number): number => s.accuracy.find((a) => a.side === side)!.accuracy;
  assert.ok(acc('detail') > acc(16) + 0.3, JSON.stringify(s.accuracy));
});
