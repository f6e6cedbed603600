import { spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../harness/paths.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('e2e harness: a harness process killed with SIGKILL leaves no process behind', () => {
  it('its watchdog kills every node and agent it started and removes the work dir', async () => {
    const mesh = path.join(repoRoot(), 'dist', 'e2e', 'harness', 'mesh.js');
    const script = `import { Mesh } from ${JSON.stringify(mesh)};
const m = await Mesh.start({ regions: ['us-east'] });
console.log(JSON.stringify({ pids: m.allPids(), dir: m.workDir }));`;
    const harness = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    harness.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    const started = await new Promise<{ pids: number[]; dir: string }>((resolve, reject) => {
      harness.stdout!.once('data', (d: Buffer) => resolve(JSON.parse(d.toString()) as { pids: number[]; dir: string }));
      harness.once('exit', (code) => reject(new Error(`harness exited with ${code}: ${stderr}`)));
    });
    try {
      expect(started.pids).toHaveLength(4); // core-0, core-1, replicant-0, agent-0
      expect(started.pids.filter(alive)).toHaveLength(4);
      harness.kill('SIGKILL');
      const deadline = Date.now() + 5000;
      while (started.pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(started.pids.filter(alive)).toEqual([]);
      while (existsSync(started.dir) && Date.now() < deadline + 2000) await new Promise((r) => setTimeout(r, 100));
      expect(existsSync(started.dir)).toBe(false);
    } finally {
      for (const pid of started.pids.filter(alive)) process.kill(pid, 'SIGKILL');
      rmSync(started.dir, { recursive: true, force: true });
    }
  }, 60000);
});
