import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A mosquitto 2.x broker on a free loopback port, for testing `meridian bench` against a reference broker. */
export class MosquittoProcess {
  private constructor(
    readonly port: number,
    private readonly child: ChildProcess,
    private readonly dir: string,
    private readonly output: string[],
  ) {}

  static async start(): Promise<MosquittoProcess> {
    const probe = spawnSync('mosquitto', ['-h'], { encoding: 'utf8' });
    if (probe.error) throw new Error(`mosquitto is not installed (apt-get install -y mosquitto): ${probe.error.message}`);
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'bench-mosquitto-'));
    const config = join(dir, 'mosquitto.conf');
    writeFileSync(config, `listener ${port} 127.0.0.1\nallow_anonymous true\n`);
    const child = spawn('mosquitto', ['-c', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    const output: string[] = [];
    child.stdout?.on('data', (chunk: Buffer) => output.push(chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => output.push(chunk.toString()));
    const broker = new MosquittoProcess(port, child, dir, output);
    try {
      await broker.waitUntilListening(5000);
    } catch (error) {
      await broker.stop();
      throw error;
    }
    return broker;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill('SIGTERM');
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async waitUntilListening(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.child.exitCode !== null) throw new Error(`mosquitto exited with ${this.child.exitCode}: ${this.output.join('')}`);
      if (await accepts(this.port)) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`mosquitto did not listen on 127.0.0.1:${this.port} within ${timeoutMs} ms: ${this.output.join('')}`);
  }
}

/** A loopback port that was free a moment ago (mosquitto cannot listen on port 0). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
