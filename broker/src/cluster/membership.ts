import type { ConnectedPeer } from './transport/index.js';

export interface Member {
  nodeId: string;
  role: string;
  address: string;
  incarnation: number;
  connected: boolean;
  /** When the current state began (ms since the epoch). */
  since: number;
}

export interface GossipedMember {
  nodeId: string;
  role: string;
  address: string;
  incarnation: number;
}

/** The nodes this node knows: from its own connections and from member lists other nodes gossip. */
export class Membership {
  private readonly members = new Map<string, Member>();

  constructor(private readonly selfId: string) {}

  up(peer: ConnectedPeer): void {
    this.members.set(peer.nodeId, {
      nodeId: peer.nodeId, role: peer.role, address: peer.address, incarnation: peer.incarnation, connected: true, since: Date.now(),
    });
  }

  down(nodeId: string): void {
    const member = this.members.get(nodeId);
    if (member?.connected) this.members.set(nodeId, { ...member, connected: false, since: Date.now() });
  }

  /** Adds members heard of through gossip; returns the addresses of the ones this node did not know. */
  merge(gossip: readonly GossipedMember[]): string[] {
    const fresh: string[] = [];
    for (const m of gossip) {
      if (m.nodeId === this.selfId || this.members.has(m.nodeId)) continue;
      this.members.set(m.nodeId, { ...m, connected: false, since: Date.now() });
      fresh.push(m.address);
    }
    return fresh;
  }

  get(nodeId: string): Member | undefined {
    return this.members.get(nodeId);
  }

  list(): Member[] {
    return [...this.members.values()].sort((a, b) => a.nodeId.localeCompare(b.nodeId));
  }

  gossip(): GossipedMember[] {
    return this.list().map(({ nodeId, role, address, incarnation }) => ({ nodeId, role, address, incarnation }));
  }

  connectedCores(): Member[] {
    return this.list().filter((m) => m.connected && m.role === 'core');
  }
}
