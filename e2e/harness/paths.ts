import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

/** The repository root: the nearest ancestor with Meridian's package.json (works from source and from dist/). */
export function repoRoot(): string {
  if (root) return root;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'meridian') return (root = dir);
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`harness: no Meridian package.json above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

/** The compiled CLI the harness runs (`npx tsc -p tsconfig.json` builds it). */
export function meridianBin(): string {
  const bin = path.join(repoRoot(), 'dist', 'broker', 'src', 'cli', 'main.js');
  if (!existsSync(bin)) throw new Error(`harness: ${bin} not found; build first: npx tsc -p tsconfig.json`);
  return bin;
}
