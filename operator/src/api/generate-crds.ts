/**
 * Writes crds/*.yaml from the schemas in this folder. Run from the repository root after building:
 *   node dist/operator/src/api/generate-crds.js [outDir]          (default outDir: ./crds)
 *   node dist/operator/src/api/generate-crds.js --check [outDir]  (exit 1 when the files are stale)
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { crdFiles } from './crds.js';

function main(argv: string[]): number {
  const check = argv.includes('--check');
  const outDir = path.resolve(argv.find((a) => !a.startsWith('--')) ?? 'crds');
  const stale: string[] = [];
  if (!check) mkdirSync(outDir, { recursive: true });
  for (const [name, content] of crdFiles()) {
    const file = path.join(outDir, name);
    const current = existsSync(file) ? readFileSync(file, 'utf8') : undefined;
    if (current === content) continue;
    if (check) stale.push(file);
    else writeFileSync(file, content);
    if (!check) console.log(`wrote ${file}`);
  }
  if (stale.length) console.error(`stale CRD files (run generate-crds): ${stale.join(', ')}`);
  return stale.length ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
