// Tests of the control plane as nodes see it: a runtime served by the node
// API on a loopback port, and simulated nodes that talk to it through the
// same ControlClient a browser tab or a gateway uses.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { ControlClient, ControlRequestError, ControlSigner, keyHolder } from "@trellis/client";
import { MapReader } from "@trellis/client/testing";
import {
  ROTATION_PROOF,
  type ConnectionReport,
  type EndpointsRequest,
  type RegisterRequest,
} from "@trellis/proto";
import { generateKeyPair, type KeyPair } from "@trellis/proto/keyfile";
import { expect } from "vitest";
import { localOperator } from "../auth/actor";
import { createPreAuthKey } from "../preauth";
import { applyPolicy } from "../admin/policy";
import { ControlError } from "../errors";
import { NodeApi, type NodeApiOptions } from "../http/node-api";
import type { ControlRuntime } from "../runtime";

const served = new WeakMap<ControlRuntime, string>();

/** Serve `rt`'s node API on a loopback port; returns its URL and how to stop it. */
export async function serveNodeApi(
  rt: ControlRuntime,
  opts: NodeApiOptions = {},
): Promise<{ url: string; server: Server; close(): Promise<void> }> {
  const server = createServer(new NodeApi(rt, opts).listener());
  // Map streams stay open longer than node:http's default request timeout.
  server.requestTimeout = 0;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  served.set(rt, url);
  return {
    url,
    server,
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

/**
 * A pre-auth key as stored by the local operator, its tags not checked
 * against the policy (tests of registration and maps need tagged nodes
 * without writing tagOwners first; admin/keys.test.ts tests that check).
 */
export async function preAuthKey(rt: ControlRuntime, body: object): Promise<string> {
  return (await createPreAuthKey(rt.db, body, "local")).key;
}

/** Save and apply a policy as the local operator; returns its version. */
export async function setPolicy(rt: ControlRuntime, text: string): Promise<number> {
  return (await applyPolicy(rt, localOperator(), text)).version;
}

/** The error `p` rejects with as the API reports it (a ControlError, or a refused HTTP call). */
export async function apiRejection(
  p: Promise<unknown>,
): Promise<{ status: number; code: string; message: string }> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  if (err instanceof ControlRequestError) return err;
  const known = ControlError.of(err);
  expect(known, `expected the API to refuse, got ${String(err)}`).not.toBeNull();
  return known!;
}

/** An HTTP answer as the API's refusal: its status, error code and issues. */
export async function refusal(res: Response): Promise<{ status: number; code: string; issues?: unknown }> {
  const body = (await res.json()) as { error: string; issues?: unknown };
  return { status: res.status, code: body.error, ...(body.issues ? { issues: body.issues } : {}) };
}

/** A node with its own key, talking to a served runtime through the ControlClient. */
export class TestNode {
  readonly client: ControlClient;

  constructor(
    readonly rt: ControlRuntime,
    readonly keys: KeyPair = generateKeyPair(),
  ) {
    const url = served.get(rt);
    if (!url) throw new Error("serve the runtime first (serveNodeApi)");
    this.client = new ControlClient({ baseUrl: url, key: keyHolder(keys.privateKey) });
  }

  /** The same node (same key) talking to another replica. */
  via(rt: ControlRuntime): TestNode {
    return new TestNode(rt, this.keys);
  }

  get key(): string {
    return this.client.nodeKey;
  }

  private ownSigner: ControlSigner | null = null;

  /**
   * This node's signer (to build requests by hand). One per node: a signer
   * keeps identical requests in one second distinct, as a node's one signer does.
   */
  signer(): ControlSigner {
    this.ownSigner ??= new ControlSigner(this.keys.privateKey, this.rt.controlKey().publicKey);
    return this.ownSigner;
  }

  register(preAuthKey: string | undefined, hostname: string, extra: Partial<RegisterRequest> = {}) {
    return this.client.register({ ...(preAuthKey === undefined ? {} : { preAuthKey }), hostname, ...extra });
  }

  /** Register this (new) key as the continuation of `old`'s node. */
  rotateFrom(old: TestNode, hostname: string, proofFor = this.key) {
    const signature = old.signer().sign(ROTATION_PROOF.method, ROTATION_PROOF.path, proofFor);
    return this.client.register({ hostname, rotateFrom: { nodeKey: old.key, signature } });
  }

  endpoints(endpoints: string[], extra: Partial<EndpointsRequest> = {}) {
    return this.client.updateEndpoints({ endpoints, ...extra });
  }

  logout() {
    return this.client.logout();
  }

  signal(to: string, sealed: string) {
    return this.client.signal({ to, sealed });
  }

  connections(report: ConnectionReport) {
    return this.client.reportConnections(report);
  }

  row() {
    return this.rt.db.prisma.node.findFirstOrThrow({ where: { nodeKey: this.key } });
  }

  async stream(): Promise<MapReader> {
    return new MapReader(await this.client.openMap());
  }
}

export { MapReader };
