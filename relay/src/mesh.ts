import type { Logger } from "@trellis/log";
import type { KeyPair } from "@trellis/proto/keyfile";
import { RelayLink } from "@trellis/client/derp";
import { openWebSocket } from "@trellis/client/node";
import { decodeKey, KeyFormatError } from "@trellis/proto";
import type { MeshRoute, RelayServer } from "./server";

/** A mesh peer that cannot be used as configured; the message names it. */
export class MeshConfigError extends Error {
  override readonly name = "MeshConfigError";
}

/** One other relay of the mesh: where it is, and the server key it must present. */
export interface MeshPeerAddress {
  /** ws(s)://…/derp, without the pin. */
  url: string;
  serverKey: Uint8Array;
}

/**
 * Parse a mesh peer as configured: `wss://host[:port]/derp#relaykey:<64 hex>`
 * (the other relay's server key, as its health endpoint shows it, pinned in
 * the fragment). The mesh key is sealed only to that key, so a relay that
 * is not the configured one never gets it. `ws://` is refused unless
 * `allowInsecure` (a private network, tests): over it an on-path attacker
 * could capture and replay the login frame.
 */
export function parseMeshPeer(entry: string, allowInsecure = false): MeshPeerAddress {
  const hash = entry.indexOf("#");
  const url = hash < 0 ? entry : entry.slice(0, hash);
  const pin = hash < 0 ? "" : entry.slice(hash + 1);
  if (!/^wss?:\/\/[^/#]+\/\S*$/.test(url)) {
    throw new MeshConfigError(`mesh peer "${url}" is not a ws:// or wss:// URL of a relay's /derp`);
  }
  if (url.startsWith("ws://") && !allowInsecure) {
    throw new MeshConfigError(`mesh peer ${url} must use wss:// (or allow insecure mesh links explicitly)`);
  }
  if (!pin) {
    throw new MeshConfigError(`mesh peer ${url} needs its relay key pinned: ${url}#relaykey:<64 hex digits>`);
  }
  try {
    return { url, serverKey: decodeKey("relaykey", pin) };
  } catch (err) {
    if (err instanceof KeyFormatError) throw new MeshConfigError(`mesh peer ${url}: ${err.message}`);
    throw err;
  }
}

/**
 * This relay's connection to one other relay of its mesh. It logs in with the
 * mesh key (sealed to the peer's pinned server key only), watches which clients the other relay has, and routes packets for
 * those clients there (one hop: the other relay delivers them locally only).
 */
export class MeshPeer implements MeshRoute {
  private readonly link: RelayLink;

  readonly url: string;

  constructor(
    private readonly relay: RelayServer,
    peer: MeshPeerAddress,
    key: KeyPair,
    meshKey: string,
    log: Logger,
  ) {
    const url = peer.url;
    this.url = url;
    this.link = new RelayLink(
      {
        url,
        privateKey: key.privateKey,
        meshKey,
        serverKey: peer.serverKey,
        socketFactory: openWebSocket,
        minBackoffMs: 200,
        maxBackoffMs: 5_000,
        onConnect: (client) => {
          log.info({ url }, "mesh peer connected");
          client.watchConnections();
        },
      },
      {
        peerPresent: (k) => this.relay.setMeshRoute(k.slice(), this),
        peerGone: (k) => this.relay.setMeshRoute(k, null, this),
        close: (reason) => {
          log.info({ url, reason }, "mesh peer disconnected");
          this.relay.clearMeshRoutes(this);
        },
      },
    );
  }

  get connected(): boolean {
    return this.link.connected;
  }

  forward(src: Uint8Array, dst: Uint8Array, packet: Uint8Array): boolean {
    return this.link.current?.forward(src, dst, packet) ?? false;
  }

  close(): void {
    this.link.close();
    this.relay.clearMeshRoutes(this);
  }
}
