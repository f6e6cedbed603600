// Prints `N passed, N failed` from a Jest --json report; a suite that failed to run counts as one failure.
import { readFileSync } from 'node:fs';

const file = process.argv[2];
let report;
try {
  report = JSON.parse(readFileSync(file, 'utf8'));
} catch (err) {
  console.log(`jest report ${file} unreadable: ${err.message}`);
  console.log('0 passed, 1 failed');
  process.exit(1);
}
const suitesThatDidNotRun = report.testResults.filter((s) => s.status === 'failed' && s.assertionResults.length === 0).length;
const failed = report.numFailedTests + suitesThatDidNotRun;
console.log(`${report.numPassedTests} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
