/**
 * A small REST client over @kubernetes/client-node's KubeConfig (which supplies the server, the TLS material and
 * the credentials, refreshed per request so rotated service-account tokens keep working). It speaks only the verbs
 * the operator needs: get, list, create, server-side apply, merge patch (objects and their status), delete.
 */
import http from 'node:http';
import https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import { resourceFor, resourcePath, type ResourceType } from './resources.js';

export class KubeApiError extends Error {
  override name = 'KubeApiError';
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
    readonly method: string,
    readonly path: string,
  ) {
    super(`${method} ${path}: ${status} ${reason}: ${message}`);
  }
}

export const isNotFound = (err: unknown): boolean => err instanceof KubeApiError && err.status === 404;
export const isConflict = (err: unknown): boolean => err instanceof KubeApiError && err.status === 409;

/**
 * Any object as it is on the wire. client-node's model types (V1Pod, …) fit, and so do the operator's own
 * resource types, whose timestamps are the strings JSON carries.
 */
export interface ApiObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; uid?: string; resourceVersion?: string };
}

export interface ApiList<T> {
  apiVersion?: string;
  kind?: string;
  metadata?: { resourceVersion?: string; continue?: string };
  items: T[];
}

export interface ServerVersionInfo {
  major: string;
  minor: string;
  gitVersion: string;
}

export interface RequestOptions {
  body?: unknown;
  contentType?: string;
  query?: Record<string, string | undefined>;
}

export interface ListOptions {
  namespace?: string;
  labelSelector?: string;
}

const JSON_TYPE = 'application/json';
const APPLY_TYPE = 'application/apply-patch+yaml';
const MERGE_TYPE = 'application/merge-patch+json';

function statusDetails(text: string): { reason: string; message: string } {
  try {
    const status = JSON.parse(text) as { reason?: string; message?: string };
    return { reason: status.reason ?? 'Unknown', message: status.message ?? text.slice(0, 500) };
  } catch {
    return { reason: 'Unknown', message: text.slice(0, 500) };
  }
}

function objectCoordinates(obj: ApiObject): { type: ResourceType; namespace?: string; name: string } {
  const name = obj.metadata?.name;
  if (!obj.apiVersion || !obj.kind || !name) throw new Error(`object lacks apiVersion, kind or metadata.name: ${JSON.stringify(obj).slice(0, 200)}`);
  return { type: resourceFor(obj.apiVersion, obj.kind), namespace: obj.metadata?.namespace, name };
}

export class KubeClient {
  private readonly server: URL;
  private agent?: http.Agent;

  constructor(
    private readonly kubeConfig: KubeConfig,
    private readonly timeoutMs = 15_000,
  ) {
    const cluster = kubeConfig.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    this.server = new URL(cluster.server);
  }

  get kubeconfig(): KubeConfig {
    return this.kubeConfig;
  }

  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const url = new URL(path, this.server);
    for (const [k, v] of Object.entries(options.query ?? {})) if (v !== undefined) url.searchParams.set(k, v);
    const payload = options.body === undefined ? undefined : typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
    const requestOptions: https.RequestOptions = { method, headers: {} };
    await this.kubeConfig.applyToHTTPSOptions(requestOptions);
    requestOptions.agent = this.agentFor(requestOptions);
    requestOptions.headers = {
      ...(requestOptions.headers as Record<string, string>),
      accept: JSON_TYPE,
      'user-agent': 'meridian-operator',
      ...(payload === undefined ? {} : { 'content-type': options.contentType ?? JSON_TYPE, 'content-length': String(Buffer.byteLength(payload)) }),
    };
    const text = await this.send(url, requestOptions, payload, `${method} ${url.pathname}`);
    if (text.status < 200 || text.status >= 300) {
      const { reason, message } = statusDetails(text.body);
      throw new KubeApiError(text.status, reason, message, method, url.pathname);
    }
    return (text.body ? JSON.parse(text.body) : {}) as T;
  }

  async get<T extends ApiObject>(type: ResourceType, namespace: string | undefined, name: string): Promise<T | undefined> {
    try {
      return await this.request<T>('GET', resourcePath(type, { namespace, name }));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async list<T extends ApiObject>(type: ResourceType, options: ListOptions = {}): Promise<ApiList<T>> {
    const list = await this.request<ApiList<T>>('GET', resourcePath(type, { namespace: options.namespace }), {
      query: { labelSelector: options.labelSelector },
    });
    // Items of a list carry no apiVersion/kind; the caches and the handlers want them.
    for (const item of list.items) {
      item.apiVersion ??= type.apiVersion;
      item.kind ??= type.kind;
    }
    return list;
  }

  async create<T extends ApiObject>(obj: T, fieldManager: string): Promise<T> {
    const { type, namespace } = objectCoordinates(obj);
    return this.request<T>('POST', resourcePath(type, { namespace }), { body: obj, query: { fieldManager } });
  }

  /** Server-side apply (JSON is YAML, so the object goes as it is). `force` takes over fields other managers own. */
  async apply<T extends ApiObject>(obj: T, fieldManager: string, force = true): Promise<T> {
    const { type, namespace, name } = objectCoordinates(obj);
    return this.request<T>('PATCH', resourcePath(type, { namespace, name }), {
      body: obj,
      contentType: APPLY_TYPE,
      query: { fieldManager, force: force ? 'true' : undefined },
    });
  }

  async mergePatch<T extends ApiObject>(
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    patch: unknown,
    options: { subresource?: 'status'; fieldManager?: string } = {},
  ): Promise<T> {
    return this.request<T>('PATCH', resourcePath(type, { namespace, name, subresource: options.subresource }), {
      body: patch,
      contentType: MERGE_TYPE,
      query: { fieldManager: options.fieldManager },
    });
  }

  /** Deletes; an object that is already gone is not an error. */
  async delete(type: ResourceType, namespace: string | undefined, name: string): Promise<void> {
    try {
      await this.request('DELETE', resourcePath(type, { namespace, name }));
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  async serverVersion(): Promise<ServerVersionInfo> {
    return this.request<ServerVersionInfo>('GET', '/version');
  }

  /** One keep-alive agent, built from the TLS material of the first request (the credentials go in headers). */
  private agentFor(options: https.RequestOptions): http.Agent {
    if (!this.agent) {
      this.agent =
        this.server.protocol === 'https:'
          ? new https.Agent({
              keepAlive: true,
              ca: options.ca,
              cert: options.cert,
              key: options.key,
              servername: options.servername,
              ...(options.rejectUnauthorized === undefined ? {} : { rejectUnauthorized: options.rejectUnauthorized }),
            })
          : new http.Agent({ keepAlive: true });
    }
    return this.agent;
  }

  private send(url: URL, options: https.RequestOptions, payload: string | undefined, what: string): Promise<{ status: number; body: string }> {
    const transport = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = transport.request(url, options, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', (err) => reject(new Error(`${what}: ${err.message}`)));
      });
      req.on('error', (err) => reject(new Error(`${what}: ${err.message}`)));
      req.setTimeout(this.timeoutMs, () => req.destroy(new Error(`timed out after ${this.timeoutMs} ms`)));
      req.end(payload);
    });
  }

  close(): void {
    this.agent?.destroy();
  }
}
