import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NextRequest } from "next/server";
import { installRuntime } from "@trellis/control/handle";
import { createLogger } from "@trellis/log";
import { POST } from "./route";

// Enough of a runtime for next-auth's options; the body is refused before next-auth runs.
beforeAll(() =>
  installRuntime({
    log: createLogger("test"),
    config: { oidc: null, publicUrl: "http://localhost:8080" },
  } as never),
);
afterAll(() => installRuntime(null));

/** A chunked body (no Content-Length) of `chunks` KiB that counts how much of it was pulled. */
function chunkedBody(chunks: number) {
  let pulled = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (pulled === chunks) return controller.close();
      pulled += 1;
      controller.enqueue(new Uint8Array(1024).fill(0x61));
    },
  });
  return { stream, pulled: () => pulled };
}

describe("POST /api/auth/* (unauthenticated)", () => {
  it("refuses a chunked body over 16 KiB with 413, reading no further than the limit", async () => {
    const body = chunkedBody(10_000);
    const req = new NextRequest("http://localhost:8080/api/auth/callback/credentials", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: body.stream,
      duplex: "half",
    } as ConstructorParameters<typeof NextRequest>[1]);
    const res = await POST(req, { params: Promise.resolve({ nextauth: ["callback", "credentials"] }) }).catch(
      (err: unknown) => err,
    );
    expect(body.pulled()).toBeLessThan(40);
    if (!(res instanceof Response)) throw res;
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: string }).error).toBe("body_too_large");
  });
});
