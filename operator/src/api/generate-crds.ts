/**
 * Writes the CRD files from the schemas in this folder, to crds/ and to the Helm chart's crds/, and the field
 * reference operator/CRD_REFERENCE.md. Run from the repository root after building:
 *   node dist/operator/src/api/generate-crds.js [outDir...]          (default: both CRD dirs and the reference)
 *   node dist/operator/src/api/generate-crds.js --check [outDir...]  (exit 1 when a file is stale)
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { crdFiles } from './crds.js';
import { crdReference } from './reference.js';

export const CRD_DIRS = ['crds', 'charts/meridian-operator/crds'];
export const REFERENCE_FILE = 'operator/CRD_REFERENCE.md';

/** Writes `content` unless the file already has it; in check mode only reports it. */
function sync(file: string, content: string, check: boolean, stale: string[]): void {
  if (existsSync(file) && readFileSync(file, 'utf8') === content) return;
  if (check) {
    stale.push(file);
    return;
  }
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, content);
  console.log(`wrote ${file}`);
}

function main(argv: string[]): number {
  const check = argv.includes('--check');
  const given = argv.filter((a) => !a.startsWith('--'));
  const stale: string[] = [];
  for (const dir of (given.length ? given : CRD_DIRS).map((d) => path.resolve(d))) {
    for (const [name, content] of crdFiles()) sync(path.join(dir, name), content, check, stale);
  }
  if (!given.length) sync(path.resolve(REFERENCE_FILE), crdReference(), check, stale);
  if (stale.length) console.error(`stale CRD files (run generate-crds): ${stale.join(', ')}`);
  return stale.length ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
