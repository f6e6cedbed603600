import type { AedesOptions, AedesPublishPacket, Client, PublishPacket, Subscription } from 'aedes';
import type { AuthConfig, ListenerConfig } from '../config/types.js';
import type { BrokerMetrics } from '../admin/metrics.js';
import type { Logger } from '../log/logger.js';
import type { ConnectionInfo } from './listeners.js';
import { interceptParsedPackets, maxTopicLevelsOf, pendingWillOf, subscriptionsOf, type ParsedPacket } from './aedes-internals.js';
import { compileAcl, type ClientAcl } from './auth/acl.js';
import { mountFilter, mountTopic, parseFilter, TenantDirectory, unmountFilter, unmountTopic } from './auth/tenancy.js';
import { isValidFilter, isValidTopicName, levelCount } from './auth/topics.js';
import { UserDirectory } from './auth/user-directory.js';
import type { UserRecord } from './auth/users-file.js';

/** Who a connected client is, decided once at CONNECT. */
export interface ClientIdentity {
  username?: string;
  tenant: string;
  /** Internal topic prefix of the tenant ('' = none, superusers only). */
  mountpoint: string;
  /** Sees the whole internal topic space, including `$SYS`; no mountpoint, no ACL. */
  superuser: boolean;
  listener: string;
}

export type SecurityHooks = Required<Pick<AedesOptions, 'preConnect' | 'authenticate' | 'authorizePublish' | 'authorizeSubscribe' | 'authorizeForward'>>;

export interface SecurityDeps {
  logger: Logger;
  metrics: BrokerMetrics;
  connectionInfo: (client: Client) => ConnectionInfo | undefined;
  /** The node's listeners, to know which ones take a verified certificate CN as the username. */
  listeners?: readonly ListenerConfig[];
  /** Users file re-read interval besides change events (tests shorten it). */
  usersPollIntervalMs?: number;
}

export interface Security {
  /** Pass all of them to aedes (preConnect installs the packet interception that mounts UNSUBSCRIBE). */
  readonly hooks: SecurityHooks;
  identityOf(client: Client): ClientIdentity | undefined;
  /** Stops watching the users file. */
  close(): void;
}

type AuthenticateDone = Parameters<SecurityHooks['authenticate']>[3];

const BAD_CREDENTIALS = 4;
const NOT_AUTHORIZED = 5;
const SERVER_UNAVAILABLE = 3;

interface ClientState {
  identity: ClientIdentity;
  /** Absent for superusers, who bypass the ACL. */
  acl?: ClientAcl;
}

class Refusal extends Error {
  constructor(readonly reason: string, readonly returnCode: number) {
    super(reason);
  }
}

/**
 * Authentication, ACL and tenant isolation for aedes.
 *
 * Topics are mounted where they enter (PUBLISH and SUBSCRIBE in the authorize hooks, UNSUBSCRIBE when parsed,
 * the will at CONNECT) and unmounted where they leave (authorizeForward). Only what the client itself sent is
 * mounted: packets parsed from its socket are remembered in `fromClient`, everything else that reaches a hook
 * (restored subscriptions, wills, broker publishes) already carries internal topics.
 */
export function createSecurity(config: AuthConfig, deps: SecurityDeps): Security {
  const { logger, metrics } = deps;
  const tenants = new TenantDirectory(config.tenants, config.anonymousTenant);
  const users = config.usersFile
    ? UserDirectory.open({ file: config.usersFile, tenants, logger, pollIntervalMs: deps.usersPollIntervalMs })
    : undefined;
  const states = new WeakMap<Client, ClientState>();
  const fromClient = new WeakSet<object>();
  /** Clients whose parsed packets pass onParsedPacket; for any other client nothing can be trusted as internal. */
  const intercepted = new WeakSet<Client>();
  const unmountedUnsubscribes = new WeakMap<Client, { unsubscriptions: string[] }[]>();

  const anonymousAllowed = (info: ConnectionInfo | undefined): boolean =>
    config.allowAnonymous ?? (info?.loopbackListener === true);

  const certificateUsername = (info: ConnectionInfo | undefined): string | undefined => {
    if (info?.verifiedCertCommonName === undefined) return undefined;
    const listener = deps.listeners?.find((l) => l.name === info.listener);
    return listener?.tls?.useCertCommonNameAsUsername ? info.verifiedCertCommonName : undefined;
  };

  const stateFor = (client: Client, info: ConnectionInfo | undefined, user: UserRecord | undefined, certName?: string): ClientState => {
    const tenant = tenants.get(user?.tenant ?? config.anonymousTenant);
    const superuser = user?.superuser === true;
    const identity: ClientIdentity = {
      username: user?.username ?? certName,
      tenant: tenant.name,
      mountpoint: superuser ? '' : tenant.mountpoint,
      superuser,
      listener: info?.listener ?? '?',
    };
    const acl = superuser ? undefined : compileAcl(config.acl, config.aclDefault, { username: identity.username, clientId: client.id, tenant: tenant.name });
    return { identity, acl };
  };

  const identify = async (client: Client, username: string | undefined, password: Buffer | undefined): Promise<ClientState> => {
    const info = deps.connectionInfo(client);
    const certName = certificateUsername(info);
    if (certName !== undefined) {
      const user = users?.lookup(certName);
      if (user) return stateFor(client, info, user);
      if (anonymousAllowed(info)) return stateFor(client, info, undefined, certName);
      throw new Refusal('unknown_certificate_user', NOT_AUTHORIZED);
    }
    if (username === undefined || !users) {
      // Without a users file a username cannot be checked: such a client is anonymous.
      if (!anonymousAllowed(info)) throw new Refusal(username === undefined ? 'anonymous_not_allowed' : 'no_users_file', NOT_AUTHORIZED);
      return stateFor(client, info, undefined);
    }
    const user = await users.authenticate(username, password ?? Buffer.alloc(0));
    if (!user) throw new Refusal('bad_credentials', BAD_CREDENTIALS);
    return stateFor(client, info, user);
  };

  /** The will is mounted at CONNECT, so aedes stores and later publishes the internal topic. */
  const mountWill = (client: Client, state: ClientState): void => {
    const will = pendingWillOf(client);
    if (!will) return;
    const denial = publishDenial(state, will.topic);
    if (denial) throw new Refusal('will_not_authorized', NOT_AUTHORIZED);
    will.topic = mountTopic(state.identity.mountpoint, will.topic);
    if (levelCount(will.topic) > maxTopicLevelsOf(client)) throw new Refusal('will_not_authorized', NOT_AUTHORIZED);
  };

  const mountUnsubscribe = (mountpoint: string, packet: { unsubscriptions: string[] }): void => {
    packet.unsubscriptions = packet.unsubscriptions.map((filter) => mountFilter(mountpoint, filter));
  };

  const onParsedPacket = (client: Client, packet: ParsedPacket): void => {
    switch (packet.cmd) {
      case 'publish':
        fromClient.add(packet);
        break;
      case 'subscribe':
        for (const sub of (packet as unknown as { subscriptions: object[] }).subscriptions) fromClient.add(sub);
        break;
      case 'unsubscribe': {
        const unsubscribe = packet as unknown as { unsubscriptions: string[] };
        const state = states.get(client);
        if (state) mountUnsubscribe(state.identity.mountpoint, unsubscribe);
        else pendingUnsubscribes(client).push(unsubscribe);
        break;
      }
    }
  };

  /** UNSUBSCRIBEs parsed before authentication finished wait in aedes' queue; mount them once the tenant is known. */
  const pendingUnsubscribes = (client: Client): { unsubscriptions: string[] }[] => {
    let pending = unmountedUnsubscribes.get(client);
    if (!pending) unmountedUnsubscribes.set(client, (pending = []));
    return pending;
  };

  const deny = (client: Client, action: string, topic: string, reason: string): void => {
    metrics.authorizationDenied.inc({ action });
    // Forward denials are per message: keep them out of the info log.
    logger[action === 'forward' ? 'debug' : 'info']({ clientId: client.id, action, topic, reason }, 'authorization denied');
  };

  const refuse = (client: Client, refusal: Refusal, done: AuthenticateDone): void => {
    metrics.connectionsRefused.inc({ reason: refusal.reason });
    logger.info({ clientId: client.id, remote: deps.connectionInfo(client)?.remoteAddress, reason: refusal.reason }, 'connection refused');
    done(Object.assign(new Error(refusal.reason), { returnCode: refusal.returnCode }), false);
  };

  const hooks: SecurityHooks = {
    preConnect(client, _packet, done) {
      interceptParsedPackets(client, (packet) => onParsedPacket(client, packet));
      intercepted.add(client);
      done(null, true);
    },

    authenticate(client, username, password, done) {
      const admit = async (): Promise<ClientState> => {
        const state = await identify(client, username, password);
        mountWill(client, state);
        return state;
      };
      // Two-argument then: an exception thrown by aedes inside done() must not call done() a second time.
      admit().then((state) => {
        states.set(client, state);
        for (const packet of unmountedUnsubscribes.get(client) ?? []) mountUnsubscribe(state.identity.mountpoint, packet);
        unmountedUnsubscribes.delete(client);
        done(null, true);
      }, (err: unknown) => {
        if (err instanceof Refusal) return refuse(client, err, done);
        logger.error({ clientId: client.id, err: (err as Error).message }, 'authentication failed');
        refuse(client, new Refusal('auth_error', SERVER_UNAVAILABLE), done);
      });
    },

    authorizePublish(client, packet, done) {
      if (client && !intercepted.has(client)) {
        deny(client, 'publish', packet.topic, 'preConnect hook not installed');
        return done(new Error('publish refused: the security preConnect hook was not passed to aedes'));
      }
      // Wills and stored wills were mounted and checked at CONNECT; broker publishes carry internal topics.
      if (!client || !fromClient.has(packet)) return done(null);
      const state = states.get(client);
      const denial = state ? publishDenial(state, packet.topic) : 'not authenticated';
      if (!state || denial) {
        deny(client, 'publish', packet.topic, denial ?? 'not authenticated');
        // MQTT 3.1.1 cannot refuse a PUBLISH: aedes closes the connection instead ([MQTT-3.3.5-2]).
        return done(new Error(`publishing to '${packet.topic}' is not allowed: ${denial}`));
      }
      const internal = mountTopic(state.identity.mountpoint, packet.topic);
      if (levelCount(internal) > maxTopicLevelsOf(client)) {
        deny(client, 'publish', packet.topic, 'too many topic levels inside the tenant');
        return done(new Error(`publishing to '${packet.topic}': too many topic levels`));
      }
      packet.topic = internal;
      done(null);
    },

    authorizeSubscribe(client, subscription, done) {
      const state = states.get(client);
      const requested = subscription.topic;
      const denial = state ? subscribeDenial(client, state, subscription, fromClient.has(subscription)) : 'not authenticated';
      if (denial) {
        deny(client, 'subscribe', requested, denial);
        // SUBACK 0x80 for this filter ([MQTT-3.9.3-2]); aedes may still persist the denied entry, mounted.
        return done(null, null);
      }
      done(null, subscription);
    },

    authorizeForward(client, packet) {
      const state = states.get(client);
      if (!state) return null;
      if (state.identity.superuser) return packet;
      const internal = packet.topic;
      const view = unmountTopic(state.identity.mountpoint, internal);
      if (view === undefined || view.startsWith('$')) {
        deny(client, 'forward', internal, 'topic outside the tenant mountpoint');
        return null;
      }
      if (state.acl && !state.acl.mayReceive(view)) {
        metrics.authorizationDenied.inc({ action: 'receive' });
        return null;
      }
      packet.topic = view;
      return packet;
    },
  };

  return {
    hooks,
    identityOf: (client) => states.get(client)?.identity,
    close: () => users?.close(),
  };
}

/** Why `topic` (client view) may not be published, or undefined. */
function publishDenial(state: ClientState, topic: string): string | undefined {
  if (!isValidTopicName(topic)) return 'not a valid topic name';
  if (state.identity.superuser) return undefined;
  if (topic.startsWith('$')) return '$-topics are reserved for the broker';
  return state.acl?.mayPublish(topic) === false ? 'denied by ACL' : undefined;
}

/**
 * Checks a subscription and mounts it in place. A filter the client sent is in its view; a restored one (from the
 * session store) is already internal and must lie inside the mountpoint. Denied filters are mounted too, because
 * aedes persists every filter of a SUBSCRIBE packet, allowed or not: stored mounted, a denied filter stays inside
 * the tenant and is denied again when the session is restored.
 */
function subscribeDenial(client: Client, state: ClientState, subscription: Subscription, sentByClient: boolean): string | undefined {
  const { mountpoint } = state.identity;
  let view: string | undefined;
  if (sentByClient) {
    view = subscription.topic;
    subscription.topic = mountFilter(mountpoint, view);
  } else {
    view = unmountFilter(mountpoint, subscription.topic);
    if (view === undefined) return 'stored subscription outside the tenant mountpoint';
  }
  const parsed = parseFilter(view);
  if (parsed.kind === 'invalid') return parsed.reason;
  if (!isValidFilter(parsed.filter)) return 'not a valid topic filter';
  if (levelCount(subscription.topic) > maxTopicLevelsOf(client)) return 'too many topic levels inside the tenant';
  if (state.identity.superuser) return undefined;
  if (parsed.filter.startsWith('$')) return '$-topics are reserved for the broker';
  return state.acl?.maySubscribe(parsed.filter) === false ? 'denied by ACL' : undefined;
}
