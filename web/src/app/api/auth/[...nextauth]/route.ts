import NextAuth from "next-auth";
import { NextRequest } from "next/server";
import { handle, withBoundedBody } from "@/lib/api";
import { authOptions } from "@/lib/auth-options";

export const dynamic = "force-dynamic";

type Ctx = { params: Promise<{ nextauth: string[] }> };

/** Login forms and sign-out posts are a few hundred bytes; next-auth itself would read any size. */
const MAX_AUTH_BODY_BYTES = 16 * 1024;

// Options are built per request: they depend on the running server's config.
function handler(req: NextRequest, ctx: Ctx): Promise<Response> {
  return handle(`${req.method} /api/auth`, async () => {
    const bounded = await withBoundedBody(
      req,
      MAX_AUTH_BODY_BYTES,
      (url, init) => new NextRequest(url, init),
    );
    return (await NextAuth(bounded as never, ctx as never, authOptions())) as Response;
  });
}

export { handler as GET, handler as POST };
