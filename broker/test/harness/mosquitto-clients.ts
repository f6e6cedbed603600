import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';

/** Installs Debian's mosquitto-clients once if mosquitto_pub/mosquitto_sub are missing (tests run as root in CI). */
export function ensureMosquittoClients(): void {
  if (existsSync('/usr/bin/mosquitto_pub') && existsSync('/usr/bin/mosquitto_sub')) return;
  execFileSync('bash', ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto-clients'], { stdio: 'inherit', timeout: 300000 });
}

export function mosquittoPub(args: string[]): string {
  return execFileSync('mosquitto_pub', args, { encoding: 'utf8', timeout: 10000 });
}

/** Starts mosquitto_sub; `collect()` resolves with its stdout lines once it exits (use -C n or -W secs). */
export function mosquittoSub(args: string[]): { child: ChildProcess; collect(): Promise<string[]> } {
  const child = spawn('mosquitto_sub', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => { out += chunk; });
  const done = new Promise<string[]>((resolve) => child.once('exit', () => resolve(out.split('\n').filter(Boolean))));
  return { child, collect: () => done };
}
