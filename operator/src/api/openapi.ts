/**
 * The subset of the apiextensions.k8s.io/v1 JSONSchemaProps that Meridian's CRDs use, spelt as on the wire
 * (so the objects serialise straight into the CRD YAML), plus small builders for the repeated shapes.
 */
export interface CelRule {
  rule: string;
  message: string;
}

export interface JSONSchemaProps {
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  description?: string;
  format?: string;
  properties?: Record<string, JSONSchemaProps>;
  additionalProperties?: JSONSchemaProps;
  items?: JSONSchemaProps;
  required?: string[];
  enum?: (string | number)[];
  default?: unknown;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  minProperties?: number;
  maxProperties?: number;
  anyOf?: JSONSchemaProps[];
  nullable?: boolean;
  'x-kubernetes-int-or-string'?: true;
  'x-kubernetes-preserve-unknown-fields'?: true;
  'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-map-type'?: 'atomic' | 'granular';
  'x-kubernetes-validations'?: CelRule[];
}

export const string = (description: string, extra: Omit<JSONSchemaProps, 'type' | 'description'> = {}): JSONSchemaProps => ({
  type: 'string',
  description,
  ...extra,
});

export const integer = (description: string, extra: Omit<JSONSchemaProps, 'type' | 'description'> = {}): JSONSchemaProps => ({
  type: 'integer',
  description,
  ...extra,
});

export const boolean = (description: string, defaultValue?: boolean): JSONSchemaProps => ({
  type: 'boolean',
  description,
  ...(defaultValue === undefined ? {} : { default: defaultValue }),
});

export const object = (
  description: string,
  properties: Record<string, JSONSchemaProps>,
  extra: Omit<JSONSchemaProps, 'type' | 'description' | 'properties'> = {},
): JSONSchemaProps => ({ type: 'object', description, properties, ...extra });

export const array = (
  description: string,
  items: JSONSchemaProps,
  extra: Omit<JSONSchemaProps, 'type' | 'description' | 'items'> = {},
): JSONSchemaProps => ({ type: 'array', description, items, ...extra });

export const stringMap = (description: string, maxProperties = 64): JSONSchemaProps => ({
  type: 'object',
  description,
  additionalProperties: { type: 'string', maxLength: 4096 },
  maxProperties,
});

export const intOrString = (description: string, extra: Omit<JSONSchemaProps, 'description'> = {}): JSONSchemaProps => ({
  description,
  'x-kubernetes-int-or-string': true,
  anyOf: [{ type: 'integer' }, { type: 'string' }],
  ...extra,
});

/** A Kubernetes object kept as given (its own API server validates it when the operator creates the pod). */
export const opaqueObject = (description: string): JSONSchemaProps => ({
  type: 'object',
  description,
  'x-kubernetes-preserve-unknown-fields': true,
});

export const cel = (rule: string, message: string): CelRule => ({ rule, message });

/** DNS-1123 label (names of Kubernetes objects and of the things Meridian derives object names from). */
export const DNS_LABEL = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
/** DNS-1123 subdomain (Secret names). */
export const DNS_SUBDOMAIN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
/** The broker's cluster-name pattern, narrowed to a valid label value (it labels every object and names links). */
export const CLUSTER_NAME = '^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$';
/** One `host:port` of a remote server (host name, IPv4 or bracketed IPv6). */
export const HOST_PORT = '^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?):[0-9]{1,5}$';
/** A syntactically valid MQTT topic filter: `#` only as the last level, `+` and `#` only as whole levels. */
export const MQTT_FILTER = '^(#|(\\+|[^/#+]*)(/(\\+|[^/#+]*))*(/#)?)$';
/** Kubernetes quantity (resource.Quantity's regular expression). */
export const QUANTITY =
  '^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$';
