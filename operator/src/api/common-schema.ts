/** Schema pieces shared by both resources: conditions, pod settings and Kubernetes-native sub-objects. */
import {
  array,
  boolean,
  cel,
  DNS_SUBDOMAIN,
  integer,
  intOrString,
  object,
  opaqueObject,
  QUANTITY,
  string,
  stringMap,
  type JSONSchemaProps,
} from './openapi.js';

export const conditionsSchema = (types: readonly string[]): JSONSchemaProps =>
  array(
    `Conditions following the Kubernetes API conventions; types: ${types.join(', ')}.`,
    object(
      'One condition.',
      {
        type: string('Condition type.', { maxLength: 316 }),
        status: string('True, False or Unknown.', { enum: ['True', 'False', 'Unknown'] }),
        reason: string('CamelCase reason for the last transition.', { maxLength: 1024 }),
        message: string('Human-readable details.', { maxLength: 32768 }),
        lastTransitionTime: string('When the status last changed.', { format: 'date-time' }),
        observedGeneration: integer('metadata.generation the condition was computed from.', { minimum: 0, format: 'int64' }),
      },
      { required: ['type', 'status', 'reason', 'message', 'lastTransitionTime'] },
    ),
    { 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'], maxItems: 16 },
  );

export const secretName = (description: string): JSONSchemaProps =>
  string(description, { pattern: DNS_SUBDOMAIN, maxLength: 253 });

export const secretKeyRef = (description: string, defaultKey: string): JSONSchemaProps =>
  object(
    description,
    {
      name: secretName('Name of the Secret (same namespace).'),
      key: string(`Key inside the Secret (default ${defaultKey}).`, {
        pattern: '^[-._a-zA-Z0-9]+$',
        maxLength: 253,
        default: defaultKey,
      }),
    },
    { required: ['name'] },
  );

const quantityMap = (description: string): JSONSchemaProps => ({
  type: 'object',
  description,
  additionalProperties: intOrString('A quantity.', { pattern: QUANTITY }),
});

export const resourcesSchema = (description: string): JSONSchemaProps =>
  object(description, {
    limits: quantityMap('Maximum compute resources.'),
    requests: quantityMap('Minimum compute resources.'),
  });

export const podMetadataSchema = object('Labels and annotations added to the pods.', {
  labels: stringMap('Extra pod labels (the operator\'s own labels win on conflict).'),
  annotations: stringMap('Extra pod annotations.'),
});

export const disruptionBudgetSchema = object(
  'PodDisruptionBudget of this role. Neither minAvailable nor maxUnavailable means maxUnavailable: 1.',
  {
    enabled: boolean('Create the PodDisruptionBudget.', true),
    minAvailable: intOrString('Pods that must stay available (number or percentage).'),
    maxUnavailable: intOrString('Pods that may be unavailable at once (number or percentage).'),
  },
  {
    default: {},
    'x-kubernetes-validations': [cel('!(has(self.minAvailable) && has(self.maxUnavailable))', 'set minAvailable or maxUnavailable, not both')],
  },
);

const tolerationSchema = object('A toleration (core/v1 Toleration).', {
  key: string('Taint key.'),
  operator: string('Exists or Equal.', { enum: ['Exists', 'Equal'] }),
  value: string('Taint value.'),
  effect: string('NoSchedule, PreferNoSchedule or NoExecute.', { enum: ['NoSchedule', 'PreferNoSchedule', 'NoExecute'] }),
  tolerationSeconds: integer('How long a NoExecute taint is tolerated.', { format: 'int64' }),
});

const topologySpreadSchema: JSONSchemaProps = {
  ...object(
    'A topology spread constraint (core/v1 TopologySpreadConstraint); newer fields are passed through.',
    {
      maxSkew: integer('Largest allowed difference of matching pods between domains.', { minimum: 1, format: 'int32' }),
      topologyKey: string('Node label that defines a domain.', { minLength: 1 }),
      whenUnsatisfiable: string('DoNotSchedule or ScheduleAnyway.', { enum: ['DoNotSchedule', 'ScheduleAnyway'] }),
      labelSelector: opaqueObject('Pods counted (default: this role\'s pods).'),
    },
    { required: ['maxSkew', 'topologyKey', 'whenUnsatisfiable'] },
  ),
  'x-kubernetes-preserve-unknown-fields': true,
};

/** Pod settings common to cores and replicants. */
export const podSettingsProperties = (role: string, replicas: { minimum: number; default: number }): Record<string, JSONSchemaProps> => ({
  replicas: integer(`Number of ${role} nodes.`, { minimum: replicas.minimum, maximum: 1000, default: replicas.default, format: 'int32' }),
  resources: resourcesSchema(`Compute resources of the ${role} broker container.`),
  affinity: opaqueObject('Pod affinity (core/v1 Affinity).'),
  tolerations: array('Pod tolerations.', tolerationSchema, { maxItems: 64 }),
  nodeSelector: stringMap('Node labels the pods must match.'),
  topologySpreadConstraints: array('How pods spread over zones or nodes.', topologySpreadSchema, { maxItems: 16 }),
  podMetadata: podMetadataSchema,
  priorityClassName: string('PriorityClass of the pods.', { maxLength: 253 }),
  disruptionBudget: disruptionBudgetSchema,
});
