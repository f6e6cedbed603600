/** The two CustomResourceDefinitions, built from the schemas; `generate-crds.ts` writes them to crds/. */
import { dump } from 'js-yaml';
import { clusterLinkSchema } from './cluster-link-schema.js';
import type { JSONSchemaProps } from './openapi.js';
import { regionalClusterSchema } from './regional-cluster-schema.js';
import { GROUP, VERSION } from './types.js';

export interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  jsonPath: string;
  description?: string;
  priority?: number;
}

export interface CustomResourceDefinition {
  apiVersion: 'apiextensions.k8s.io/v1';
  kind: 'CustomResourceDefinition';
  metadata: { name: string; labels: Record<string, string> };
  spec: {
    group: string;
    names: { kind: string; listKind: string; plural: string; singular: string; shortNames: string[]; categories: string[] };
    scope: 'Namespaced';
    versions: {
      name: string;
      served: boolean;
      storage: boolean;
      schema: { openAPIV3Schema: JSONSchemaProps };
      subresources: { status: Record<string, never>; scale?: { specReplicasPath: string; statusReplicasPath: string; labelSelectorPath: string } };
      additionalPrinterColumns: PrinterColumn[];
    }[];
  };
}

const conditionColumn = (type: string): PrinterColumn => ({
  name: type,
  type: 'string',
  jsonPath: `.status.conditions[?(@.type=="${type}")].status`,
});
const age: PrinterColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };
const labels = { 'app.kubernetes.io/name': 'meridian', 'app.kubernetes.io/part-of': 'meridian' };

export function regionalClusterCrd(): CustomResourceDefinition {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `regionalclusters.${GROUP}`, labels },
    spec: {
      group: GROUP,
      names: {
        kind: 'RegionalCluster',
        listKind: 'RegionalClusterList',
        plural: 'regionalclusters',
        singular: 'regionalcluster',
        shortNames: ['mrc', 'regcluster'],
        categories: ['meridian'],
      },
      scope: 'Namespaced',
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          schema: { openAPIV3Schema: regionalClusterSchema },
          subresources: {
            status: {},
            scale: {
              specReplicasPath: '.spec.replicant.replicas',
              statusReplicasPath: '.status.replicantReplicas',
              labelSelectorPath: '.status.replicantSelector',
            },
          },
          additionalPrinterColumns: [
            { name: 'Region', type: 'string', jsonPath: '.spec.region' },
            { name: 'Cores', type: 'integer', jsonPath: '.status.readyCoreReplicas', description: 'Ready core nodes' },
            { name: 'Replicants', type: 'integer', jsonPath: '.status.readyReplicantReplicas', description: 'Ready replicant nodes' },
            conditionColumn('Ready'),
            age,
            { name: 'Cluster', type: 'string', jsonPath: '.spec.clusterName', priority: 1 },
            { name: 'Image', type: 'string', jsonPath: '.spec.image', priority: 1 },
          ],
        },
      ],
    },
  };
}

export function clusterLinkCrd(): CustomResourceDefinition {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `clusterlinks.${GROUP}`, labels },
    spec: {
      group: GROUP,
      names: {
        kind: 'ClusterLink',
        listKind: 'ClusterLinkList',
        plural: 'clusterlinks',
        singular: 'clusterlink',
        shortNames: ['mcl', 'clink'],
        categories: ['meridian'],
      },
      scope: 'Namespaced',
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          schema: { openAPIV3Schema: clusterLinkSchema },
          subresources: { status: {} },
          additionalPrinterColumns: [
            { name: 'Cluster', type: 'string', jsonPath: '.spec.clusterRef' },
            { name: 'Remote', type: 'string', jsonPath: '.spec.remote.clusterName' },
            { name: 'Enabled', type: 'boolean', jsonPath: '.spec.enabled' },
            conditionColumn('Connected'),
            conditionColumn('Ready'),
            age,
            { name: 'Queue', type: 'integer', jsonPath: '.status.queueDepth', priority: 1 },
            { name: 'Lag', type: 'integer', jsonPath: '.status.lagSeconds', priority: 1 },
          ],
        },
      ],
    },
  };
}

export function allCrds(): CustomResourceDefinition[] {
  return [regionalClusterCrd(), clusterLinkCrd()];
}

/** The file name of a CRD under crds/. */
export function crdFileName(crd: CustomResourceDefinition): string {
  return `${crd.metadata.name}.yaml`;
}

const HEADER = '# Generated from operator/src/api by operator/src/api/generate-crds.ts: do not edit by hand.\n';

export function crdToYaml(crd: CustomResourceDefinition): string {
  return HEADER + dump(crd, { noRefs: true, lineWidth: -1, sortKeys: false });
}

/** File name → content of every CRD file, as committed under crds/. */
export function crdFiles(): Map<string, string> {
  return new Map(allCrds().map((crd) => [crdFileName(crd), crdToYaml(crd)]));
}

export interface ServerVersion {
  major: number;
  minor: number;
}

/** First minor version whose API server knows `x-kubernetes-validations` with the feature on by default (beta). */
export const CEL_MIN_MINOR = 25;

export function serverSupportsCel(version: ServerVersion): boolean {
  return version.major > 1 || (version.major === 1 && version.minor >= CEL_MIN_MINOR);
}

/**
 * The CRD as an API server of `version` should receive it: older servers do not know `x-kubernetes-validations`
 * (1.20 silently drops the field, and a strictly validating client refuses it), so it is removed there and the
 * operator's own validator reports the same rules as a condition.
 */
export function crdForServer(crd: CustomResourceDefinition, version: ServerVersion): CustomResourceDefinition {
  if (serverSupportsCel(version)) return crd;
  return {
    ...crd,
    spec: {
      ...crd.spec,
      versions: crd.spec.versions.map((v) => ({ ...v, schema: { openAPIV3Schema: withoutCel(v.schema.openAPIV3Schema) } })),
    },
  };
}

export function withoutCel(schema: JSONSchemaProps): JSONSchemaProps {
  const { 'x-kubernetes-validations': _rules, properties, additionalProperties, items, anyOf, ...rest } = schema;
  const result: JSONSchemaProps = { ...rest };
  if (properties) result.properties = Object.fromEntries(Object.entries(properties).map(([k, v]) => [k, withoutCel(v)]));
  if (additionalProperties) result.additionalProperties = withoutCel(additionalProperties);
  if (items) result.items = withoutCel(items);
  if (anyOf) result.anyOf = anyOf.map(withoutCel);
  return result;
}

/** Parses the major and minor fields of the API server's /version ("1", "20+" on some managed clusters). */
export function parseServerVersion(major: string, minor: string): ServerVersion {
  const parsed = { major: Number.parseInt(major, 10), minor: Number.parseInt(minor, 10) };
  if (Number.isNaN(parsed.major) || Number.isNaN(parsed.minor)) throw new Error(`cannot parse server version major='${major}' minor='${minor}'`);
  return parsed;
}
