/** The test control plane itself: RBAC-only identities for non-admin users, and a clean stop by PID. */
import { existsSync } from 'node:fs';
import { startApiServer } from '../harness/apiserver.js';

const OPERATOR_SA = 'system:serviceaccount:meridian-system:meridian-operator';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

it('authorises token users by RBAC only and stops etcd and kube-apiserver by PID', async () => {
  const api = await startApiServer({ users: [{ name: OPERATOR_SA, groups: ['system:serviceaccounts', 'system:serviceaccounts:meridian-system'] }] });
  const { pids, dir } = api;
  try {
    const denied = await api.kubectl(['get', 'configmaps', '-n', 'default'], { user: OPERATOR_SA });
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toContain(`User "${OPERATOR_SA}" cannot list resource "configmaps"`);

    const rbac = [
      'apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: read-cm, namespace: default}\nrules: [{apiGroups: [""], resources: [configmaps], verbs: [list]}]',
      `apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: read-cm, namespace: default}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: read-cm}\nsubjects: [{kind: ServiceAccount, name: meridian-operator, namespace: meridian-system}]`,
    ].join('\n---\n');
    const applied = await api.kubectl(['apply', '-f', '-'], { input: rbac });
    expect(applied.stderr).toBe('');
    const allowed = await api.kubectl(['get', 'configmaps', '-n', 'default', '-o', 'name'], { user: OPERATOR_SA });
    expect(allowed.code).toBe(0);
    expect([pids.etcd, pids.apiserver].every(alive)).toBe(true);
  } finally {
    await api.stop();
  }
  expect([pids.etcd, pids.apiserver].some(alive)).toBe(false);
  expect(existsSync(dir)).toBe(false);
}, 600_000);
