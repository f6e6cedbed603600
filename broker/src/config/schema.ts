/**
 * JSON Schema of the broker configuration file. Ajv validates the merged document and fills defaults;
 * `additionalProperties: false` everywhere, so a misspelt key is an error with its path, never ignored.
 */
const port = { type: 'integer', minimum: 0, maximum: 65535 } as const;
const nonEmpty = { type: 'string', minLength: 1 } as const;
const positiveInt = { type: 'integer', minimum: 1 } as const;

const tls = {
  type: 'object',
  additionalProperties: false,
  required: ['certFile', 'keyFile'],
  properties: {
    certFile: nonEmpty,
    keyFile: nonEmpty,
    caFile: nonEmpty,
    requestClientCert: { type: 'boolean', default: false },
    requireClientCert: { type: 'boolean', default: false },
    useCertCommonNameAsUsername: { type: 'boolean', default: false },
  },
} as const;

const listener = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'protocol', 'port'],
  properties: {
    name: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]*$' },
    protocol: { enum: ['mqtt', 'mqtts', 'ws', 'wss'] },
    host: { type: 'string', default: '127.0.0.1' },
    port,
    path: { type: 'string', pattern: '^/', default: '/mqtt' },
    tls,
  },
  if: { properties: { protocol: { enum: ['mqtts', 'wss'] } } },
  then: { required: ['tls'] },
} as const;

const aclRule = {
  type: 'object',
  additionalProperties: false,
  required: ['effect', 'action', 'topic'],
  properties: {
    effect: { enum: ['allow', 'deny'] },
    action: { enum: ['publish', 'subscribe', 'all'] },
    topic: nonEmpty,
    users: { type: 'array', items: nonEmpty },
    tenants: { type: 'array', items: nonEmpty },
  },
} as const;

const tenant = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: {
    name: { type: 'string', pattern: '^[A-Za-z0-9_.-]+$' },
    mountpoint: { type: 'string' },
  },
} as const;

export const brokerConfigSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    node: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$' },
        clusterName: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$', default: 'meridian' },
        dataDir: nonEmpty,
      },
    },
    log: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: { level: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info' } },
    },
    listeners: { type: 'array', items: listener, minItems: 1 },
    admin: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: { host: { type: 'string', default: '127.0.0.1' }, port: { ...port, default: 8081 } },
    },
    auth: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        allowAnonymous: { type: 'boolean' },
        anonymousTenant: { type: 'string', default: 'default' },
        usersFile: nonEmpty,
        tenants: { type: 'array', items: tenant, default: [] },
        acl: { type: 'array', items: aclRule, default: [] },
        aclDefault: { enum: ['allow', 'deny'], default: 'allow' },
      },
    },
    limits: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        maxPacketSize: { type: 'integer', minimum: 64, maximum: 268435460, default: 1048576 },
        maxConnections: { ...positiveInt, default: 100000 },
        maxQueuedMessages: { ...positiveInt, default: 10000 },
        maxInflightInbound: { ...positiveInt, default: 1000 },
        maxClientIdLength: { type: 'integer', minimum: 23, maximum: 65535, default: 256 },
        maxKeepalive: { type: 'integer', minimum: 0, maximum: 65535, default: 0 },
        maxTopicLevels: { type: 'integer', minimum: 1, maximum: 100, default: 100 },
      },
    },
    store: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        durability: { enum: ['durable', 'relaxed'], default: 'durable' },
        commitDelayMs: { type: 'integer', minimum: 0, maximum: 1000, default: 0 },
        maxSizeMb: { type: 'integer', minimum: 16, default: 4096 },
      },
    },
    cluster: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        role: { enum: ['core', 'replicant'], default: 'core' },
        host: { type: 'string', default: '127.0.0.1' },
        port,
        advertise: { type: 'string', pattern: '^[^\\s:]+:\\d{1,5}$' },
        seeds: { type: 'array', items: { type: 'string', pattern: '^[^\\s:]+:\\d{1,5}$' }, default: [] },
        discoveryDns: nonEmpty,
        discoveryIntervalSeconds: { type: 'integer', minimum: 1, default: 10 },
        secretFile: nonEmpty,
        tls: {
          type: 'object',
          additionalProperties: false,
          required: ['certFile', 'keyFile', 'caFile'],
          properties: { certFile: nonEmpty, keyFile: nonEmpty, caFile: nonEmpty },
        },
        routeTtlSeconds: { type: 'integer', minimum: 1, default: 15 },
        heartbeatIntervalMs: { type: 'integer', minimum: 100, default: 3000 },
        tableWaitSeconds: { type: 'integer', minimum: 0, default: 10 },
      },
    },
    links: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: { file: nonEmpty },
    },
    mqtt: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        sysInterval: { type: 'integer', minimum: 0, default: 10 },
        drainTimeoutMs: { type: 'integer', minimum: 0, default: 5000 },
      },
    },
  },
} as const;
