import { hashPassword, parsePasswordHash, PasswordHashError, verifyPassword } from '../../../src/mqtt/auth/password.js';

const FAST = { N: 1024, r: 8, p: 1 };

describe('scrypt password hashes', () => {
  test('a hash carries its parameters and verifies only the right password', async () => {
    const text = await hashPassword('s3cret', FAST);
    expect(text).toMatch(/^scrypt\$1024\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
    const parsed = parsePasswordHash(text);
    expect(parsed).toMatchObject({ N: 1024, r: 8, p: 1 });
    expect(parsed.salt).toHaveLength(16);
    expect(parsed.hash).toHaveLength(32);
    await expect(verifyPassword('s3cret', parsed)).resolves.toBe(true);
    await expect(verifyPassword(Buffer.from('s3cret'), parsed)).resolves.toBe(true);
    await expect(verifyPassword('s3cret ', parsed)).resolves.toBe(false);
    await expect(verifyPassword('', parsed)).resolves.toBe(false);
  });

  test('the same password gets a different salt each time', async () => {
    const [a, b] = await Promise.all([hashPassword('same', FAST), hashPassword('same', FAST)]);
    expect(a).not.toBe(b);
  });

  test('the default parameters are scrypt N=16384 r=8 p=1', async () => {
    expect(parsePasswordHash(await hashPassword('x'))).toMatchObject({ N: 16384, r: 8, p: 1 });
  });

  test.each([
    ['bcrypt$10$abc', /expected 'scrypt\$N\$r\$p\$salt\$hash'/],
    ['scrypt$1024$8$1$c2FsdHNhbHRzYWx0$', /hash is not base64/],
    ['scrypt$1000$8$1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA==', /power of two/],
    ['scrypt$1024$0$1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA==', /r must be between/],
    ['scrypt$1024$8$99$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA==', /p must be between/],
    ['scrypt$1048576$32$1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA==', /needs more than 256 MiB/],
    ['scrypt$1024$8$1$c2FsdA==$aGFzaGhhc2hoYXNoaGFzaA==', /salt must be at least 8 bytes/],
    ['scrypt$-1$8$1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA==', /N must be a positive integer/],
  ])('%s is rejected', (text, message) => {
    expect(() => parsePasswordHash(text)).toThrow(PasswordHashError);
    expect(() => parsePasswordHash(text)).toThrow(message);
  });
});
