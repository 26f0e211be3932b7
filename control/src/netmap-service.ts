// The current TailnetSnapshot. A structural change (membership, tags, routes,
// policy) makes the next caller rebuild it from the database; an
// attributes-only change (endpoints, online) patches just those nodes into a
// new snapshot that shares everything else. Many streams asking at once share
// one build or patch, and no stream gets a snapshot older than the last
// change it was told about.
import type { Database } from "@trellis/db";
import type { DnsConfig, RelayMap } from "@trellis/proto";
import { TailnetSnapshot, type NodeMap } from "./netmap";
import { loadPolicy, type ActivePolicy } from "./policy-store";

export interface NetmapServiceOptions {
  dnsDomain: string;
  relayMap: () => RelayMap;
  now?: () => Date;
}

export class NetmapService {
  private current: Promise<TailnetSnapshot> | null = null;
  private stale = true;
  private readonly patchIds = new Set<string>();
  private policy: ActivePolicy | undefined;
  /** The last snapshot built, whose peers a rebuild reuses when unchanged. */
  private previous: TailnetSnapshot | undefined;

  constructor(
    private readonly db: Database,
    private readonly opts: NetmapServiceOptions,
  ) {
    this.dnsConfig = { domain: opts.dnsDomain, nameservers: [] };
  }

  /** Something changed: all of it (no ids), or only attributes of the given nodes. */
  invalidate(attrsOnlyIds?: readonly string[]): void {
    if (!attrsOnlyIds) {
      this.stale = true;
      this.patchIds.clear();
    } else if (!this.stale) {
      for (const id of attrsOnlyIds) this.patchIds.add(id);
    }
  }

  snapshot(): Promise<TailnetSnapshot> {
    if (this.stale || !this.current) {
      this.stale = false;
      this.patchIds.clear();
      this.current = this.track(this.build());
    } else if (this.patchIds.size > 0) {
      const ids = [...this.patchIds];
      this.patchIds.clear();
      this.current = this.track(this.current.then((s) => this.patch(s, ids)));
    }
    return this.current;
  }

  /** A failed build or patch is not kept: the next caller rebuilds. */
  private track(p: Promise<TailnetSnapshot>): Promise<TailnetSnapshot> {
    p.then(
      (s) => (this.previous = s),
      () => {
        if (this.current === p) this.stale = true;
      },
    );
    return p;
  }

  private async build(): Promise<TailnetSnapshot> {
    const [rows, users, policy] = await Promise.all([
      this.db.prisma.node.findMany(),
      this.db.prisma.user.findMany(),
      loadPolicy(this.db, this.policy),
    ]);
    this.policy = policy;
    return TailnetSnapshot.build(rows, users, policy, this.opts.dnsDomain, this.now(), this.previous);
  }

  private async patch(s: TailnetSnapshot, ids: string[]): Promise<TailnetSnapshot> {
    const rows = await this.db.prisma.node.findMany({ where: { id: { in: ids } } });
    return s.withRows(rows);
  }

  private now(): Date {
    return this.opts.now?.() ?? new Date();
  }

  private readonly dnsConfig: DnsConfig;

  dns(): DnsConfig {
    return this.dnsConfig;
  }

  relayMap(): RelayMap {
    return this.opts.relayMap();
  }

  /** The current map of one node; null when it takes no part in the tailnet. */
  async mapFor(nodeId: string): Promise<NodeMap | null> {
    const snap = await this.snapshot();
    return snap.mapFor(nodeId, this.opts.relayMap(), this.dns());
  }
}
