import { mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * A directory laid out the way the kubelet mounts a Secret key: `users.yaml -> ..data/users.yaml`,
 * `..data -> ..v<n>`; an update writes a new `..v<n+1>` and swaps `..data` atomically with a rename.
 */
export class SecretVolume {
  private version = 0;

  constructor(readonly dir: string, readonly key = 'users.yaml') {}

  get file(): string {
    return path.join(this.dir, this.key);
  }

  publish(text: string): void {
    const versionDir = `..v${++this.version}`;
    mkdirSync(path.join(this.dir, versionDir));
    writeFileSync(path.join(this.dir, versionDir, this.key), text);
    symlinkSync(versionDir, path.join(this.dir, '..data_tmp'));
    renameSync(path.join(this.dir, '..data_tmp'), path.join(this.dir, '..data'));
    if (this.version === 1) symlinkSync(path.join('..data', this.key), this.file);
    else rmSync(path.join(this.dir, `..v${this.version - 1}`), { recursive: true });
  }
}
