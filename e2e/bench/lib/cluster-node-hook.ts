/**
 * Preloaded into the cluster nodes of e2e/bench/cluster.sh (`node --expose-gc --import <this file> main.js broker`)
 * so the script can ask a running node, by PID, for what only the process itself can give:
 *
 *   memory         a full garbage collection, then process.memoryUsage() → <pid>.memory.json
 *                  (memory per route read after a GC, not at whatever point the heap happens to be)
 *   profile-start  start V8's CPU profiler in-process (1 ms sampling, as `node --cpu-prof`) → <pid>.profile-start.done
 *   profile-stop   stop it → <pid>.cpuprofile, so a profile covers one benchmark phase and nothing else
 *
 * Protocol: the script writes the command to $MERIDIAN_BENCH_HOOK_DIR/<pid>.cmd and sends SIGUSR2; the answer file
 * appears in the same directory (written aside and renamed, never half-written), or <pid>.error with the reason.
 * Nothing else in the node changes.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';

const directory = process.env.MERIDIAN_BENCH_HOOK_DIR;
const collect = (globalThis as { gc?: () => void }).gc;
const SAMPLING_INTERVAL_US = 1000;
let profiler: Session | undefined;

function answer(name: string, content: string): void {
  if (directory === undefined) return;
  const target = join(directory, `${process.pid}.${name}`);
  writeFileSync(`${target}.tmp`, content);
  renameSync(`${target}.tmp`, target);
}

function memoryAfterGc(): NodeJS.MemoryUsage {
  if (collect === undefined) throw new Error('the node runs without --expose-gc');
  // Several passes: the first can leave objects with finalizers or weak references for the next one.
  for (let i = 0; i < 3; i++) collect();
  return process.memoryUsage();
}

async function startProfiler(): Promise<void> {
  if (profiler !== undefined) throw new Error('the profiler is already running');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: SAMPLING_INTERVAL_US });
  await session.post('Profiler.start');
  profiler = session;
}

async function stopProfiler(): Promise<string> {
  const session = profiler;
  if (session === undefined) throw new Error('the profiler is not running');
  profiler = undefined;
  const { profile } = await session.post('Profiler.stop');
  session.disconnect();
  return JSON.stringify(profile);
}

async function handle(command: string): Promise<void> {
  switch (command) {
    case 'memory':
      return answer('memory.json', JSON.stringify(memoryAfterGc()));
    case 'profile-start':
      await startProfiler();
      return answer('profile-start.done', '');
    case 'profile-stop':
      return answer('cpuprofile', await stopProfiler());
    default:
      throw new Error(`unknown command "${command}"`);
  }
}

if (directory !== undefined) {
  process.on('SIGUSR2', () => {
    let command = '';
    try {
      command = readFileSync(join(directory, `${process.pid}.cmd`), 'utf8').trim();
    } catch (error) {
      answer('error', `cannot read the command file: ${error instanceof Error ? error.message : String(error)}`);
      return;
    }
    handle(command).catch((error: unknown) => answer('error', `${command}: ${error instanceof Error ? error.message : String(error)}`));
  });
}
