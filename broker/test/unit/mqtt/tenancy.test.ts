import { mountFilter, mountTopic, parseFilter, TenancyError, TenantDirectory, unmountFilter, unmountTopic } from '../../../src/mqtt/auth/tenancy.js';

describe('tenant mountpoints', () => {
  test('topics are mounted under the prefix and unmounted only from inside it', () => {
    expect(mountTopic('acme/', 'sensors/1')).toBe('acme/sensors/1');
    expect(unmountTopic('acme/', 'acme/sensors/1')).toBe('sensors/1');
    expect(unmountTopic('acme/', 'other/acme/sensors')).toBeUndefined();
    expect(unmountTopic('acme/', 'acme')).toBeUndefined();
    expect(unmountTopic('', '$SYS/x')).toBe('$SYS/x');
  });

  test('a topic that contains another tenant\'s prefix stays inside the own tenant', () => {
    expect(mountTopic('acme/', 'globex/orders')).toBe('acme/globex/orders');
    expect(mountFilter('acme/', 'globex/#')).toBe('acme/globex/#');
  });

  test('filters with wildcards and $ are mounted as a whole', () => {
    expect(mountFilter('acme/', '#')).toBe('acme/#');
    expect(mountFilter('acme/', '+/#')).toBe('acme/+/#');
    expect(mountFilter('acme/', '$SYS/#')).toBe('acme/$SYS/#');
    expect(mountFilter('', '$SYS/#')).toBe('$SYS/#');
  });

  test('$share/<group>/<filter> is mounted on the filter part only', () => {
    expect(mountFilter('acme/', '$share/g1/sensors/#')).toBe('$share/g1/acme/sensors/#');
    expect(mountFilter('acme/', '$share/g1/#')).toBe('$share/g1/acme/#');
    expect(unmountFilter('acme/', '$share/g1/acme/sensors/#')).toBe('$share/g1/sensors/#');
    expect(unmountFilter('acme/', '$share/g1/globex/#')).toBeUndefined();
    expect(unmountFilter('acme/', 'acme/#')).toBe('#');
    expect(unmountFilter('acme/', 'globex/#')).toBeUndefined();
  });

  test('shared subscription syntax is checked', () => {
    expect(parseFilter('$share/g/a/b')).toEqual({ kind: 'shared', group: 'g', filter: 'a/b' });
    expect(parseFilter('a/b')).toEqual({ kind: 'plain', filter: 'a/b' });
    expect(parseFilter('$share/g').kind).toBe('invalid');
    expect(parseFilter('$share//a').kind).toBe('invalid');
    expect(parseFilter('$share/g/').kind).toBe('invalid');
    expect(parseFilter('$share/+/a').kind).toBe('invalid');
  });

  test('configured, implicit and anonymous tenants', () => {
    const tenants = new TenantDirectory([{ name: 'acme', mountpoint: 'customers/acme/' }], 'default');
    expect(tenants.get('acme').mountpoint).toBe('customers/acme/');
    expect(tenants.get('default').mountpoint).toBe('default/');
    expect(tenants.problemWith('globex')).toBeUndefined();
    expect(tenants.problemWith('customers')).toMatch(/implicit mountpoint 'customers\/' overlaps tenant 'acme'/);
    expect(tenants.problemWith('no/slash')).toMatch(/must match/);
  });

  test('an anonymous tenant whose implicit mountpoint overlaps a configured one is a configuration error', () => {
    expect(() => new TenantDirectory([{ name: 'a', mountpoint: 'anon/x/' }], 'anon')).toThrow(TenancyError);
    expect(() => new TenantDirectory([{ name: 'a', mountpoint: '' }], 'default')).toThrow(/overlaps tenant 'a'/);
  });
});
