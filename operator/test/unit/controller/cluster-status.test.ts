import type { V1Deployment, V1Pod, V1Service, V1StatefulSet } from '@kubernetes/client-node';
import { withRegionalClusterDefaults } from '../../../src/api/defaults.js';
import { MAX_STATUS_NODES, type RegionalCluster } from '../../../src/api/types.js';
import { clusterStatus, nodeStatuses, type ClusterObservation, type ReconcileOutcome } from '../../../src/controller/cluster-status.js';
import { minimalRegionalCluster } from '../../fixtures/resources.js';

const NOW = '2025-06-01T00:00:00.000Z';
const applied: ReconcileOutcome = { kind: 'applied', objects: 11, configHash: 'f'.repeat(64), replicantSelector: 'sel' };

function cluster(): RegionalCluster {
  const rc = withRegionalClusterDefaults(minimalRegionalCluster('us-east'));
  rc.spec.core = { ...rc.spec.core, replicas: 2 };
  rc.spec.replicant = { ...rc.spec.replicant, replicas: 1 };
  return rc;
}

function sts(status: V1StatefulSet['status'], generation = 1): V1StatefulSet {
  return { metadata: { name: 'us-east-core', generation }, status } as V1StatefulSet;
}

function deployment(status: V1Deployment['status'], generation = 1): V1Deployment {
  return { metadata: { name: 'us-east-replicant', generation }, status } as V1Deployment;
}

const observe = (extra: Partial<ClusterObservation>): ClusterObservation => ({ cluster: cluster(), outcome: applied, pods: [], now: NOW, ...extra });
const summary = (obs: ClusterObservation) => clusterStatus(obs).conditions?.map((c) => `${c.type}=${c.status}/${c.reason}`);

describe('RegionalCluster status', () => {
  it('says honestly that no workload controller has reported yet', () => {
    expect(summary(observe({ statefulSet: sts(undefined), deployment: deployment(undefined) }))).toEqual([
      'Ready=False/AwaitingController',
      'Available=False/NoCoreNodesReady',
      'CoreNodesProgressing=True/AwaitingController',
      'ReplicantNodesProgressing=True/AwaitingController',
      'ConfigApplied=True/Applied',
    ]);
  });

  it('is Ready when every node is ready on the current revision', () => {
    const status = clusterStatus(observe({
      statefulSet: sts({ observedGeneration: 1, replicas: 2, readyReplicas: 2, updatedReplicas: 2, currentRevision: 'r1', updateRevision: 'r1' }),
      deployment: deployment({ observedGeneration: 1, replicas: 1, readyReplicas: 1, updatedReplicas: 1 }),
    }));
    expect(status.conditions?.map((c) => `${c.type}=${c.status}/${c.reason}`)).toEqual([
      'Ready=True/AllNodesReady',
      'Available=True/NodesAvailable',
      'CoreNodesProgressing=False/RolloutComplete',
      'ReplicantNodesProgressing=False/RolloutComplete',
      'ConfigApplied=True/Applied',
    ]);
    expect(status).toMatchObject({ coreReplicas: 2, readyCoreReplicas: 2, replicantReplicas: 1, readyReplicantReplicas: 1, currentRevision: 'r1', updateRevision: 'r1', replicantSelector: 'sel', configHash: 'f'.repeat(64) });
  });

  it('reports a rolling update of the core nodes as progressing and not ready, while available', () => {
    const obs = observe({
      statefulSet: sts({ observedGeneration: 2, replicas: 2, readyReplicas: 2, updatedReplicas: 1, currentRevision: 'r1', updateRevision: 'r2' }, 2),
      deployment: deployment({ observedGeneration: 1, replicas: 1, readyReplicas: 1, updatedReplicas: 1 }),
    });
    expect(summary(obs)?.slice(0, 3)).toEqual(['Ready=False/NodesNotReady', 'Available=True/NodesAvailable', 'CoreNodesProgressing=True/RollingUpdate']);
    expect(clusterStatus(obs).conditions?.[2]?.message).toBe('1/2 core nodes on revision r2');
  });

  it('marks an invalid spec on ConfigApplied and Ready, keeping what was accepted before', () => {
    const rc = cluster();
    rc.status = { clusterName: 'us-east', region: 'us-east', configHash: 'old', replicantSelector: 'old-sel' };
    rc.spec.region = 'elsewhere';
    const status = clusterStatus(observe({ cluster: rc, outcome: { kind: 'invalid', issues: [{ path: 'spec.region', message: 'region is immutable', reason: 'InvalidSpec' }] } }));
    expect(status.conditions?.[0]).toMatchObject({ type: 'Ready', status: 'False', reason: 'InvalidSpec', message: 'spec.region: region is immutable' });
    expect(status.conditions?.[4]).toMatchObject({ type: 'ConfigApplied', status: 'False', reason: 'InvalidSpec' });
    expect(status).toMatchObject({ region: 'us-east', configHash: 'old', replicantSelector: 'old-sel' });
  });

  it('lists listener addresses, with a LoadBalancer\'s external ones', () => {
    const service = { spec: { type: 'LoadBalancer' }, status: { loadBalancer: { ingress: [{ ip: '1.2.3.4' }, { hostname: 'lb.example.net' }] } } } as V1Service;
    expect(clusterStatus(observe({ clientService: service })).listeners).toEqual([
      { name: 'mqtt', protocol: 'MQTT', port: 1883, address: 'us-east.meridian.svc:1883', externalAddresses: ['1.2.3.4:1883', 'lb.example.net:1883'] },
    ]);
  });

  it('lists at most MAX_STATUS_NODES nodes, cores first, skipping pods that are not nodes', () => {
    const pod = (name: string, role: string, ready: boolean): V1Pod => ({
      metadata: { name, labels: { 'app.kubernetes.io/component': role }, annotations: { 'meridian.dev/config-hash': 'h' } },
      status: { conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
    }) as V1Pod;
    const pods = [pod('r-1', 'replicant', true), pod('c-1', 'core', false), pod('x', 'other', true), pod('c-0', 'core', true)];
    expect(nodeStatuses(pods)).toEqual([
      { name: 'c-0', role: 'core', ready: true, configHash: 'h' },
      { name: 'c-1', role: 'core', ready: false, configHash: 'h' },
      { name: 'r-1', role: 'replicant', ready: true, configHash: 'h' },
    ]);
    const many = Array.from({ length: MAX_STATUS_NODES + 7 }, (_, i) => pod(`r-${String(i).padStart(3, '0')}`, 'replicant', true));
    expect(nodeStatuses(many)).toHaveLength(MAX_STATUS_NODES);
  });
});
