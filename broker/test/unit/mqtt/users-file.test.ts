import { TenantDirectory } from '../../../src/mqtt/auth/tenancy.js';
import { parseUsersFile, UsersFileError } from '../../../src/mqtt/auth/users-file.js';

const HASH = 'scrypt$1024$8$1$c2FsdHNhbHRzYWx0c2FsdA==$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g=';
const tenants = new TenantDirectory([{ name: 'acme', mountpoint: 'customers/acme/' }], 'default');

function issuesOf(text: string): { index?: number; reason: string }[] {
  try {
    parseUsersFile(text, { source: 'users.yaml', tenants });
  } catch (err) {
    if (err instanceof UsersFileError) return err.issues;
    throw err;
  }
  throw new Error('expected the file to be rejected');
}

describe('users file', () => {
  test('parses users with tenants, superusers and certificate-only entries', () => {
    const users = parseUsersFile(`
users:
  - username: alice
    passwordHash: ${HASH}
    tenant: acme
  - username: root
    passwordHash: ${HASH}
    superuser: true
  - username: device-7
`, { source: 'users.yaml', tenants });
    expect(users.map((u) => [u.username, u.tenant, u.superuser, u.passwordHash?.N])).toEqual([
      ['alice', 'acme', false, 1024],
      ['root', undefined, true, 1024],
      ['device-7', undefined, false, undefined],
    ]);
  });

  test('an empty file and an empty list mean no users', () => {
    expect(parseUsersFile('', { source: 'x' })).toEqual([]);
    expect(parseUsersFile('# nobody yet\n\n', { source: 'x' })).toEqual([]);
    expect(parseUsersFile('users: []\n', { source: 'x' })).toEqual([]);
    expect(parseUsersFile('users:\n', { source: 'x' })).toEqual([]);
  });

  test('each bad entry is reported with its index and reason', () => {
    const issues = issuesOf(`
users:
  - username: ok
    passwordHash: ${HASH}
  - username: ""
  - username: bad-hash
    passwordHash: md5$abc
  - username: ok
  - username: x
    tenant: customers
  - username: y
    colour: blue
  - just a string
  - username: z
    superuser: "yes"
`);
    expect(issues).toEqual([
      { index: 1, reason: 'username must be a non-empty string' },
      { index: 2, reason: expect.stringMatching(/^passwordHash of 'bad-hash': expected 'scrypt\$N\$r\$p\$salt\$hash'/) },
      { index: 3, reason: "username 'ok' duplicates users[0]" },
      { index: 4, reason: expect.stringMatching(/implicit mountpoint 'customers\/' overlaps tenant 'acme'/) },
      { index: 5, reason: "unknown key 'colour'" },
      { index: 6, reason: 'must be a mapping with username and passwordHash' },
      { index: 7, reason: 'superuser must be true or false' },
    ]);
  });

  test('the error message names the file and every entry', () => {
    expect(() => parseUsersFile('users:\n  - username: 5\n', { source: '/etc/meridian/users.yaml' }))
      .toThrow(/invalid users file \/etc\/meridian\/users.yaml:\n {2}users\[0\]: username must be a non-empty string/);
  });

  test.each([
    ['users: [unclosed', /not valid YAML/],
    ['- a\n- b\n', /must be a mapping with a 'users' list/],
    ['users: {}\n', /'users' must be a list/],
    ['users: []\nextra: 1\n', /unknown top-level key\(s\): extra/],
  ])('a malformed document is rejected as a whole: %j', (text, reason) => {
    expect(issuesOf(text)[0]?.reason).toMatch(reason);
  });
});
