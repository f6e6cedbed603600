/** OpenAPI v3 structural schema of ClusterLink, with the CEL rules that newer API servers enforce. */
import { conditionsSchema, secretKeyRef, secretName } from './common-schema.js';
import { array, boolean, cel, CLUSTER_NAME, DNS_LABEL, HOST_PORT, integer, MQTT_FILTER, object, string, type JSONSchemaProps } from './openapi.js';
import { CLUSTER_LINK_CONDITIONS } from './types.js';

export const MAX_LINK_TOPICS = 256;
export const DEFAULT_QUEUE_MAX_BYTES = 1024 ** 3;

const specSchema = object(
  'A link from the referenced local RegionalCluster to a remote region\'s cluster.',
  {
    clusterRef: string('Name of the local RegionalCluster in the same namespace (immutable).', {
      pattern: DNS_LABEL,
      maxLength: 63,
      'x-kubernetes-validations': [cel('self == oldSelf', 'clusterRef is immutable')],
    }),
    remote: object(
      'The remote cluster.',
      {
        clusterName: string('The remote cluster\'s clusterName; also the link\'s name in the agents (immutable).', {
          pattern: CLUSTER_NAME,
          maxLength: 63,
          'x-kubernetes-validations': [cel('self == oldSelf', 'remote.clusterName is immutable')],
        }),
        region: string('The remote region (informational).', { maxLength: 63 }),
        servers: array('host:port of the remote cluster\'s link listener; tried in order.', string('host:port.', { pattern: HOST_PORT, maxLength: 260 }), {
          minItems: 1,
          maxItems: 16,
          'x-kubernetes-list-type': 'set',
        }),
      },
      { required: ['clusterName', 'servers'] },
    ),
    authentication: object(
      'How the link agent authenticates to the remote cluster.',
      {
        username: string('MQTT username.', { minLength: 1, maxLength: 256 }),
        passwordSecretRef: secretKeyRef('Secret key holding the password.', 'password'),
        clientCertificateSecretRef: object(
          'A kubernetes.io/tls Secret (tls.crt, tls.key) presented as client certificate.',
          { name: secretName('Secret name.') },
          { required: ['name'] },
        ),
      },
      { 'x-kubernetes-validations': [cel('!has(self.passwordSecretRef) || has(self.username)', 'passwordSecretRef needs a username')] },
    ),
    tls: object('TLS towards the remote cluster (absent: plain MQTT).', {
      caSecretRef: secretKeyRef('Secret key with the CA bundle that signs the remote certificate.', 'ca.crt'),
      serverName: string('Expected server name (SNI and verification).', { maxLength: 253 }),
      verify: boolean('Verify the remote certificate.', true),
    }),
    topics: array(
      'MQTT filters whose messages this region wants from the remote (local subscriptions within them are sent there as routes); empty: nothing comes from the remote over this link.',
      string('An MQTT topic filter.', {
        pattern: MQTT_FILTER,
        minLength: 1,
        maxLength: 1024,
        'x-kubernetes-validations': [cel("!self.startsWith('$LINK')", 'topics must not reach into $LINK')],
      }),
      { maxItems: MAX_LINK_TOPICS, 'x-kubernetes-list-type': 'set', default: [] },
    ),
    clientIdPrefix: string('Prefix of the client ids the link agents use at the remote (default <clusterName>-link-).', {
      pattern: '^[A-Za-z0-9_.-]+$',
      maxLength: 64,
    }),
    enabled: boolean('Run the link (false keeps its queue and configuration but disconnects).', true),
    queue: object('The link\'s disk-backed outbound queue.', {
      maxBytes: integer('Queue size limit in bytes.', { minimum: 1048576, default: DEFAULT_QUEUE_MAX_BYTES, format: 'int64' }),
      whenFull: string('Block (hold publishers\' acknowledgements) or Reject (refuse QoS>=1 publishes); never a silent drop.', {
        enum: ['Block', 'Reject'],
        default: 'Block',
      }),
    }),
    compression: string('Compression of the link traffic.', { enum: ['None', 'Deflate'], default: 'None' }),
  },
  {
    required: ['clusterRef', 'remote'],
    'x-kubernetes-validations': [
      cel(
        '!has(self.authentication) || !has(self.authentication.clientCertificateSecretRef) || has(self.tls)',
        'authentication.clientCertificateSecretRef needs tls',
      ),
    ],
  },
);

const statusSchema = object('Observed state, written by the operator from the link agents\' /api/v1/links.', {
  observedGeneration: integer('metadata.generation last acted upon.', { format: 'int64' }),
  conditions: conditionsSchema(CLUSTER_LINK_CONDITIONS),
  clusterRef: string('clusterRef as first accepted.'),
  remoteClusterName: string('remote.clusterName as first accepted.'),
  state: string('Agent-reported state: connecting, connected, disconnected, misconfigured or disabled.'),
  activeAgent: string('Pod whose link agent serves the link (the agent whose report counts).'),
  routesSent: integer('Routes sent to the remote.', { format: 'int64' }),
  routesReceived: integer('Routes received from the remote.', { format: 'int64' }),
  queueDepth: integer('Messages waiting in the outbound queues (summed over the agents).', { format: 'int64' }),
  queueBytes: integer('Bytes waiting in the outbound queues (summed over the agents).', { format: 'int64' }),
  lagSeconds: integer('Age of the oldest queued message, in seconds.', { format: 'int64' }),
  lastConnectedTime: string('When the link\'s current (or last) connection became connected, as its link agent reports it (connectedSince); for agents that do not report it, when the operator saw the link become connected (accurate to the status interval).', { format: 'date-time' }),
  lastError: string('Last error the agents reported.', { maxLength: 4096 }),
});

export const clusterLinkSchema: JSONSchemaProps = object(
  'A Meridian cluster link from a local RegionalCluster to a remote region\'s cluster; each side declares a link to the other.',
  {
    apiVersion: string('API version.'),
    kind: string('Kind.'),
    metadata: { type: 'object' },
    spec: specSchema,
    status: statusSchema,
  },
  { required: ['spec'] },
);
