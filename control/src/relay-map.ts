// The relay map nodes receive: TRELLIS_RELAY_MAP when set, otherwise one
// region, "embedded" (id 1), served by this process at <public URL>/derp.
import type { RelayMap } from "@trellis/proto";

export const EMBEDDED_REGION_ID = 1;

/**
 * @param publicUrl the server's externally visible http(s) URL
 * @param stunPort the STUN port nodes should use; null when there is none
 */
export function defaultRelayMap(publicUrl: string, stunPort: number | null): RelayMap {
  const url = new URL(publicUrl);
  const ws = `${url.protocol === "https:" ? "wss" : "ws"}://${url.host}${url.pathname.replace(/\/+$/, "")}/derp`;
  return {
    regions: {
      [String(EMBEDDED_REGION_ID)]: {
        regionId: EMBEDDED_REGION_ID,
        regionCode: "embedded",
        regionName: "Embedded relay",
        nodes: [
          {
            name: `${EMBEDDED_REGION_ID}a`,
            regionId: EMBEDDED_REGION_ID,
            hostName: url.hostname,
            url: ws,
            // 0 means "any port" to the server, which nodes cannot use.
            stunPort: stunPort === null || stunPort === 0 ? -1 : stunPort,
          },
        ],
      },
    },
  };
}
