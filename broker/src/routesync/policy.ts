/** What an export policy knows when deciding whether a lane goes to a peer. */
export interface ExportContext {
  /** Actor id of the lane's owner. */
  lane: string;
  /** The lane is this actor's own. */
  isLocal: boolean;
  /** The lane's owner has a stream open to this actor right now (it is a direct neighbour). */
  originConnected: boolean;
  /** Role the owner announced in its handshake, when it is a direct neighbour. */
  originRole: string | undefined;
  peer: string;
  /** Role the peer announced in its handshake reply. */
  peerRole: string | undefined;
}

export type ExportPolicy = (context: ExportContext) => boolean;

/** Only the own lane: a replicant toward its core, a link agent toward a remote region. */
export const exportOwnLaneOnly: ExportPolicy = (c) => c.isLocal && c.lane !== c.peer;

/**
 * A region of cores and replicants. Every node sends its own lane to its peers. A core also relays:
 * to replicants and link agents (anything but a core) the merged table, every lane but the peer's own;
 * to other cores only the lanes of its direct non-core neighbours (each core sends its own lane itself), so a lane
 * travels at most origin → core → core → replicant and never loops.
 */
export const regionalClusterPolicy: ExportPolicy = (c) => {
  if (c.lane === c.peer) return false;
  if (c.isLocal) return true;
  if (c.peerRole !== 'core') return true;
  return c.originConnected && c.originRole !== undefined && c.originRole !== 'core';
};
