import { readFile } from 'node:fs/promises';

export const MIN_SECRET_BYTES = 16;

/**
 * Reads `--cluster-secret-file` (e.g. a mounted Kubernetes Secret). Trailing whitespace is dropped, so a file
 * written by `echo` and one written by Kubernetes hold the same secret.
 */
export async function readClusterSecret(path: string): Promise<Buffer> {
  let raw: Buffer;
  try {
    raw = await readFile(path);
  } catch (err) {
    throw new Error(`cannot read the cluster secret file ${path}: ${(err as Error).message}`);
  }
  let end = raw.length;
  while (end > 0 && [0x20, 0x09, 0x0a, 0x0d].includes(raw[end - 1] as number)) end--;
  const secret = raw.subarray(0, end);
  if (secret.length < MIN_SECRET_BYTES) {
    throw new Error(`cluster secret in ${path} is ${secret.length} bytes; at least ${MIN_SECRET_BYTES} are required`);
  }
  return Buffer.from(secret);
}
