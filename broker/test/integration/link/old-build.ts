/**
 * A build of an older commit of this repository, for tests against a remote running an older version (the link's
 * capabilities fallback). The commit's `broker/src` and `operator/src` come out of git history (`git archive`),
 * compile with this tree's TypeScript against this tree's node_modules (symlinked: the dependencies of these
 * commits differ only in the aedes patch), once per commit into node_modules/.cache; later runs reuse it.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from '../../harness/broker-process.js';

const CACHE_DIR = path.join(REPO_ROOT, 'node_modules', '.cache', 'meridian-old-builds');

/** Why the commit cannot be built here (no git, no history: a shallow clone or a source tarball), or null. */
export function oldCommitUnavailable(commit: string): string | null {
  const found = spawnSync('git', ['-C', REPO_ROOT, 'cat-file', '-e', `${commit}^{commit}`], { encoding: 'utf8' });
  if (found.error) return `git is not available (${found.error.message})`;
  if (found.status !== 0) return `commit ${commit} is not in this clone's history (${found.stderr.trim() || 'git cat-file failed'})`;
  return null;
}

/**
 * The `meridian` entry point of `commit`, built if not cached yet. Built in a temporary directory renamed into
 * place at the end, so concurrent runs and an interrupted build never leave a half-built cache.
 */
export function oldMeridianBin(commit: string): { bin: string; builtMs: number | null } {
  const dir = path.join(CACHE_DIR, commit);
  const bin = path.join(dir, 'dist', 'broker', 'src', 'cli', 'main.js');
  if (existsSync(bin)) return { bin, builtMs: null };
  const started = Date.now();
  mkdirSync(CACHE_DIR, { recursive: true });
  const work = mkdtempSync(path.join(CACHE_DIR, `${commit}.building-`));
  try {
    const archive = execFileSync('git', ['-C', REPO_ROOT, 'archive', commit, 'broker/src', 'operator/src', 'tsconfig.json', 'package.json'], { maxBuffer: 256 * 1024 * 1024 });
    execFileSync('tar', ['-x', '-C', work], { input: archive });
    symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(work, 'node_modules'), 'dir');
    writeFileSync(path.join(work, 'tsconfig.old.json'), JSON.stringify({
      extends: './tsconfig.json',
      compilerOptions: { sourceMap: false, types: ['node'] },
      include: ['broker/src/**/*.ts', 'operator/src/**/*.ts'],
    }));
    const tsc = spawnSync(process.execPath, [path.join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.old.json'], { cwd: work, encoding: 'utf8' });
    if (!existsSync(path.join(work, 'dist', 'broker', 'src', 'cli', 'main.js'))) {
      throw new Error(`building commit ${commit} failed (tsc exit ${tsc.status}): ${tsc.stdout}${tsc.stderr}`.slice(0, 4000));
    }
    try {
      renameSync(work, dir);
    } catch (err) {
      // Another run finished the same build first: use that one.
      if (!existsSync(bin)) throw err;
      rmSync(work, { recursive: true, force: true });
    }
  } catch (err) {
    rmSync(work, { recursive: true, force: true });
    throw err;
  }
  return { bin, builtMs: Date.now() - started };
}
