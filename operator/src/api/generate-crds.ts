/**
 * Writes the CRD files from the schemas in this folder, to crds/ and to the Helm chart's crds/. Run from the
 * repository root after building:
 *   node dist/operator/src/api/generate-crds.js [outDir...]          (default: crds charts/meridian-operator/crds)
 *   node dist/operator/src/api/generate-crds.js --check [outDir...]  (exit 1 when a file is stale)
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { crdFiles } from './crds.js';

export const CRD_DIRS = ['crds', 'charts/meridian-operator/crds'];

function main(argv: string[]): number {
  const check = argv.includes('--check');
  const given = argv.filter((a) => !a.startsWith('--'));
  const stale: string[] = [];
  for (const dir of (given.length ? given : CRD_DIRS).map((d) => path.resolve(d))) {
    if (!check) mkdirSync(dir, { recursive: true });
    for (const [name, content] of crdFiles()) {
      const file = path.join(dir, name);
      if (existsSync(file) && readFileSync(file, 'utf8') === content) continue;
      if (check) {
        stale.push(file);
        continue;
      }
      writeFileSync(file, content);
      console.log(`wrote ${file}`);
    }
  }
  if (stale.length) console.error(`stale CRD files (run generate-crds): ${stale.join(', ')}`);
  return stale.length ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
