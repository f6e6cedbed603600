import { BENCH_HELP, BenchUsageError, parseBenchArgs } from '../bench/args.js';
import { BenchRunError } from '../bench/clients.js';
import { runConnBench } from '../bench/conn.js';
import type { BenchInvocation } from '../bench/options.js';
import { runPubBench } from '../bench/pub.js';
import { formatReport, reportJson, type BenchReport } from '../bench/report.js';
import { runSubBench } from '../bench/sub.js';

/**
 * `meridian bench conn|sub|pub [flags]`; `argv` is what follows `bench`. Returns the exit code:
 * 0 done, 1 connection/subscription failure or lost connection, 2 bad command line.
 */
export async function runBenchCommand(argv: string[]): Promise<number> {
  let invocation: BenchInvocation | undefined;
  try {
    invocation = parseBenchArgs(argv);
  } catch (error) {
    if (!(error instanceof BenchUsageError)) throw error;
    process.stderr.write(`meridian bench: ${error.message}\nRun 'meridian bench --help' for the flags.\n`);
    return 2;
  }
  if (invocation === undefined) {
    process.stdout.write(BENCH_HELP);
    return 0;
  }
  const interrupt = new AbortController();
  // An interrupt ends the current phase early; the run still disconnects cleanly and reports what it measured.
  const onSignal = (): void => interrupt.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const report = await runInvocation(invocation, interrupt.signal);
    process.stdout.write(invocation.json ? reportJson(report) : formatReport(report));
    return 0;
  } catch (error) {
    if (!(error instanceof BenchRunError)) throw error;
    process.stderr.write(`meridian bench ${invocation.command}: ${error.message}\n`);
    return 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** Runs one parsed bench command; exported for tests and for callers that want the report object. */
export function runInvocation(invocation: BenchInvocation, signal?: AbortSignal): Promise<BenchReport> {
  switch (invocation.command) {
    case 'conn':
      return runConnBench(invocation.options, signal);
    case 'sub':
      return runSubBench(invocation.options, signal);
    case 'pub':
      return runPubBench(invocation.options, signal);
  }
}
