import { createServer } from "node:http";
import { type AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { netDial } from "../testing/net-duplex";
import { AppCookieJars, CookieJarError } from "./cookies";
import { HttpClient } from "./http";

describe("AppCookieJars", () => {
  it("keeps each app origin's cookies to itself", async () => {
    const jars = new AppCookieJars();
    await jars.setFromResponse("http://server:80/login", ["session=abc; Path=/; HttpOnly", "theme=dark"]);
    await jars.setFromResponse("http://other:80/", ["session=xyz"]);
    await jars.setFromResponse("http://server:8080/", ["session=port8080"]);
    expect(await jars.cookieHeader("http://server/anything")).toBe("session=abc; theme=dark");
    expect(await jars.cookieHeader("http://other:80/")).toBe("session=xyz");
    expect(await jars.cookieHeader("http://server:8080/")).toBe("session=port8080");
    expect(await jars.cookieHeader("http://never:80/")).toBe("");
    expect(jars.size).toBe(3);
    // A WebSocket handshake to the app carries the app's cookies.
    expect(await jars.cookieHeader("ws://server:80/socket")).toBe("session=abc; theme=dark");
  });

  it("applies paths, expiry, Max-Age=0 deletion and a Domain naming the machine", async () => {
    const jars = new AppCookieJars();
    const url = "http://server:80/app/page";
    await jars.setFromResponse(url, [
      "scoped=1; Path=/app",
      "elsewhere=1; Path=/admin",
      "gone=1; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
      "domain=1; Domain=server; Path=/",
      "defaultpath=1",
      "foreign=1; Domain=example.com",
    ]);
    // Without Path a cookie belongs to the directory of the URL that set it (/app).
    expect(await jars.cookieHeader("http://server:80/app/x")).toBe("scoped=1; defaultpath=1; domain=1");
    expect(await jars.cookieHeader("http://server:80/")).toBe("domain=1");
    await jars.setFromResponse(url, ["scoped=; Path=/app; Max-Age=0"]);
    expect(await jars.cookieHeader("http://server:80/app/x")).toBe("defaultpath=1; domain=1");
  });

  it("stores and sends Secure cookies for http apps (the tailnet is the secure channel) unless told not to", async () => {
    const jars = new AppCookieJars();
    await jars.setFromResponse("http://server:80/", ["s=1; Secure", "__Host-h=2; Secure; Path=/"]);
    expect(await jars.cookieHeader("http://server:80/")).toBe("s=1; __Host-h=2");
    const strict = new AppCookieJars({ secure: false });
    await strict.setFromResponse("http://server:80/", ["s=1; Secure", "plain=1"]);
    expect(await strict.cookieHeader("http://server:80/")).toBe("plain=1");
  });

  it("bounds cookies per jar (least recently used go) and the number of jars", async () => {
    const jars = new AppCookieJars({ maxCookiesPerJar: 3, maxJars: 2 });
    await jars.setFromResponse("http://a:80/", ["c1=1"]);
    await new Promise((r) => setTimeout(r, 5));
    await jars.setFromResponse("http://a:80/", ["c2=2", "c3=3"]);
    await new Promise((r) => setTimeout(r, 5));
    await jars.setFromResponse("http://a:80/", ["c4=4"]);
    const header = await jars.cookieHeader("http://a:80/");
    expect(header.split("; ").sort()).toEqual(["c2=2", "c3=3", "c4=4"]);
    await jars.setFromResponse("http://b:80/", ["b=1"]);
    await jars.cookieHeader("http://a:80/"); // a is now the most recently used
    await jars.setFromResponse("http://c:80/", ["c=1"]);
    expect(jars.size).toBe(2);
    expect(await jars.cookieHeader("http://b:80/")).toBe("");
    expect(await jars.cookieHeader("http://a:80/")).not.toBe("");
  });

  it("ignores oversized and malformed Set-Cookie headers", async () => {
    const jars = new AppCookieJars();
    await jars.setFromResponse("http://a:80/", [`big=${"x".repeat(10_000)}`, "=novalue", ";;;", "ok=1"]);
    expect(await jars.cookieHeader("http://a:80/")).toBe("ok=1");
  });

  it("round-trips through serialize and deserialize, and refuses garbage", async () => {
    const jars = new AppCookieJars();
    await jars.setFromResponse("http://server:80/", ["session=abc; Max-Age=3600", "temp=1"]);
    await jars.setFromResponse("http://other:3000/", ["x=y; Path=/"]);
    const restored = await AppCookieJars.deserialize(await jars.serialize());
    expect(await restored.cookieHeader("http://server:80/")).toBe("session=abc; temp=1");
    expect(await restored.cookieHeader("http://other:3000/")).toBe("x=y");
    await expect(AppCookieJars.deserialize("{not json")).rejects.toBeInstanceOf(CookieJarError);
    await expect(AppCookieJars.deserialize('{"format":"other","jars":[]}')).rejects.toBeInstanceOf(
      CookieJarError,
    );
    expect(() => new AppCookieJars().jar("not a url")).toThrow(CookieJarError);
    expect(() => new AppCookieJars().jar("file:///etc/passwd")).toThrow(CookieJarError);
  });

  it("carries a real server's session across requests through HttpClient", async () => {
    const server = createServer((req, res) => {
      if (req.url === "/login") res.setHeader("Set-Cookie", ["sid=42; Path=/; HttpOnly", "pref=a"]);
      res.end(`cookie: ${req.headers.cookie ?? "(none)"}`);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    try {
      const port = (server.address() as AddressInfo).port;
      const client = new HttpClient(netDial(port));
      const jars = new AppCookieJars();
      const origin = `http://server:${port}`;
      const fetchText = async (path: string) => {
        const cookie = await jars.cookieHeader(origin + path);
        const res = await client.request({
          method: "GET",
          target: path,
          host: `server:${port}`,
          headers: cookie ? [["Cookie", cookie]] : [],
        });
        await jars.setFromResponse(
          origin + path,
          res.headers.filter(([n]) => n.toLowerCase() === "set-cookie").map(([, v]) => v),
        );
        return new Response(res.body).text();
      };
      expect(await fetchText("/login")).toBe("cookie: (none)");
      expect(await fetchText("/home")).toBe("cookie: sid=42; pref=a");
      client.close();
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
