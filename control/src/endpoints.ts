// Endpoint and home-relay updates from a node about itself.
import type { Database } from "@trellis/db";
import { EndpointsRequest } from "@trellis/proto";
import { jsonList, parseOr400 } from "./errors-util";

/** Store the node's endpoints (sorted, without repeats); true when anything changed. */
export async function updateEndpoints(db: Database, nodeId: string, body: unknown): Promise<boolean> {
  const req = parseOr400(EndpointsRequest, body, "invalid endpoints update");
  const endpoints = [...new Set(req.endpoints)].sort();
  const current = await db.prisma.node.findUniqueOrThrow({
    where: { id: nodeId },
    select: { endpoints: true, homeRegion: true },
  });
  const homeRegion = req.homeRegion === undefined ? current.homeRegion : req.homeRegion;
  if (
    JSON.stringify(jsonList(current.endpoints)) === JSON.stringify(endpoints) &&
    homeRegion === current.homeRegion
  ) {
    return false;
  }
  await db.prisma.node.update({
    where: { id: nodeId },
    data: { endpoints: JSON.stringify(endpoints), homeRegion },
  });
  return true;
}
