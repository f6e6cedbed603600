import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import { repoRoot } from '../harness/paths.js';
import { freePort } from '../harness/ports.js';

const DEMO = path.join(repoRoot(), 'dist', 'e2e', 'demo.js');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A child process whose stdout lines are collected. */
function run(command: string, args: string[]): { child: ChildProcess; lines: string[]; exit: Promise<number | null> } {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let buffered = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    buffered += chunk;
    const parts = buffered.split('\n');
    buffered = parts.pop()!;
    lines.push(...parts);
  });
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => lines.push(...chunk.split('\n').filter(Boolean).map((l) => `stderr: ${l}`)));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, lines, exit };
}

async function waitFor(check: () => boolean, what: string, lines: string[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; output:\n${lines.slice(-40).join('\n')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The ready-to-paste command the demo printed that starts with `prefix`. */
function printedCommand(lines: string[], prefix: string): string {
  const line = lines.find((l) => l.trim().startsWith(prefix));
  if (!line) throw new Error(`the demo printed no '${prefix}' command; output:\n${lines.join('\n')}`);
  return line.trim();
}

/** PIDs whose parent is `pid` (from /proc/<pid>/stat: the parent PID is the field after the state). */
function childPids(pid: number): number[] {
  return readdirSync('/proc').filter((d) => /^\d+$/.test(d)).flatMap((d) => {
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      return ppid === pid ? [Number(d)] : [];
    } catch {
      return []; // exited meanwhile
    }
  });
}

describe('the demo (npm start): three regions, live sample, mosquitto by hand, clean Ctrl-C', () => {
  const started: ChildProcess[] = [];
  // On failure: SIGINT lets the demo stop its regions by PID; SIGKILL only if it does not exit in time.
  afterAll(async () => {
    await Promise.all(started.filter((c) => c.exitCode === null && c.signalCode === null).map(async (c) => {
      const exited = new Promise((resolve) => c.once('exit', resolve));
      c.kill('SIGINT');
      const timer = setTimeout(() => c.kill('SIGKILL'), 15000);
      await exited;
      clearTimeout(timer);
    }));
  }, 20000);

  it('prints the live sample, carries a mosquitto_pub in us-east to a mosquitto_sub in emea once, and SIGINT leaves no process', async () => {
    const ports = [await freePort(), await freePort(), await freePort()];
    const admin = [await freePort(), await freePort(), await freePort()];
    const demo = run(process.execPath, [DEMO, '--ports', ports.join(','), '--admin-ports', admin.join(',')]);
    started.push(demo.child);
    const samples = (): string[] => demo.lines.filter((l) => /^emea +← acme\/.* latency \d+ ms$/.test(l));
    await waitFor(() => samples().length >= 2, 'two live sample lines', demo.lines, 60000);
    const latencies = samples().map((l) => Number(/latency (\d+) ms/.exec(l)![1]));
    for (const ms of latencies) expect(ms).toBeGreaterThanOrEqual(44); // us-east↔emea is 45 ms one-way

    const subCommand = printedCommand(demo.lines, 'mosquitto_sub');
    const pubCommand = printedCommand(demo.lines, 'mosquitto_pub');
    expect(subCommand).toContain(`-p ${ports[2]} `);
    expect(pubCommand).toContain(`-p ${ports[0]} `);
    // Run as pasted into a shell.
    const sub = run('bash', ['-c', `exec ${subCommand}`]);
    started.push(sub.child);
    // Subscribed once it prints a sample event; then one message by hand.
    await waitFor(() => sub.lines.some((l) => l.includes('/access/')), 'mosquitto_sub receiving the sample', sub.lines, 20000);
    const pub = spawnSync('bash', ['-c', pubCommand], { encoding: 'utf8', timeout: 10000 });
    expect({ status: pub.status, stderr: pub.stderr }).toEqual({ status: 0, stderr: '' });
    const byHand = (): string[] => sub.lines.filter((l) => l === 'boston-hq/access/door-7/denied badge 4711');
    await waitFor(() => byHand().length >= 1, 'the hand-published message in emea', sub.lines, 15000);
    await new Promise((r) => setTimeout(r, 1000));
    expect(byHand()).toHaveLength(1);
    sub.child.kill('SIGTERM');
    await sub.exit;

    const children = childPids(demo.child.pid!);
    expect(children.length).toBeGreaterThanOrEqual(13); // 3 regions × (2 cores + replicant + agent), the harness watchdog
    demo.child.kill('SIGINT');
    expect(await demo.exit).toBe(0);
    expect(demo.lines).toContain('stopped; no process left.');
    // The regions are stopped before the demo exits; its watchdog leaves when the demo's end of its stdin closes.
    const deadline = Date.now() + 3000;
    while (children.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(children.filter(alive)).toEqual([]);
  }, 90000);

  it('names a taken port and how to override it', async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as AddressInfo).port;
    try {
      const demo = run(process.execPath, [DEMO, '--ports', `${port},${await freePort()},${await freePort()}`, '--admin-ports', `${await freePort()},${await freePort()},${await freePort()}`]);
      started.push(demo.child);
      expect(await demo.exit).toBe(2);
      const text = demo.lines.join('\n');
      expect(text).toContain(`port ${port} (us-east client MQTT) is already in use`);
      expect(text).toContain('--ports');
      expect(text).toContain('MERIDIAN_DEMO_PORTS');
    } finally {
      await new Promise<void>((resolve) => taken.close(() => resolve()));
    }
  });
});
