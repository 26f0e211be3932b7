import type { Logger } from "@trellis/log";
import type { KeyPair } from "@trellis/proto/keyfile";
import { RelayLink } from "@trellis/client/derp";
import { openWebSocket } from "@trellis/client/node";
import type { MeshRoute, RelayServer } from "./server";

/**
 * This relay's connection to one other relay of its mesh. It logs in with the
 * mesh key, watches which clients the other relay has, and routes packets for
 * those clients there (one hop: the other relay delivers them locally only).
 */
export class MeshPeer implements MeshRoute {
  private readonly link: RelayLink;

  constructor(
    private readonly relay: RelayServer,
    readonly url: string,
    key: KeyPair,
    meshKey: string,
    log: Logger,
  ) {
    this.link = new RelayLink(
      {
        url,
        privateKey: key.privateKey,
        meshKey,
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
