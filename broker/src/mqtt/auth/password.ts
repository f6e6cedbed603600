import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/**
 * Password hashes in the users file: `scrypt$<N>$<r>$<p>$<salt base64>$<hash base64>` (node:crypto scrypt, the
 * parameters travel with the hash so they can be raised later without invalidating existing entries).
 */
export interface ScryptParams {
  /** CPU/memory cost, a power of two. */
  N: number;
  r: number;
  p: number;
}

export interface PasswordHash extends ScryptParams {
  salt: Buffer;
  hash: Buffer;
}

export const DEFAULT_SCRYPT: ScryptParams = { N: 16384, r: 8, p: 1 };
const SALT_BYTES = 16;
const KEY_BYTES = 32;
const MAX_N = 1 << 20;
const MAX_R = 32;
const MAX_P = 16;
/** A users file must not be able to make every CONNECT allocate more than this. */
const MAX_MEMORY = 256 * 1024 * 1024;

export class PasswordHashError extends Error {
  override name = 'PasswordHashError';
}

/** Parses and bounds-checks a stored hash; throws PasswordHashError naming what is wrong. */
export function parsePasswordHash(text: string): PasswordHash {
  const parts = text.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') {
    throw new PasswordHashError("expected 'scrypt$N$r$p$salt$hash' (create one with 'meridian passwd')");
  }
  const [, n, r, p, salt, hash] = parts as [string, string, string, string, string, string];
  const params = { N: toInt(n, 'N'), r: toInt(r, 'r'), p: toInt(p, 'p') };
  checkParams(params);
  return { ...params, salt: fromBase64(salt, 'salt', 8), hash: fromBase64(hash, 'hash', 16) };
}

export async function hashPassword(password: string, params: ScryptParams = DEFAULT_SCRYPT): Promise<string> {
  checkParams(params);
  const salt = randomBytes(SALT_BYTES);
  const hash = await derive(password, salt, KEY_BYTES, params);
  return ['scrypt', params.N, params.r, params.p, salt.toString('base64'), hash.toString('base64')].join('$');
}

/** Constant-time comparison of the derived key with the stored one. */
export async function verifyPassword(password: string | Buffer, stored: PasswordHash): Promise<boolean> {
  const derived = await derive(password, stored.salt, stored.hash.length, stored);
  return timingSafeEqual(derived, stored.hash);
}

function derive(password: string | Buffer, salt: Buffer, keyLength: number, params: ScryptParams): Promise<Buffer> {
  const options: ScryptOptions = { N: params.N, r: params.r, p: params.p, maxmem: 2 * scryptMemory(params) };
  return new Promise((resolve, reject) => {
    scrypt(password, salt, keyLength, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

function checkParams({ N, r, p }: ScryptParams): void {
  if (N < 2 || N > MAX_N || (N & (N - 1)) !== 0) throw new PasswordHashError(`scrypt N must be a power of two between 2 and ${MAX_N}, got ${N}`);
  if (r < 1 || r > MAX_R) throw new PasswordHashError(`scrypt r must be between 1 and ${MAX_R}, got ${r}`);
  if (p < 1 || p > MAX_P) throw new PasswordHashError(`scrypt p must be between 1 and ${MAX_P}, got ${p}`);
  if (scryptMemory({ N, r, p }) > MAX_MEMORY) throw new PasswordHashError(`scrypt N=${N} r=${r} needs more than ${MAX_MEMORY / 1048576} MiB`);
}

/** Node's scrypt needs about 128·N·r bytes. */
function scryptMemory({ N, r }: ScryptParams): number {
  return 128 * N * r;
}

function toInt(text: string, name: string): number {
  if (!/^\d{1,8}$/.test(text)) throw new PasswordHashError(`scrypt ${name} must be a positive integer, got '${text}'`);
  return Number(text);
}

function fromBase64(text: string, name: string, minBytes: number): Buffer {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text)) throw new PasswordHashError(`${name} is not base64`);
  const bytes = Buffer.from(text, 'base64');
  if (bytes.length < minBytes) throw new PasswordHashError(`${name} must be at least ${minBytes} bytes, got ${bytes.length}`);
  return bytes;
}
