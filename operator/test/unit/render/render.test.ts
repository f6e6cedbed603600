import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { V1ConfigMap, V1Deployment, V1PodDisruptionBudget, V1Secret, V1StatefulSet } from '@kubernetes/client-node';
import { load } from 'js-yaml';
import { loadBrokerConfig } from '../../../../broker/src/config/load.js';
import { CONFIG_HASH_ANNOTATION, renderRegionalCluster, toYaml, type RenderInput, type RenderResult } from '../../../src/render/index.js';
import { fullInput, minimalInput } from './render-fixtures.js';

const GOLDEN_DIR = path.join(import.meta.dirname, 'golden');
const UPDATE = process.env.UPDATE_GOLDEN === '1';

function goldenText(result: RenderResult): string {
  const summary = { configHash: result.configHash, replicantSelector: result.replicantSelector, links: result.links };
  return [summary, ...result.objects].map(toYaml).join('---\n');
}

function find<T>(result: RenderResult, kind: string, nameSuffix: string): T {
  const found = result.objects.find((o) => o.kind === kind && o.metadata?.name?.endsWith(nameSuffix));
  if (!found) throw new Error(`no ${kind} *${nameSuffix} in ${result.objects.map((o) => `${o.kind}/${o.metadata?.name}`).join(', ')}`);
  return found as T;
}

describe('golden files (UPDATE_GOLDEN=1 rewrites them)', () => {
  it.each([
    ['minimal', minimalInput],
    ['full', fullInput],
  ])('%s', (name, input) => {
    const text = goldenText(renderRegionalCluster(input()));
    const file = path.join(GOLDEN_DIR, `${name}.yaml`);
    if (UPDATE) writeFileSync(file, text);
    if (!existsSync(file)) throw new Error(`missing golden file ${file}: run with UPDATE_GOLDEN=1`);
    expect(text).toBe(readFileSync(file, 'utf8'));
  });
});

describe('determinism', () => {
  it('gives byte-identical output for equal inputs, whatever the order of the links', () => {
    const a = fullInput();
    const b = fullInput();
    b.links = [...b.links].reverse();
    expect(goldenText(renderRegionalCluster(b))).toBe(goldenText(renderRegionalCluster(a)));
  });
});

describe('node configuration', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'meridian-render-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each([
    ['minimal', minimalInput],
    ['full', fullInput],
  ])('%s is accepted by the broker\'s own configuration loader', (name, input) => {
    const configMap = find<V1ConfigMap>(renderRegionalCluster(input()), 'ConfigMap', '-config');
    const file = path.join(dir, `${name}.yaml`);
    writeFileSync(file, configMap.data!['config.yaml']!);
    const config = loadBrokerConfig({ file, env: {} });
    expect(config.node.clusterName).toBe(input().cluster.spec.clusterName);
    expect(config.listeners.map((l) => `${l.protocol}:${l.host}:${l.port}`)).toEqual(
      (input().cluster.spec.listeners ?? [{ protocol: 'MQTT', port: 1883 }]).map((l) => `${l.protocol.toLowerCase()}:0.0.0.0:${l.port}`),
    );
  });
});

describe('what restarts pods and what does not', () => {
  const podTemplates = (result: RenderResult): string =>
    JSON.stringify([find<V1StatefulSet>(result, 'StatefulSet', '-core').spec?.template, find<V1Deployment>(result, 'Deployment', '-replicant').spec?.template]);
  const linksConfig = (result: RenderResult): string => find<V1ConfigMap>(result, 'ConfigMap', '-links').data!['links.yaml']!;

  it('a link change updates only the links ConfigMap and credentials, never a pod template', () => {
    const before = renderRegionalCluster(fullInput());
    const changed = fullInput();
    changed.links[2]!.spec.topics = ['acme/#'];
    changed.secrets['emea-link'] = { password: Buffer.from('rotated').toString('base64') };
    const after = renderRegionalCluster(changed);
    expect(podTemplates(after)).toBe(podTemplates(before));
    expect(after.configHash).toBe(before.configHash);
    expect(linksConfig(after)).not.toBe(linksConfig(before));
    expect(find<V1Secret>(after, 'Secret', '-link-credentials').data).not.toEqual(find<V1Secret>(before, 'Secret', '-link-credentials').data);
  });

  it.each<[string, (input: RenderInput) => void]>([
    ['a startup setting', (i) => { i.cluster.spec.config!.logLevel = 'warn'; }],
    ['a listener certificate', (i) => { i.secrets['broker-tls']!['tls.crt'] = 'bmV3'; }],
    ['the cluster secret', (i) => { i.clusterSecret = 'other'; }],
  ])('a change of %s rolls the pods through the config hash', (_what, edit) => {
    const before = renderRegionalCluster(fullInput());
    const input = fullInput();
    edit(input);
    const after = renderRegionalCluster(input);
    expect(after.configHash).not.toBe(before.configHash);
    const sts = find<V1StatefulSet>(after, 'StatefulSet', '-core');
    expect(sts.spec?.template.metadata?.annotations?.[CONFIG_HASH_ANNOTATION]).toBe(after.configHash);
  });

  it('the users Secret does not roll the pods: the broker watches its mount and reloads it', () => {
    const input = fullInput();
    input.secrets['broker-users'] = { 'users.yaml': 'Y2hhbmdlZA==' };
    expect(renderRegionalCluster(input).configHash).toBe(renderRegionalCluster(fullInput()).configHash);
  });

  it('an unrelated Secret in the input changes nothing', () => {
    const input = fullInput();
    input.secrets.unrelated = { x: 'eA==' };
    expect(goldenText(renderRegionalCluster(input))).toBe(goldenText(renderRegionalCluster(fullInput())));
  });
});

describe('links', () => {
  it('renders the links of this cluster only, skips broken ones with a reason, and keeps disabled ones', () => {
    const result = renderRegionalCluster(fullInput());
    expect(result.links.included).toEqual(['to-emea', 'to-us-east']);
    expect(result.links.skipped).toEqual([{ link: 'to-apac', reason: 'SecretNotFound', message: 'Secret missing not found' }]);
    const file = load(find<V1ConfigMap>(result, 'ConfigMap', '-links').data!['links.yaml']!) as { links: { name: string; enabled: boolean }[] };
    expect(file.links.map((l) => [l.name, l.enabled])).toEqual([['emea', true], ['us-east', false]]);
  });

  it('skips a second link to the same remote, invalid topics, and links being deleted', () => {
    const input = fullInput();
    const duplicate = structuredClone(input.links[2]!);
    duplicate.metadata.name = 'to-emea-again';
    const invalid = structuredClone(input.links[1]!);
    invalid.metadata.name = 'bad-topics';
    invalid.spec.remote.clusterName = 'latam';
    invalid.spec.topics = ['a/#', 'a/b'];
    const deleted = structuredClone(input.links[0]!);
    deleted.metadata.deletionTimestamp = '2025-01-01T00:00:00Z';
    input.links = [input.links[2]!, duplicate, invalid, deleted];
    const result = renderRegionalCluster(input);
    expect(result.links.included).toEqual(['to-emea']);
    expect(result.links.skipped.map((s) => [s.link, s.reason])).toEqual([
      ['bad-topics', 'InvalidTopics'],
      ['to-emea-again', 'DuplicateRemote'],
    ]);
  });
});

describe('objects', () => {
  it('all carry an owner reference to the RegionalCluster and its namespace', () => {
    const result = renderRegionalCluster(fullInput());
    for (const o of result.objects) {
      expect(o.metadata?.namespace).toBe('meridian');
      expect(o.metadata?.ownerReferences).toEqual([
        { apiVersion: 'meridian.dev/v1alpha1', kind: 'RegionalCluster', name: 'us-west', uid: '7d3c9a52-1111-4c1e-9f00-000000000002', controller: true, blockOwnerDeletion: true },
      ]);
    }
  });

  it('refuse a RegionalCluster without uid (owner references need it)', () => {
    const input = minimalInput();
    delete input.cluster.metadata.uid;
    expect(() => renderRegionalCluster(input)).toThrow('RegionalCluster meridian/us-east has no metadata.uid');
  });

  it('use policy/v1beta1 disruption budgets when asked (API servers before 1.21)', () => {
    const result = renderRegionalCluster({ ...minimalInput(), options: { pdbApiVersion: 'policy/v1beta1' } });
    const pdbs = result.objects.filter((o): o is V1PodDisruptionBudget => o.kind === 'PodDisruptionBudget');
    expect(pdbs.map((p) => [p.apiVersion, p.metadata?.name, p.spec?.maxUnavailable])).toEqual([
      ['policy/v1beta1', 'us-east-core', 1],
      ['policy/v1beta1', 'us-east-replicant', 1],
    ]);
  });

  it('give the link-agent sidecar to cores only, and drop it when disabled', () => {
    const containers = (r: RenderResult, kind: string, suffix: string) =>
      find<V1StatefulSet>(r, kind, suffix).spec?.template.spec?.containers.map((c) => c.name);
    const result = renderRegionalCluster(minimalInput());
    expect(containers(result, 'StatefulSet', '-core')).toEqual(['broker', 'link-agent']);
    expect(containers(result, 'Deployment', '-replicant')).toEqual(['broker']);
    const input = minimalInput();
    input.cluster.spec.linkAgent = { enabled: false };
    expect(containers(renderRegionalCluster(input), 'StatefulSet', '-core')).toEqual(['broker']);
  });
});
