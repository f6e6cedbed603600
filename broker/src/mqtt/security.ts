import type { AedesOptions, Client } from 'aedes';
import type { AuthConfig } from '../config/types.js';
import type { BrokerMetrics } from '../admin/metrics.js';
import type { Logger } from '../log/logger.js';
import type { ConnectionInfo } from './listeners.js';

/** Who a connected client is, decided once at CONNECT. */
export interface ClientIdentity {
  username?: string;
  tenant: string;
  /** Internal topic prefix of the tenant ('' = none). */
  mountpoint: string;
  /** Sees the whole internal topic space, including `$SYS`. */
  superuser: boolean;
  listener: string;
}

export type SecurityHooks = Required<Pick<AedesOptions, 'authenticate' | 'authorizePublish' | 'authorizeSubscribe' | 'authorizeForward'>>;

export interface SecurityDeps {
  logger: Logger;
  metrics: BrokerMetrics;
  connectionInfo: (client: Client) => ConnectionInfo | undefined;
}

export interface Security {
  readonly hooks: SecurityHooks;
  identityOf(client: Client): ClientIdentity | undefined;
}

const NOT_AUTHORIZED = 5;

/**
 * Authentication and authorization for aedes: anonymous policy per listener and `$`-topic protection.
 */
export function createSecurity(config: AuthConfig, deps: SecurityDeps): Security {
  const identities = new WeakMap<Client, ClientIdentity>();

  const anonymousAllowed = (info: ConnectionInfo | undefined): boolean =>
    config.allowAnonymous ?? (info?.loopbackListener === true);

  const refuse = (client: Client, reason: string, returnCode: number, done: Parameters<SecurityHooks['authenticate']>[3]): void => {
    deps.metrics.connectionsRefused.inc({ reason });
    deps.logger.info({ clientId: client.id, reason }, 'connection refused');
    done(Object.assign(new Error(reason), { returnCode }), false);
  };

  const hooks: SecurityHooks = {
    authenticate(client, username, _password, done) {
      const info = deps.connectionInfo(client);
      if (username === undefined) {
        if (!anonymousAllowed(info)) return refuse(client, 'anonymous_not_allowed', NOT_AUTHORIZED, done);
        identities.set(client, { tenant: config.anonymousTenant, mountpoint: '', superuser: false, listener: info?.listener ?? '?' });
        return done(null, true);
      }
      return refuse(client, 'bad_credentials', 4, done);
    },
    authorizePublish(client, packet, done) {
      if (client && packet.topic.startsWith('$')) {
        deps.metrics.authorizationDenied.inc({ action: 'publish' });
        return done(new Error(`publishing to '${packet.topic}' is not allowed`));
      }
      done(null);
    },
    authorizeSubscribe(client, subscription, done) {
      const identity = identities.get(client);
      if (subscription.topic.startsWith('$') && !subscription.topic.startsWith('$share/') && !identity?.superuser) {
        deps.metrics.authorizationDenied.inc({ action: 'subscribe' });
        return done(null, null);
      }
      done(null, subscription);
    },
    authorizeForward(_client, packet) {
      return packet;
    },
  };
  return { hooks, identityOf: (client) => identities.get(client) };
}
