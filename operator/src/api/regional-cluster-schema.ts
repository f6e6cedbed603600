/** OpenAPI v3 structural schema of RegionalCluster, with the CEL rules that newer API servers enforce. */
import { brokerConfigSchema } from '../../../broker/src/config/schema.js';
import { conditionsSchema, podSettingsProperties, resourcesSchema, secretKeyRef, secretName } from './common-schema.js';
import {
  array,
  boolean,
  cel,
  CLUSTER_NAME,
  integer,
  intOrString,
  object,
  QUANTITY,
  string,
  stringMap,
  type JSONSchemaProps,
} from './openapi.js';
import { MAX_STATUS_NODES, REGIONAL_CLUSTER_CONDITIONS } from './types.js';

/** Longest RegionalCluster name: `<name>-replicant-<hash>-<id>` and StatefulSet pod labels must stay within 63. */
export const MAX_REGIONAL_CLUSTER_NAME = 40;
export const MAX_LISTENERS = 8;

/** A Service port name (IANA_SVC_NAME): a DNS label that starts with a letter. */
const PORT_NAME = '^[a-z]([-a-z0-9]*[a-z0-9])?$';

const port = (description: string): JSONSchemaProps => integer(description, { minimum: 1, maximum: 65535, format: 'int32' });

const listenerSchema = object(
  'One client listener of every node.',
  {
    name: string('Listener name (names the Service port: lower case, starts with a letter).', { pattern: PORT_NAME, maxLength: 15 }),
    protocol: string('MQTT (TCP), MQTTS (TLS), WS (WebSocket) or WSS (WebSocket over TLS).', { enum: ['MQTT', 'MQTTS', 'WS', 'WSS'] }),
    port: port('Container and Service port.'),
    path: string('WebSocket path (WS and WSS only; default /mqtt).', { pattern: '^/', maxLength: 256 }),
    tls: object(
      'Serving certificate (MQTTS and WSS only).',
      {
        secretName: secretName('A kubernetes.io/tls Secret: tls.crt, tls.key, and ca.crt when clients present certificates.'),
        clientAuth: string('None, Request (ask for a client certificate) or Require (refuse clients without one).', {
          enum: ['None', 'Request', 'Require'],
          default: 'None',
        }),
        useCertCommonNameAsUsername: boolean('A verified client certificate\'s CN becomes the username.', false),
      },
      { required: ['secretName'] },
    ),
  },
  {
    required: ['name', 'protocol', 'port'],
    'x-kubernetes-validations': [
      cel("self.protocol == 'MQTT' || self.protocol == 'WS' || has(self.tls)", 'MQTTS and WSS listeners need tls'),
      cel("!has(self.tls) || self.protocol == 'MQTTS' || self.protocol == 'WSS'", 'tls applies to MQTTS and WSS listeners only'),
      cel("!has(self.path) || self.protocol == 'WS' || self.protocol == 'WSS'", 'path applies to WS and WSS listeners only'),
    ],
  },
);

const serviceProperties = (defaultType: string): Record<string, JSONSchemaProps> => ({
  type: string('Service type.', { enum: ['ClusterIP', 'NodePort', 'LoadBalancer'], default: defaultType }),
  annotations: stringMap('Service annotations (e.g. for a cloud load balancer).'),
  loadBalancerSourceRanges: array('CIDRs allowed to reach a LoadBalancer.', string('A CIDR.', { maxLength: 64 }), { maxItems: 64 }),
});

const aclRuleSchema = object(
  'One ACL rule (first match wins; see the broker configuration reference).',
  {
    effect: string('Allow or Deny.', { enum: ['Allow', 'Deny'] }),
    action: string('Publish, Subscribe or All.', { enum: ['Publish', 'Subscribe', 'All'] }),
    topic: string('MQTT filter as the client sees topics; %u = username, %c = client id.', { minLength: 1, maxLength: 1024 }),
    users: array('Usernames the rule applies to (absent: everybody).', string('A username.', { minLength: 1 }), { maxItems: 256 }),
    tenants: array('Tenants the rule applies to (absent: every tenant).', string('A tenant.', { minLength: 1 }), { maxItems: 256 }),
  },
  { required: ['effect', 'action', 'topic'] },
);

const tenantSchema = object(
  'A tenant: its clients live under a topic mountpoint they never see.',
  {
    name: string('Tenant name.', { pattern: '^[A-Za-z0-9_.-]+$', maxLength: 63 }),
    mountpoint: string('Internal topic prefix (default <name>/).', { maxLength: 256 }),
  },
  { required: ['name'] },
);

const authSchema = object(
  'Client authentication and authorisation.',
  {
    allowAnonymous: boolean('Accept clients without credentials.', false),
    anonymousTenant: string('Tenant of anonymous clients (default: default).', { maxLength: 63 }),
    usersSecret: secretKeyRef('Secret with the broker users file (users: username, passwordHash, tenant, superuser).', 'users.yaml'),
    tenants: array('Tenants.', tenantSchema, {
      maxItems: 64,
      'x-kubernetes-validations': [cel('self.all(t, self.exists_one(u, u.name == t.name))', 'tenant names must be unique')],
    }),
    acl: array('ACL rules, evaluated in order.', aclRuleSchema, { maxItems: 1024 }),
    aclDefault: string('Effect when no rule matches.', { enum: ['Allow', 'Deny'], default: 'Allow' }),
  },
  {
    default: {},
    'x-kubernetes-validations': [
      cel('(has(self.allowAnonymous) && self.allowAnonymous) || has(self.usersSecret)', 'usersSecret is required unless allowAnonymous is true'),
    ],
  },
);

interface BrokerFragment {
  readonly type?: string;
  readonly enum?: readonly string[];
  readonly minimum?: number;
  readonly maximum?: number;
}

/** A broker setting's bounds, taken from the broker's own schema so the two cannot drift (its defaults stay the broker's). */
function brokerSetting(section: 'limits' | 'store' | 'mqtt', key: string): JSONSchemaProps {
  const properties: Readonly<Record<string, BrokerFragment>> = brokerConfigSchema.properties[section].properties;
  const fragment = properties[key];
  if (!fragment) throw new Error(`broker config schema has no ${section}.${key}`);
  const description = `Broker setting ${section}.${key}.`;
  if (fragment.enum) return string(description, { enum: [...fragment.enum] });
  return integer(description, {
    ...(fragment.minimum === undefined ? {} : { minimum: fragment.minimum }),
    ...(fragment.maximum === undefined ? {} : { maximum: fragment.maximum }),
    format: 'int64',
  });
}

const brokerSection = (section: 'limits' | 'store' | 'mqtt'): JSONSchemaProps =>
  object(
    `Overrides of the broker's ${section} section.`,
    Object.fromEntries(Object.keys(brokerConfigSchema.properties[section].properties).map((key) => [key, brokerSetting(section, key)])),
  );

const configSchema = object('Broker settings written into every node\'s configuration file (startup-only: a change rolls the pods).', {
  logLevel: string('Log level.', { enum: [...brokerConfigSchema.properties.log.properties.level.enum] }),
  limits: brokerSection('limits'),
  store: brokerSection('store'),
  mqtt: brokerSection('mqtt'),
});

const specSchema = object(
  'Desired state of a region\'s Meridian cluster.',
  {
    clusterName: string('Cluster name the nodes share and remote regions link to (immutable).', {
      pattern: CLUSTER_NAME,
      maxLength: 63,
      'x-kubernetes-validations': [cel('self == oldSelf', 'clusterName is immutable')],
    }),
    region: string('Region label, e.g. us-east (immutable).', {
      minLength: 1,
      maxLength: 63,
      'x-kubernetes-validations': [cel('self == oldSelf', 'region is immutable')],
    }),
    image: string('Meridian container image.', { minLength: 1, maxLength: 512 }),
    imagePullPolicy: string('Image pull policy.', { enum: ['Always', 'IfNotPresent', 'Never'], default: 'IfNotPresent' }),
    imagePullSecrets: array(
      'Secrets for pulling the image.',
      object('A Secret reference.', { name: secretName('Secret name.') }, { required: ['name'] }),
      { maxItems: 16 },
    ),
    core: object('Core nodes: a StatefulSet holding the cluster\'s shared state, with one volume each.', {
      ...podSettingsProperties('core', { minimum: 1, default: 3 }),
      persistence: object('Volume of each core node.', {
        storageClassName: string('StorageClass (default: the cluster default).', { maxLength: 253 }),
        size: string('Volume size.', { pattern: QUANTITY, default: '10Gi' }),
      }, { default: {} }),
    }, { default: {} }),
    replicant: object(
      'Replicant nodes: stateless-store nodes serving clients; their count is the scale subresource (for an HPA).',
      podSettingsProperties('replicant', { minimum: 0, default: 0 }),
      { default: {} },
    ),
    linkAgent: object('The link-agent sidecar beside every core node (runs the ClusterLinks of this cluster).', {
      enabled: boolean('Run the sidecar.', true),
      resources: resourcesSchema('Compute resources of the link-agent container.'),
    }, { default: {} }),
    listeners: array('Client listeners.', listenerSchema, {
      minItems: 1,
      maxItems: MAX_LISTENERS,
      default: [{ name: 'mqtt', protocol: 'MQTT', port: 1883 }],
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['name'],
      'x-kubernetes-validations': [
        cel('self.all(l, self.exists_one(m, m.name == l.name))', 'listener names must be unique'),
        cel('self.all(l, self.exists_one(m, m.port == l.port))', 'listener ports must be unique'),
      ],
    }),
    service: object('The client Service.', serviceProperties('ClusterIP'), { default: {} }),
    linkService: object(
      'The Service that remote regions\' link agents connect to.',
      {
        ...serviceProperties('ClusterIP'),
        listener: string('Listener to expose (default: the first).', { pattern: PORT_NAME, maxLength: 15 }),
        nodePort: integer('Fixed node port (NodePort or LoadBalancer).', { minimum: 1, maximum: 65535, format: 'int32' }),
      },
      {
        default: {},
        'x-kubernetes-validations': [
          cel("!has(self.nodePort) || (has(self.type) && self.type != 'ClusterIP')", 'nodePort needs type NodePort or LoadBalancer'),
        ],
      },
    ),
    auth: authSchema,
    config: configSchema,
    updateStrategy: object('How changes roll out.', {
      type: string('Core StatefulSet strategy.', { enum: ['RollingUpdate', 'OnDelete'], default: 'RollingUpdate' }),
      partition: integer('Core ordinals below this keep the old revision.', { minimum: 0, format: 'int32' }),
      replicantMaxSurge: intOrString('Extra replicants during a roll.'),
      replicantMaxUnavailable: intOrString('Replicants that may be down during a roll.'),
    }, { default: {} }),
  },
  {
    required: ['clusterName', 'region', 'image'],
    'x-kubernetes-validations': [
      cel(
        '!has(self.linkService) || !has(self.linkService.listener) || !has(self.listeners) || self.listeners.exists(l, l.name == self.linkService.listener)',
        'linkService.listener must name a listener',
      ),
    ],
  },
);

const statusSchema = object('Observed state, written by the operator.', {
  observedGeneration: integer('metadata.generation last acted upon.', { format: 'int64' }),
  conditions: conditionsSchema(REGIONAL_CLUSTER_CONDITIONS),
  clusterName: string('clusterName as first accepted.'),
  region: string('region as first accepted.'),
  coreReplicas: integer('Core pods that exist.', { format: 'int32' }),
  readyCoreReplicas: integer('Ready core pods.', { format: 'int32' }),
  replicantReplicas: integer('Replicant pods that exist (scale subresource).', { format: 'int32' }),
  readyReplicantReplicas: integer('Ready replicant pods.', { format: 'int32' }),
  replicantSelector: string('Label selector of the replicant pods (scale subresource).'),
  currentRevision: string('Core StatefulSet revision that most pods run.'),
  updateRevision: string('Core StatefulSet revision being rolled out.'),
  configHash: string('Hash of the startup configuration the pods should run.'),
  listeners: array(
    'Where clients connect.',
    object(
      'One listener.',
      {
        name: string('Listener name.'),
        protocol: string('Protocol.', { enum: ['MQTT', 'MQTTS', 'WS', 'WSS'] }),
        port: port('Port.'),
        address: string('In-cluster address.'),
        externalAddresses: array('External addresses, when the Service has them.', string('host:port.'), { maxItems: 16 }),
      },
      { required: ['name', 'protocol', 'port', 'address'] },
    ),
    { maxItems: MAX_LISTENERS },
  ),
  nodes: array(
    `Broker nodes (at most ${MAX_STATUS_NODES}).`,
    object(
      'One node.',
      {
        name: string('Pod (node) name.'),
        role: string('core or replicant.', { enum: ['core', 'replicant'] }),
        ready: boolean('Pod is ready.'),
        configHash: string('Config hash the pod runs with.'),
      },
      { required: ['name', 'role', 'ready'] },
    ),
    { maxItems: MAX_STATUS_NODES },
  ),
});

export const regionalClusterSchema: JSONSchemaProps = object(
  'A region\'s Meridian MQTT cluster: core and replicant nodes, listeners, authentication, and the link agents.',
  {
    apiVersion: string('API version.'),
    kind: string('Kind.'),
    metadata: { type: 'object' },
    spec: specSchema,
    status: statusSchema,
  },
  {
    required: ['spec'],
    'x-kubernetes-validations': [
      cel(
        `size(self.metadata.name) <= ${MAX_REGIONAL_CLUSTER_NAME}`,
        `metadata.name must be at most ${MAX_REGIONAL_CLUSTER_NAME} characters (the names of its objects derive from it)`,
      ),
    ],
  },
);
