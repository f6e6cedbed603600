#!/usr/bin/env node
/**
 * Stand-alone entry of the operator (`node dist/operator/src/cli-main.js [flags]`), equivalent to `meridian
 * operator [flags]`; the integration tests run the operator through it.
 */
import { runOperatorCommand, UsageError } from './cli.js';

runOperatorCommand(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`meridian operator: ${err.message}\n`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`meridian operator: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
