import { linkFingerprint, LinksFileError, parseLinksFile, topicsProblem } from '../../../src/link/config.js';

const entry = (extra: string): string => `links:\n  - name: eu\n    servers: ["eu.example:1883"]\n${extra}`;

describe('links file', () => {
  test('applies defaults to a minimal entry', () => {
    const { links, issues } = parseLinksFile(entry('    topics: ["sensors/#"]\n'), 'us');
    expect(issues).toEqual([]);
    expect(links).toEqual([{
      name: 'eu', servers: ['eu.example:1883'], clientIdPrefix: 'meridian-link-', topics: ['sensors/#'], enabled: true,
      queue: { maxBytes: 64 * 1024 * 1024, whenFull: 'block' }, compression: 'none', routeTtlSeconds: 60,
    }]);
  });

  test('reads every documented field', () => {
    const text = [
      'links:',
      '  - name: ap-south',
      '    servers: ["a:8883", "b:8883"]',
      '    clientIdPrefix: link-',
      '    username: us-east',
      '    passwordFile: /secrets/link/password',
      '    tls: { caFile: /ca.pem, certFile: /c.pem, keyFile: /k.pem, serverName: mqtt.ap, verify: false }',
      '    topics: ["a/#", "b/+/c"]',
      '    enabled: false',
      '    queue: { dir: /data/q, maxBytes: 1048576, whenFull: reject }',
      '    compression: deflate',
    ].join('\n');
    const { links, issues } = parseLinksFile(text, 'us-east');
    expect(issues).toEqual([]);
    expect(links[0]).toMatchObject({
      servers: ['a:8883', 'b:8883'], username: 'us-east', passwordFile: '/secrets/link/password',
      tls: { caFile: '/ca.pem', certFile: '/c.pem', keyFile: '/k.pem', serverName: 'mqtt.ap', verify: false },
      enabled: false, queue: { dir: '/data/q', maxBytes: 1048576, whenFull: 'reject' }, compression: 'deflate',
    });
  });

  test('a bad entry is reported with its key path and the good ones are kept', () => {
    const text = [
      'links:',
      '  - { name: eu, servers: ["eu:1883"], topics: ["x/#"] }',
      '  - { name: ap, servers: ["ap:1883"], topics: ["a/#", "a/b"] }',
      '  - { name: sa, servers: ["sa:99999"] }',
      '  - { name: af, servers: ["af:1883"], queue: { whenFull: drop } }',
      '  - { name: me, servers: ["me:1883"], colour: blue }',
      '  - { name: eu, servers: ["other:1883"] }',
      '  - { name: us, servers: ["self:1883"] }',
      '  - { servers: ["x:1883"] }',
    ].join('\n');
    const { links, issues } = parseLinksFile(text, 'us');
    expect(links.map((l) => l.name)).toEqual(['eu']);
    expect(issues.map((i) => [i.path, i.name])).toEqual([
      ['links[1].topics[1]', 'ap'],
      ['links[2].servers[0]', 'sa'],
      ['links[3].queue.whenFull', 'af'],
      ['links[4].colour', 'me'],
      ['links[5].name', 'eu'],
      ['links[6].name', 'us'],
      ['links[7].name', undefined],
    ]);
    expect(issues[0].reason).toContain('redundant');
    expect(issues[2].reason).toBe('must be one of "block", "reject"');
    expect(issues[3].reason).toBe('unknown key');
    expect(issues[4].reason).toContain('duplicate');
    expect(issues[6].reason).toBe('is required');
  });

  test('link topics: invalid filters, $LINK, redundancy and overlap are refused', () => {
    expect(topicsProblem(['a/#', 'b/+'])).toBeNull();
    expect(topicsProblem(['$SYS/#'])).toBeNull();
    expect(topicsProblem(['a/#/b'])?.reason).toContain('not a valid MQTT filter');
    expect(topicsProblem(['$LINK/#'])?.reason).toContain('reserved');
    expect(topicsProblem(['$LINK/cluster/msg/x'])?.reason).toContain('reserved');
    expect(topicsProblem(['#'])).toBeNull(); // '#' never matches $-topics, so it does not overlap $LINK/#
    expect(topicsProblem(['a/b', 'a/+'])).toMatchObject({ index: 1, reason: expect.stringContaining('redundant') });
    expect(topicsProblem(['a/+', '+/b'])).toMatchObject({ index: 1, reason: expect.stringContaining('overlaps') });
    expect(topicsProblem(['$share/g/a'])?.reason).toContain('shared');
  });

  test('the file as a whole must be YAML with a links list', () => {
    expect(() => parseLinksFile('links: [', 'us')).toThrow(LinksFileError);
    expect(() => parseLinksFile('links: 3', 'us')).toThrow('links: must be a list');
    expect(() => parseLinksFile('link: []', 'us')).toThrow('link: unknown key');
    expect(parseLinksFile('', 'us')).toEqual({ links: [], issues: [] });
  });

  test('a password file needs a username; a certificate needs its key', () => {
    expect(parseLinksFile(entry('    passwordFile: /p\n'), 'us').issues[0]).toMatchObject({ path: 'links[0].username', reason: 'is required with passwordFile' });
    expect(parseLinksFile(entry('    tls: { certFile: /c }\n'), 'us').issues[0]).toMatchObject({ path: 'links[0].tls.keyFile' });
  });

  test('the fingerprint ignores key order and sees every change', () => {
    const a = parseLinksFile('links: [{ name: eu, servers: ["e:1"], topics: [x], queue: { maxBytes: 8192, whenFull: reject } }]', 'us').links[0];
    const b = parseLinksFile('links: [{ topics: [x], queue: { whenFull: reject, maxBytes: 8192 }, servers: ["e:1"], name: eu }]', 'us').links[0];
    const c = parseLinksFile('links: [{ name: eu, servers: ["e:1"], topics: [y], queue: { maxBytes: 8192, whenFull: reject } }]', 'us').links[0];
    expect(linkFingerprint(a)).toBe(linkFingerprint(b));
    expect(linkFingerprint(a)).not.toBe(linkFingerprint(c));
  });
});
