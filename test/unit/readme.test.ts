/** The README stays true: its config table is the schema's, and its test command is CI's. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../../shared/paths.js';
import { readmeWithTable } from '../../shared/config/docs.js';

const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');

test('README config table equals the one generated from configs/schema.json (run `npm run docs`)', () => {
  assert.equal(readme, readmeWithTable(readme));
});

test('README documents the two commands and CI runs its test command', () => {
  assert.match(readme, /npm install\s*\n\s*npm start/);
  assert.match(readme, /npm test/);
  const ci = readFileSync(join(repoRoot, '.ci', 'run'), 'utf8');
  assert.match(ci, /^npm test$/m);
});

test('every npm script is documented in the README', () => {
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  for (const name of Object.keys(pkg.scripts)) {
    if (name === 'prepare' || name === 'build') continue;
    assert.ok(readme.includes(`npm run ${name}`) || readme.includes(`npm ${name}`), `README mentions npm run ${name}`);
  }
});
