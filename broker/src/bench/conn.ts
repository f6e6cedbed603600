import { writeFile } from 'node:fs/promises';
import { BenchRunError, connectClients } from './clients.js';
import type { ConnOptions } from './options.js';
import { settingsOf, type ConnReport } from './report.js';
import { waitUntil } from './timing.js';

/** `meridian bench conn`: open --count connections, hold them --hold seconds, disconnect. */
export async function runConnBench(options: ConnOptions, signal?: AbortSignal): Promise<ConnReport> {
  const { pool, times } = await connectClients(options, { role: 'conn', count: options.count });
  try {
    if (options.readyFile !== undefined) await writeReadyFile(options.readyFile, { connections: times.count });
    const holdStartedAt = performance.now();
    await waitUntil(options.holdS * 1000, () => pool.lost !== undefined, signal);
    if (pool.lost) throw pool.lost;
    return { command: 'conn', settings: settingsOf(options), connect: times, heldMs: performance.now() - holdStartedAt };
  } finally {
    await pool.close();
  }
}

/** Tells a script (e.g. e2e/bench/memory.sh) that every client is connected or subscribed. */
export async function writeReadyFile(path: string, content: Record<string, number>): Promise<void> {
  try {
    await writeFile(path, JSON.stringify({ ...content, pid: process.pid }) + '\n');
  } catch (error) {
    throw new BenchRunError(`cannot write --ready-file ${path}: ${error instanceof Error ? error.message : String(error)}`);
  }
}
