// How a Node row looks on the wire: its identity (registration), as a peer
// and as the receiving node itself (netmap). One place, so every endpoint
// spells a node the same way.
import type { Models } from "@trellis/db";
import type { NodeIdentityInfo, Peer, SelfNode } from "@trellis/proto";
import { jsonList } from "./errors-util";

export function nodeAddresses(n: Pick<Models.Node, "ipv4" | "ipv6">): string[] {
  const out: string[] = [];
  if (n.ipv4) out.push(`${n.ipv4}/32`);
  if (n.ipv6) out.push(`${n.ipv6}/128`);
  return out;
}

export function fqdn(name: string, domain: string): string {
  return `${name}.${domain}.`;
}

export function identityOf(n: Models.Node, domain: string): NodeIdentityInfo {
  return {
    id: n.id,
    key: n.nodeKey,
    name: n.name,
    dnsName: fqdn(n.name, domain),
    addresses: nodeAddresses(n),
    tags: jsonList(n.tags),
    user: n.userId,
    ephemeral: n.ephemeral,
    keyExpiry: n.expiresAt?.toISOString() ?? null,
    authorized: n.authorized,
  };
}

/** A node as its peers see it; `allowedIPs` adds its routes in effect (from the policy topology). */
export function peerOf(n: Models.Node, domain: string, routes: readonly string[]): Peer {
  const addresses = nodeAddresses(n);
  return {
    id: n.id,
    key: n.nodeKey,
    name: n.name,
    dnsName: fqdn(n.name, domain),
    hostname: n.hostname,
    os: n.os,
    tags: jsonList(n.tags),
    addresses,
    allowedIPs: [...addresses, ...routes],
    endpoints: jsonList(n.endpoints),
    homeRegion: n.homeRegion,
    online: n.online,
    lastSeen: n.lastSeen?.toISOString() ?? null,
    keyExpiry: n.expiresAt?.toISOString() ?? null,
    ...(n.wireguardOnly
      ? { isWireGuardOnly: true as const, ...(n.gatewayId ? { gateway: n.gatewayId } : {}) }
      : {}),
  };
}

export function selfOf(n: Models.Node, domain: string, routes: readonly string[]): SelfNode {
  return {
    ...peerOf(n, domain, routes),
    user: n.userId,
    ephemeral: n.ephemeral,
    authorized: n.authorized,
    advertisedRoutes: jsonList(n.advertisedRoutes),
    approvedRoutes: jsonList(n.approvedRoutes),
  };
}
