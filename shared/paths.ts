/** Locations inside the repository, found from this file whether it runs from source or from dist/. */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRepoRoot(start: string): string {
  let dir = start;
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'configs'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find the repository root above ${start}`);
    dir = parent;
  }
}

/** Absolute path of the repository (the folder holding package.json and configs/). */
export const repoRoot: string = findRepoRoot(dirname(fileURLToPath(import.meta.url)));
export const configsDir: string = join(repoRoot, 'configs');
export const fixturesDir: string = join(repoRoot, 'test', 'fixtures');

/**
 * The shared real-face datasets (read-only, never copied into the repo): $SHARED_DATASETS, else
 * ../shared/datasets next to the repository; null when neither exists.
 */
export const datasetsDir: string | null =
  [process.env.SHARED_DATASETS, join(repoRoot, '..', 'shared', 'datasets')]
    .find((d): d is string => Boolean(d) && existsSync(d as string)) ?? null;

/** For tests that need the shared datasets: a skip reason when they are absent. */
export const needDatasets: string | false = datasetsDir ? false : 'shared datasets not found (set SHARED_DATASETS)';
