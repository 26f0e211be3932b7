import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encode } from "next-auth/jwt";
import { actorFromSessionCookie } from "./session-cookie";

const SECRET = "a test secret of at least thirty-two characters";
const saved = process.env.NEXTAUTH_SECRET;
beforeAll(() => {
  process.env.NEXTAUTH_SECRET = SECRET;
});
afterAll(() => {
  if (saved === undefined) delete process.env.NEXTAUTH_SECRET;
  else process.env.NEXTAUTH_SECRET = saved;
});

// The one session row sessionActor reads.
const db = {
  prisma: {
    session: {
      findUnique: ({ where }: { where: { id: string } }) =>
        Promise.resolve(
          where.id === "s1"
            ? {
                id: "s1",
                expiresAt: new Date(Date.now() + 3600_000),
                lastSeenAt: new Date(),
                user: { id: "u1", email: "ann@example.com", name: "Ann", role: "admin" },
              }
            : null,
        ),
    },
  },
} as unknown as Parameters<typeof actorFromSessionCookie>[1];

describe("actorFromSessionCookie", () => {
  it("on https reads only the __Secure- cookie, never the plain name", async () => {
    const value = await encode({ token: { sid: "s1" }, secret: SECRET });
    const plain = (name: string) => (name === "next-auth.session-token" ? value : undefined);
    const secure = (name: string) => (name === "__Secure-next-auth.session-token" ? value : undefined);
    expect(await actorFromSessionCookie(plain, db, "https://vpn.example.com")).toBeNull();
    expect((await actorFromSessionCookie(secure, db, "https://vpn.example.com"))?.userId).toBe("u1");
    // Over http next-auth sets the plain name, and only that is read.
    expect((await actorFromSessionCookie(plain, db, "http://localhost:8080"))?.userId).toBe("u1");
    expect(await actorFromSessionCookie(secure, db, "http://localhost:8080")).toBeNull();
  });
});
