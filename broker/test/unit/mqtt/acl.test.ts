import type { AclRule } from '../../../src/config/types.js';
import { compileAcl } from '../../../src/mqtt/auth/acl.js';

const alice = { username: 'alice', clientId: 'alice-phone', tenant: 'acme' };

describe('ACL rules', () => {
  test('the first applicable rule decides; none applicable → aclDefault', () => {
    const rules: AclRule[] = [
      { effect: 'deny', action: 'publish', topic: 'sensors/locked' },
      { effect: 'allow', action: 'publish', topic: 'sensors/#' },
    ];
    const acl = compileAcl(rules, 'deny', alice);
    expect(acl.mayPublish('sensors/locked')).toBe(false);
    expect(acl.mayPublish('sensors/1')).toBe(true);
    expect(acl.mayPublish('other')).toBe(false);
    expect(compileAcl(rules, 'allow', alice).mayPublish('other')).toBe(true);
  });

  test('publish rules do not govern subscriptions and vice versa; "all" governs both', () => {
    const acl = compileAcl([
      { effect: 'allow', action: 'publish', topic: 'out/#' },
      { effect: 'allow', action: 'subscribe', topic: 'in/#' },
      { effect: 'allow', action: 'all', topic: 'both/#' },
    ], 'deny', alice);
    expect([acl.mayPublish('out/1'), acl.maySubscribe('out/1'), acl.mayReceive('out/1')]).toEqual([true, false, false]);
    expect([acl.mayPublish('in/1'), acl.maySubscribe('in/1'), acl.mayReceive('in/1')]).toEqual([false, true, true]);
    expect([acl.mayPublish('both/1'), acl.maySubscribe('both/+'), acl.mayReceive('both/1')]).toEqual([true, true, true]);
  });

  test('a subscription is allowed only when an allow rule covers the whole filter', () => {
    const acl = compileAcl([{ effect: 'allow', action: 'subscribe', topic: 'sensors/+/temp' }], 'deny', alice);
    expect(acl.maySubscribe('sensors/+/temp')).toBe(true);
    expect(acl.maySubscribe('sensors/1/temp')).toBe(true);
    expect(acl.maySubscribe('sensors/#')).toBe(false);
    expect(acl.maySubscribe('#')).toBe(false);
  });

  test('a deny rule narrower than a subscription is enforced on each delivered message', () => {
    const acl = compileAcl([{ effect: 'deny', action: 'subscribe', topic: 'secret/#' }], 'allow', alice);
    expect(acl.maySubscribe('#')).toBe(true);
    expect(acl.maySubscribe('secret/+')).toBe(false);
    expect(acl.mayReceive('public/x')).toBe(true);
    expect(acl.mayReceive('secret/x')).toBe(false);
  });

  test('%u and %c are replaced by the username and client id', () => {
    const rules: AclRule[] = [
      { effect: 'allow', action: 'all', topic: 'users/%u/#' },
      { effect: 'allow', action: 'publish', topic: 'devices/%c/state' },
    ];
    const acl = compileAcl(rules, 'deny', alice);
    expect(acl.mayPublish('users/alice/inbox')).toBe(true);
    expect(acl.maySubscribe('users/alice/#')).toBe(true);
    expect(acl.mayPublish('users/bob/inbox')).toBe(false);
    expect(acl.maySubscribe('users/+/inbox')).toBe(false);
    expect(acl.mayPublish('devices/alice-phone/state')).toBe(true);
    expect(acl.mayPublish('devices/other/state')).toBe(false);
  });

  test('a %u rule does not apply to a client without a username', () => {
    const rules: AclRule[] = [{ effect: 'allow', action: 'all', topic: 'users/%u/#' }];
    const anonymous = compileAcl(rules, 'deny', { clientId: 'c', tenant: 'default' });
    expect(anonymous.mayPublish('users//x')).toBe(false);
    expect(anonymous.mayPublish('users/%u/x')).toBe(false);
  });

  test.each(['+', '#', 'a/b', ''])('an allow rule is skipped when the substituted client id is %j (it would widen the pattern)', (clientId) => {
    const acl = compileAcl([{ effect: 'allow', action: 'all', topic: 'devices/%c/#' }], 'deny', { ...alice, clientId });
    expect(acl.mayPublish('devices/victim/x')).toBe(false);
    expect(acl.maySubscribe(`devices/${clientId}/#`)).toBe(false);
  });

  test('a deny rule is substituted literally, so an odd client id can only be denied more', () => {
    const acl = compileAcl([{ effect: 'deny', action: 'publish', topic: 'devices/%c/#' }], 'allow', { ...alice, clientId: '+' });
    expect(acl.mayPublish('devices/anyone/x')).toBe(false);
    expect(acl.mayPublish('other/x')).toBe(true);
  });

  test('rules restricted to users or tenants apply only to them', () => {
    const rules: AclRule[] = [
      { effect: 'allow', action: 'all', topic: 'ops/#', users: ['bob'] },
      { effect: 'allow', action: 'all', topic: 'billing/#', tenants: ['acme'] },
    ];
    const forAlice = compileAcl(rules, 'deny', alice);
    expect(forAlice.mayPublish('ops/x')).toBe(false);
    expect(forAlice.mayPublish('billing/x')).toBe(true);
    const forBob = compileAcl(rules, 'deny', { username: 'bob', clientId: 'b', tenant: 'globex' });
    expect(forBob.mayPublish('ops/x')).toBe(true);
    expect(forBob.mayPublish('billing/x')).toBe(false);
    expect(compileAcl(rules, 'deny', { clientId: 'anon', tenant: 'acme' }).mayPublish('ops/x')).toBe(false);
  });
});
